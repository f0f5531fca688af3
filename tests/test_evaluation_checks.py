"""Each trust check fires on a model built to trigger it and stays silent on a plain CNN."""

from __future__ import annotations

import pytest
import torch

from advx import evaluate
from advx.attacks.fgsm import FGSM
from advx.attacks.square import Square
from advx.data import load
from advx.evaluation import CHECKS
from advx.threat import Linf
from test_evaluation_models import Band, Noisy, Quantized, Softmax100, band_data, centroid


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # two OpenMP threads on a loaded 2-core machine run these small ops ~25x slower
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data():
    return load("fashion-mnist", split="test", n=32, seed=0)


@pytest.fixture(scope="module")
def base():
    return centroid()


def _run(model, data, threat, attacks, **kw):
    kw.setdefault("probe_points", 8)
    return evaluate(model, data, threat, attacks=attacks, progress=False, batch_size=32, **kw)


def _status(report) -> dict[str, str]:
    return {c.name: c.status for c in report.checks}


def test_plain_cnn_trips_no_check():
    from advx.zoo import load_model

    model = load_model("fmnist-cnn")  # the committed reference CNN
    points = load("fashion-mnist", split="test", n=24, seed=0)
    report = _run(model, points, "linf:0.03,0.06", ["apgd-ce:25", "apgd-t:25", Square(Linf(0.1), queries=300)],
                  probe_points=6)
    assert 0 < report.robust_accuracy("linf:0.06") < report.robust_accuracy("linf:0.03") < report.clean_accuracy
    assert report.flags == []
    assert set(_status(report).values()) == {"ok"}, _status(report)
    assert report.check("unbounded").evidence["success_rate"] == 1.0


def test_quantised_input_trips_gradients_unbounded_and_black_box(data, base):
    report = _run(Quantized(base).eval(), data, "linf:0.05", ["apgd-ce:10", Square(Linf(0.05), queries=300)])
    status = _status(report)
    assert status["gradients"] == status["unbounded"] == status["black_box"] == "warning"
    assert status["randomness"] == status["probabilities"] == "ok"
    ev = report.check("gradients").evidence
    assert ev["zero"] == ev["points"] == 64  # round() has zero gradient everywhere: clean and random start
    assert report.check("unbounded").evidence["succeeded"] == 0  # from x with a zero gradient nothing moves
    assert report.results[0].broken_by["square"] >= 1


def test_noise_in_the_forward_pass_trips_randomness_and_eot_is_applied(data, base):
    noisy = Noisy(base, sigma=0.2).eval()
    plain = _run(noisy, data, "linf:0.05", "apgd-ce:5", checks=["randomness"])
    check = plain.check("randomness")
    assert check.fired and "eot" in check.suggestion
    assert check.evidence["differing_rows"] == 32
    eot = _run(noisy, data, "linf:0.05", "apgd-ce:5", checks=["randomness"], eot=4)
    assert eot.check("randomness").fired and "EOT over 4 passes" in eot.check("randomness").message
    assert eot.config["eot"] == 4 and eot.cost["model_passes_per_call"] == 4
    assert eot.cost["gradients"] % 4 == 0 and eot.cost["gradients"] > 0
    # the deterministic base model: silent
    assert not _run(base, data, "linf:0.05", "apgd-ce:5", checks=["randomness"]).check("randomness").fired


def test_softmax_outputs_trip_probabilities_and_gradients(data, base):
    report = _run(Softmax100(base).eval(), data, "linf:0.05", "apgd-ce:5",
                  checks=["probabilities", "gradients"])
    assert report.check("probabilities").fired
    assert report.check("probabilities").evidence["probability_rows"] == 32
    assert report.check("gradients").fired  # saturated softmax: zero or tiny gradients
    assert not _run(base, data, "linf:0.05", "apgd-ce:5", checks=["probabilities"]).check("probabilities").fired


def test_one_step_attack_over_a_narrow_band_trips_monotone_and_convergence():
    x, y = band_data(16)
    fgsm = FGSM(Linf(0.1))
    alone = _run(Band().eval(), (x, y), "linf:0.1,0.3", [fgsm], checks=["monotone"])
    mono = alone.check("monotone")
    assert mono.fired and mono.evidence["inverted_points"] == 16
    assert mono.evidence["curves"][0]["independent"] == [0.0, 1.0]
    # the reported worst case carries the eps=0.1 examples over to eps=0.3
    assert alone.robust_accuracy("linf:0.3") == 0.0 and alone.results[1].carried == 16
    probed = _run(Band().eval(), (x, y), "linf:0.1,0.3", [fgsm], checks=["monotone", "convergence"])
    assert probed.check("monotone").fired
    conv = probed.check("convergence")
    assert conv.fired
    assert conv.evidence["threats"][1] == {"threat": "linf:0.3", "probed": 8, "broken": 8, "robust_before": 16,
                                           "estimated_drop": 1.0}


def test_checks_can_be_chosen_and_unknown_names_are_refused(data, base):
    report = _run(base, data, "linf:0.05", "apgd-ce:5", checks=False)
    assert [c.name for c in report.checks] == [c.name for c in CHECKS]
    assert {c.status for c in report.checks} == {"skipped"}
    with pytest.raises(ValueError, match="checks: unknown"):
        _run(base, data, "linf:0.05", "apgd-ce:5", checks=["gradient"])


def test_saturated_cross_entropy_trips_gradients_though_the_margin_gradient_is_healthy(data, base):
    # logits scaled up 1000x (what defensive distillation does): the cross-entropy gradient
    # underflows to exactly zero, the margin gradient does not
    class Confident(torch.nn.Module):
        def forward(self, x):
            return 1000 * base(x)

    report = _run(Confident().eval(), data, "linf:0.05", "apgd-ce:5", checks=["gradients"])
    check = report.check("gradients")
    assert check.fired and "cross-entropy" in check.message
    assert check.evidence["zero"] == check.evidence["tiny"] == 0  # margin gradients usable everywhere
    assert check.evidence["ce_zero"] >= 0.5 * check.evidence["points"]
    plain = _run(base, data, "linf:0.05", "apgd-ce:5", checks=["gradients"]).check("gradients")
    assert not plain.fired and plain.evidence["ce_zero"] == 0  # the same model at scale 1 is silent
