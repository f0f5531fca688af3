"""Feature-squeezing detection: ROC AUC against the Mann-Whitney statistic, the FPR threshold, and
an adaptive attack (Carlini & Wagner 2017) that fools model and detector where plain PGD is caught."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from advx.attacks import PGD
from advx.data import load
from advx.defenses import BitDepth, FeatureSqueezingDetector, MedianFilter, detection_rate, evade_detector, roc_auc
from advx.threat import Linf
from advx.zoo import load_model


@settings(max_examples=40, deadline=None)
@given(neg=st.lists(st.integers(0, 6), min_size=1, max_size=30), pos=st.lists(st.integers(0, 6), min_size=1, max_size=30))
def test_roc_auc_equals_the_normalised_mann_whitney_u(neg, pos):
    stats = pytest.importorskip("scipy.stats")
    u = stats.mannwhitneyu(pos, neg).statistic  # pairs (pos > neg) + half the ties
    assert roc_auc(torch.tensor(neg), torch.tensor(pos)) == pytest.approx(u / (len(neg) * len(pos)), abs=1e-12)


def test_roc_auc_known_answers():
    assert roc_auc(torch.tensor([0.0, 1.0]), torch.tensor([2.0, 3.0])) == 1.0
    assert roc_auc(torch.tensor([2.0, 3.0]), torch.tensor([0.0, 1.0])) == 0.0
    assert roc_auc(torch.tensor([1.0, 1.0]), torch.tensor([1.0])) == 0.5
    with pytest.raises(ValueError, match="both classes"):
        roc_auc(torch.tensor([]), torch.tensor([1.0]))


@pytest.fixture(scope="module")
def mnist():
    data = load("mnist", "test", n=250, seed=0)
    model = load_model("mnist-cnn")
    detector = FeatureSqueezingDetector(model, [BitDepth(2), MedianFilter(2)])
    detector.fit(data.x[:200], fpr=0.05)
    return model, detector, data.x[200:], data.y[200:], data.x[:200]


def test_threshold_flags_at_most_the_chosen_fraction_of_clean_inputs(mnist):
    _, detector, _, _, clean = mnist
    scores = detector.score(clean)
    assert 0 <= scores.min() and scores.max() <= 2  # an L1 distance between two probability vectors
    flagged = float((scores > detector.threshold).float().mean())
    assert 0.03 <= flagged <= 0.05  # 5% FPR on the fitting set (ties can only lower it)
    assert detector.score(torch.zeros(3, 1, 28, 28)).abs().max() < 1e-6  # squeezing leaves a blank image unchanged


def test_plain_pgd_is_detected_and_the_adaptive_attack_evades(mnist):
    model, detector, x, y, clean = mnist
    threat = Linf(0.2)
    plain = PGD(threat, steps=20)(model, x, y)
    fooled = plain.success & plain.clean_correct
    assert fooled.float().mean() > 0.8
    assert roc_auc(detector.score(clean), detector.score(plain.x_adv[fooled])) > 0.9
    caught = detection_rate(detector, plain.x_adv[fooled])
    assert caught > 0.7
    adaptive = evade_detector(detector, x, y, threat, steps=20)
    with torch.no_grad():
        evaded = (model(adaptive).argmax(1) != y) & ~detector.detect(adaptive)
    plain_evaded = float((fooled & ~detector.detect(plain.x_adv)).float().mean())
    assert float(evaded.float().mean()) > plain_evaded + 0.5
    assert threat.distance(adaptive, x).max() <= 0.2 + 1e-6


def test_detect_needs_a_threshold():
    detector = FeatureSqueezingDetector(torch.nn.Flatten())
    with pytest.raises(ValueError, match="fit"):
        detector.detect(torch.zeros(1, 1, 4, 4))
    with pytest.raises(ValueError, match="fpr"):
        detector.fit(torch.zeros(2, 1, 4, 4), fpr=0.0)
