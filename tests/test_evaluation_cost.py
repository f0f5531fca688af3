"""What an evaluation costs: passes counted at the model, the cheap preset against AutoAttack's, the budget,
the checks under the cheap preset, and the Check protocol (a new check is one class in CHECKS)."""

from __future__ import annotations

import pytest
import torch

from advx import evaluate
from advx.attacks.losses import margin
from advx.data import load
from advx.evaluation import checks as C
from advx.model import Budget, BudgetExhausted, PassCounter, input_gradient
from test_evaluation_models import Noisy, Quantized, centroid


@pytest.fixture(scope="module")
def data():
    return load("fashion-mnist", split="test", n=32, seed=0)


def _run(model, data, threat, attacks, **kw):
    kw.setdefault("probe_points", 8)
    kw.setdefault("batch_size", 32)
    return evaluate(model, data, threat, attacks=attacks, progress=False, keep_adversarials=False, **kw)


def test_the_counter_counts_every_sample_forwards_and_each_backward_through_the_output():
    model = centroid()
    counter = PassCounter(model)
    x = torch.rand(5, 1, 28, 28)
    with torch.no_grad():
        counter(x)
    assert (counter.forwards, counter.backwards) == (5, 0)
    input_gradient(counter, x, lambda z: margin(z, torch.zeros(5, dtype=torch.long)))
    assert (counter.forwards, counter.backwards) == (10, 5)
    z = x.clone().requires_grad_(True)
    out = counter(z)
    for c in range(3):  # a 3-row Jacobian: three backward passes through one forward
        torch.autograd.grad(out[:, c].sum(), z, retain_graph=True)
    assert (counter.forwards, counter.backwards, counter.passes) == (15, 20, 35)


def test_a_budget_refuses_the_call_that_would_pass_it():
    budget = Budget(10)
    counter = PassCounter(centroid(), budget=budget)
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        counter(x)
        counter(x)  # 8 of 10
        with pytest.raises(BudgetExhausted):
            counter(x)  # 12 > 10: refused before it runs
        with budget.free():
            counter(x)  # exempt (the clean forward): counted, never refused
    assert budget.exhausted and budget.spent == counter.passes == 12
    z = torch.rand(2, 1, 28, 28, requires_grad=True)
    with pytest.raises(BudgetExhausted):  # a forward that needs a backward reserves both
        PassCounter(centroid(), budget=Budget(3))(z)


def test_standard_costs_a_fifth_of_autoattack_and_is_as_strong():
    # L1: Square does not run (Linf/L2 only), so the count compares the targeting and FAB-T levers quickly
    model = centroid()  # a nearest-centroid classifier fitted to Fashion-MNIST
    points = load("fashion-mnist", split="test", n=48, seed=1)
    reports, passes = {}, {}
    for preset in ("autoattack", "standard"):
        counter = PassCounter(model)
        reports[preset] = _run(counter, points, "l1:1.0", preset, checks=False, batch_size=48)
        passes[preset] = counter.passes
        assert abs(reports[preset].cost["passes"]["total"] - counter.passes) <= 1  # 1: the DLR note's probe
    aa, std = reports["autoattack"].results[0], reports["standard"].results[0]
    assert aa.robust >= 20, aa.robust  # survivors: AutoAttack's 9 targets dominate its cost
    assert passes["standard"] <= 0.2 * passes["autoattack"], passes
    assert std.robust_accuracy <= aa.ci95[1]  # never above AutoAttack beyond its interval
    assert std.passes == sum(std.passes_by_attack.values()) > 0
    assert set(std.passes_by_attack) == {"apgd-ce", "malt-2", "fab-t", "square"}
    assert std.passes_by_attack["square"] == aa.passes_by_attack["square"] == 0


def test_the_budget_is_a_hard_limit_and_the_report_says_what_was_not_run(data):
    base = centroid()
    full_counter = PassCounter(base)
    full = _run(full_counter, data, "linf:0.05", "apgd-ce:20,apgd-t:20", checks=False)
    assert not full.budget["exhausted"] and full.budget["not_run"] == []
    limit = full.cost["passes"]["attacks"] // 3
    counter = PassCounter(base)
    cut = _run(counter, data, "linf:0.05", "apgd-ce:20,apgd-t:20", checks=False, budget=limit)
    assert counter.passes - len(data.y) <= limit  # the clean forward of each point, then at most the budget
    assert cut.budget["exhausted"] and cut.budget["limit"] == limit
    assert cut.budget["not_run"] and all(e["points"] > 0 for e in cut.budget["not_run"])
    assert cut.budget["unfinished"]["linf:0.05"] > 0
    assert any("stopped at the budget" in note for note in cut.config["notes"])
    assert cut.robust_accuracy() >= full.robust_accuracy()  # an upper bound, never lower than the full run
    roomy = _run(PassCounter(base), data, "linf:0.05", "apgd-ce:20,apgd-t:20", checks=False, budget=10**9)
    assert roomy.per_sample["broken_by"] == full.per_sample["broken_by"] and not roomy.budget["exhausted"]


