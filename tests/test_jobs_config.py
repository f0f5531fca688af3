"""The job pipeline's parts: JobConfig round trip, fingerprints that name what differs, progress inside a batch."""

from __future__ import annotations

import torch
from torch import nn

from advx.jobs import JobConfig, fingerprint
from advx.jobs.fingerprint import data_sha256, model_sha256


def _config(**kw) -> JobConfig:
    base = dict(command="attack", argv=["advx", "attack", "--out", "a"], model={"spec": "m", "sha256": "1" * 64},
                data={"spec": "d", "sha256": "2" * 64}, seed=3, n=10, batch_size=4, device="cpu",
                options={"threats": ["linf:0.1"], "steps": (5, 6)})
    base.update(kw)
    return JobConfig(**base)


def test_job_config_round_trips_through_json_and_keys_only_what_changes_numbers():
    c = _config()
    assert JobConfig.from_json(c.to_json()) == c and c.options["steps"] == [5, 6]  # JSON types
    assert c.command_line == "advx attack --out a"
    moved = _config(argv=["advx", "attack", "--out", "b", "--resume"], device="cuda")
    assert fingerprint(moved) == fingerprint(c)  # another shell, folder or device: the same run
    assert fingerprint(_config(seed=4)) != fingerprint(c)


def test_fingerprint_differences_name_the_part_that_differs():
    c = _config()
    assert fingerprint(c).differences(fingerprint(c)) == []
    other = fingerprint(_config(options={"threats": ["linf:0.3"], "steps": [5, 6]}))
    (what,) = other.differences(fingerprint(c))
    assert what.startswith("configuration (options.threats: ") and "linf:0.3" in what
    weights = fingerprint(_config(model={"spec": "m", "sha256": "9" * 64}))
    assert weights.differences(fingerprint(c)) == ["model weights (sha256 111111111111 -> 999999999999)"]
    data = fingerprint(_config(data={"spec": "d", "sha256": "8" * 64}))
    assert data.differences(fingerprint(c)) == ["data (sha256 222222222222 -> 888888888888)"]


def test_model_and_data_hashes_see_every_weight_and_value():
    torch.manual_seed(0)
    a = nn.Linear(3, 2)
    h = model_sha256(a)
    with torch.no_grad():
        a.bias[0] += 1e-6
    assert model_sha256(a) != h
    x, y = torch.zeros(2, 3), torch.tensor([0, 1])
    assert data_sha256(x, y) != data_sha256(x, torch.tensor([1, 0])) and len(data_sha256(x, y)) == 64


def _linear_problem(n: int):
    """A seeded linear classifier of 4x4 images, n images and its own labels for them."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3)).eval()
    x = torch.rand(n, 1, 4, 4)
    with torch.no_grad():
        return model, x, model(x).argmax(1)


def test_evaluate_and_attack_jobs_tick_inside_their_first_batch():
    from advx.jobs.attack import AttackJob
    from advx.jobs.evaluate import EvaluateJob
    from advx.threat import Linf

    model, x, y = _linear_problem(6)
    ticks: list[float] = []
    job = EvaluateJob(model, (x, y), "linf:0.2", attacks="fgsm,pgd", checks=False, batch_size=6, argv=["advx"])
    job.run_batch(0, ticks.append)
    assert len(ticks) == 3 and abs(sum(ticks) - 6) < 1e-9  # after each member, then the checks

    class Data:
        pass

    data = Data()
    data.x, data.y, data.classes = x, y, ["a", "b", "c"]
    cfg = JobConfig("attack", argv=["advx"], batch_size=6, n=6)
    attack = AttackJob(model, data, [("fgsm", [Linf(0.1), Linf(0.2)]), ("pgd", [Linf(0.2)])], config=cfg, steps=2)
    ticks.clear()
    attack.run_batch(0, ticks.append)
    assert ticks == [6, 6, 6] and attack.units(0) == 18  # one tick per (attack, radius) row


#: commands that run no job: a listing, and the training commands (their own loop, advx.defenses.loop)
NOT_JOBS = {"attacks", "train", "text train"}


def test_every_job_command_takes_the_shared_run_options():
    import click

    from advx.cli import cli

    ctx = click.Context(cli)
    found = {}

    def walk(cmd, name):
        if isinstance(cmd, click.Group):
            for sub in cmd.list_commands(ctx):
                walk(cmd.get_command(ctx, sub), f"{name} {sub}")
        else:
            found[name] = {o for p in cmd.params for o in p.opts}

    for name in cli.list_commands(ctx):
        walk(cli.get_command(ctx, name), name)
    shared = {"--out", "--resume", "--overwrite", "--seed", "-n", "--device", "--batch-size"}
    jobs = {name: shared - opts for name, opts in found.items() if name not in NOT_JOBS}
    assert {"attack", "demo", "evaluate", "certify", "transfer", "text attack", "audio attack"} <= set(jobs)
    assert {name: missing for name, missing in jobs.items() if missing} == {}


def test_the_python_api_refuses_an_eps_on_the_wrong_scale_unless_allowed():
    import pytest

    from advx import evaluate
    from advx.jobs.attack import run_experiment
    from advx.threat import Linf

    model, x, y = _linear_problem(4)

    class Data:
        pass

    data = Data()
    data.x, data.y, data.classes = x, y, ["a", "b", "c"]
    with pytest.raises(ValueError, match="8/255"):
        evaluate(model, (x, y), Linf(8), attacks="fgsm", checks=False, progress=False)
    with pytest.raises(ValueError, match="8/255"):
        run_experiment(model, data, [("fgsm", [Linf(8)])])
    assert evaluate(model, (x, y), Linf(8), attacks="fgsm", checks=False, progress=False,
                    allow_large_eps=True).robust_accuracy() == 0.0
    exp = run_experiment(model, data, [("fgsm", [Linf(8)])], allow_large_eps=True)
    assert exp.results()["runs"][0]["metrics"]["robust_accuracy"] == 0.0
