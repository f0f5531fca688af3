"""The job pipeline did not change the numbers: x_adv hashes and figures on fixed batches, before and after.

The expected values were computed with the code before the refactor onto ``advx.jobs``
(commit 029c996: ``advx.experiment.run_experiment`` and the old ``evaluate`` loop), on
the committed Fashion-MNIST CNN and 12 real test images, and are pinned here. (Each
row has its own generator, so leaving out the slow C&W row changes no other row.)
"""

from __future__ import annotations

import hashlib
import json

import pytest
from safetensors.torch import load_file

from advx.cli import main

ATTACK_X_ADV = {
    "apgd-ce-l2-1": "887236018aeedf6a",
    "apgd-ce-linf-0.1": "3319418617d14734",
    "deepfool-l2-1": "5f2c6c05e54a21a1",
    "deepfool-linf-0.1": "a85d285b5b4add81",
    "fgsm-l2-1": "70e48ef1e51df07e",
    "fgsm-linf-0.1": "046ce2a8fd7cbe29",
    "pgd-l2-1": "d408799b7d86b2c3",
    "pgd-linf-0.1": "ffce18b0757cf34a",
}
ATTACK_FIGURES = {"fgsm-linf-0.1": [0.08333333333333333, 0.9166666666666666, 0.10000002384185791], "fgsm-l2-1": [0.4166666666666667, 0.5833333333333334, 0.8886972665786743], "pgd-linf-0.1": [0.0, 1.0, 0.10000002384185791], "pgd-l2-1": [0.25, 0.75, 0.9926422834396362], "apgd-ce-linf-0.1": [0.0, 1.0, 0.10000002384185791], "apgd-ce-l2-1": [0.25, 0.75, 0.9999998807907104], "deepfool-linf-0.1": [0.5833333333333334, 0.4166666666666667, 0.05202692374587059], "deepfool-l2-1": [0.25, 0.75, 0.34068742394447327]}  # run -> [robust accuracy, success rate, median distance]
EVALUATE_X_ADV = {"linf:0.05": "56f3a490708f35d0", "linf:0.1": "ff7c27f655469fb4"}
EVALUATE_FIGURES = {"linf:0.05": [3, {"apgd-ce(25)": 9, "apgd-t(25)": 0, "convergence-probe": 0}, 774, 1611], "linf:0.1": [0, {"apgd-ce(25)": 12, "apgd-t(25)": 0, "convergence-probe": 0}, 26, 76]}  # threat -> [robust, broken_by, gradients, queries]


def _h(t) -> str:
    return hashlib.sha256(t.contiguous().numpy().tobytes()).hexdigest()[:16]


@pytest.mark.slow
def test_attack_x_adv_and_figures_are_unchanged(tmp_path):
    out = tmp_path / "attack"
    assert main(["attack", "--model", "fmnist-cnn", "--data", "fashion-mnist", "--attack",
                 "fgsm,pgd,apgd-ce,deepfool", "--threat", "linf:0.1", "--threat", "l2:1", "-n", "12",
                 "--steps", "5", "--batch-size", "12", "--seed", "3", "--out", str(out)]) == 0
    t = load_file(str(out / "adversarial.safetensors"))
    results = json.loads((out / "results.json").read_text())
    assert {k.split("/")[0]: _h(v) for k, v in t.items() if k.endswith("/x_adv")} == ATTACK_X_ADV
    figures = {r["id"]: [r["metrics"][k] for k in ("robust_accuracy", "attack_success_rate", "median_distance")]
               for r in results["runs"]}
    assert figures == ATTACK_FIGURES


@pytest.mark.slow
def test_evaluate_x_adv_and_figures_are_unchanged(tmp_path):
    out = tmp_path / "evaluate"
    assert main(["evaluate", "--model", "fmnist-cnn", "--data", "fashion-mnist", "--threat", "linf:0.05,0.1",
                 "--attacks", "fast", "-n", "12", "--batch-size", "8", "--seed", "3", "--no-progress",
                 "--out", str(out)]) == 0  # two batches
    t = load_file(str(out / "adversarial.safetensors"))
    results = json.loads((out / "results.json").read_text())
    assert {k.split("/", 1)[1]: _h(v) for k, v in t.items() if k.startswith("x_adv/")} == EVALUATE_X_ADV
    assert results["clean_correct"] == 12
    assert {r["threat"]: [r["robust"], r["broken_by"], r["gradients"], r["queries"]]
            for r in results["results"]} == EVALUATE_FIGURES