def test_square_runs_on_a_sample_of_the_survivors_when_nothing_suggests_masking():
    class Sure(torch.nn.Module):  # class 0 by a wide margin, whatever the input: no attack can succeed
        def forward(self, x):
            return torch.cat([10 + 0 * x.flatten(1)[:, :1], torch.zeros(len(x), 9)], 1)

    x, y = torch.rand(20, 1, 8, 8), torch.zeros(20, dtype=torch.long)
    report = _run(Sure().eval(), (x, y), "linf:0.1", "standard", checks=False)
    res = report.results[0]
    assert res.robust == 20
    # 4 of 20 points (10%, at least 4): Square's own 5000 queries each, plus its clean and final forwards
    assert 4 * 5000 <= res.passes_by_attack["square"] <= 4 * 5002
    assert res.passes_by_attack["fab-t"] == 0  # no point came close to the boundary


def test_the_checks_still_fire_under_the_cheap_preset():
    base = centroid()
    data = load("fashion-mnist", split="test", n=16, seed=0)
    quantised = _run(Quantized(base).eval(), data, "linf:0.2", "standard", checks=["gradients", "unbounded", "black_box"])
    flags = set(quantised.flags)
    assert {"gradients", "unbounded", "black_box"} <= flags, flags
    assert quantised.results[0].broken_by["square"] >= 1  # masking seen: Square ran on every survivor
    few = load("fashion-mnist", split="test", n=8, seed=0)  # these two need only the checks' evidence
    noisy = _run(Noisy(base, sigma=0.2).eval(), few, "linf:0.05", "standard", checks=["randomness"])
    assert noisy.check("randomness").fired

    class Confident(torch.nn.Module):  # 1000x logits, as defensive distillation leaves them
        def forward(self, x):
            return 1000 * base(x)

    distilled = _run(Confident().eval(), few, "linf:0.05", "standard", checks=["gradients"])
    assert distilled.check("gradients").fired and "cross-entropy" in distilled.check("gradients").message


def test_a_new_check_is_one_class_in_checks(data, monkeypatch):
    class Rows(C.BaseCheck):
        name = "rows_seen"
        counts = ("rows",)

        def evidence(self, ctx):
            return {"rows": len(ctx.x)}

        def verdict(self, evidence, run):
            return C.Check(self.name, "warning", f"saw {evidence['rows']} of {run.n}", evidence)

    monkeypatch.setattr(C, "CHECKS", [*C.CHECKS, Rows()])
    report = _run(centroid(), data, "linf:0.05", "apgd-ce:5", batch_size=10)
    check = report.check("rows_seen")
    assert check.fired and check.evidence == {"rows": 32} and check.message == "saw 32 of 32"
    assert "rows_seen" in report.flags and report.to_dict()["checks"][-1]["name"] == "rows_seen"


def test_the_cli_budget_stops_and_results_json_says_so(tmp_path, monkeypatch):
    import json

    from advx.cli import main

    monkeypatch.setenv("ADVX_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ADVX_OFFLINE", "1")
    out = tmp_path / "run"
    assert main(["evaluate", "--model", "fmnist-cnn", "--data", "fashion-mnist", "--threat", "linf:0.01", "-n", "8",
                 "--attacks", "apgd-ce:10,apgd-t:10", "--checks", "none", "--budget", "60", "--no-progress",
                 "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["budget"]["limit"] == 60 and results["budget"]["exhausted"]
    assert results["budget"]["spent"] <= 60 and results["budget"]["not_run"]
    assert results["cost"]["passes"]["total"] - results["cost"]["passes"]["clean"] <= 60
    assert any("stopped at the budget" in note for note in results["settings"]["notes"])
    assert results["results"][0]["passes_per_point"] == results["results"][0]["passes"] / 8
