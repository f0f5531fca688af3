"""Moved to :mod:`advx.jobs.attack` (the attack job); this shim keeps old imports working this session."""

from advx.jobs.attack import (  # noqa: F401
    SCHEMA_VERSION,
    AttackJob,
    Experiment,
    RunResult,
    attack_repr,
    build_attack,
    environment,
    load_data,
    pick_examples,
    require_targetable,
    run_experiment,
)

__all__ = ["AttackJob", "Experiment", "RunResult",
           "SCHEMA_VERSION", "build_attack", "environment", "load_data", "require_targetable", "run_experiment",
           "pick_examples", "attack_repr"]
