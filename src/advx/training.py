"""Moved: the training loop is :mod:`advx.defenses.loop` (import from there); this re-export goes away."""

from advx.defenses.loop import (
    CHECKPOINT_FORMAT,
    DEFENSES,
    Batches,
    CheckpointError,
    EpochStats,
    Objective,
    TensorBatches,
    TrainConfig,
    TrainingDiverged,
    _shift,
    _world,
    accuracy,
    load_checkpoint,
    make_objective,
    register_defense,
    run_fingerprint,
    save_checkpoint,
    train,
)

__all__ = ["TrainConfig", "EpochStats", "Objective", "Batches", "TensorBatches", "DEFENSES", "register_defense",
           "make_objective", "train", "accuracy", "save_checkpoint", "load_checkpoint", "run_fingerprint",
           "CheckpointError", "TrainingDiverged", "CHECKPOINT_FORMAT", "_shift", "_world"]
