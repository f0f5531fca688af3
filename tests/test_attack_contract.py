"""The contract every tensor attack keeps, checked for every attack x threat.

Properties (hypothesis): x_adv inside the ball and the bounds, shape/dtype kept,
eps = 0 returns x, success judged by the model on x_adv, model mode and
parameters untouched, same generator -> same result. Plus clear errors.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from advx.attacks import (
    BIM,
    EAD,
    FAB,
    FABT,
    FGSM,
    JSMA,
    NES,
    PGD,
    SPSA,
    TIFGSM,
    Boundary,
    CarliniWagnerL2,
    DeepFool,
    HopSkipJump,
    SimBA,
    Square,
)
from advx.attacks.apgd import APGD, APGDT
from advx.threat import L0, L1, L2, Linf

# (name, factory(threat) -> attack, threats it supports)
ATTACKS = [
    ("fgsm", lambda t: FGSM(t), (Linf, L2, L1, L0)),
    ("fgsm-rs", lambda t: FGSM(t, random_start=True), (Linf, L2, L1)),
    ("pgd", lambda t: PGD(t, steps=5, restarts=2), (Linf, L2, L1, L0)),
    ("pgd-margin-momentum", lambda t: PGD(t, steps=5, loss="margin", momentum=0.9), (Linf, L2, L1)),
    ("pgd-no-early-stop", lambda t: PGD(t, steps=4, early_stop=False), (Linf, L2)),
    ("bim", lambda t: BIM(t, steps=4), (Linf, L2)),
    ("apgd-ce", lambda t: APGD(t, steps=6), (Linf, L2, L1)),
    ("apgd-dlr", lambda t: APGD(t, steps=6, loss="dlr"), (Linf, L2)),
    ("apgd-t", lambda t: APGDT(t, steps=4, n_target_classes=2), (Linf, L2)),
    ("fab", lambda t: FAB(t, steps=5), (Linf, L2, L1)),
    ("fab-t", lambda t: FABT(t, steps=4, n_target_classes=2), (Linf, L2)),
    ("cw", lambda t: CarliniWagnerL2(t, steps=10, binary_search_steps=2), (L2,)),
    ("deepfool", lambda t: DeepFool(t, steps=5), (L2, Linf)),
    ("ead", lambda t: EAD(t, steps=10, binary_search_steps=2), (L1,)),
    ("jsma", lambda t: JSMA(t), (L0,)),
    ("square", lambda t: Square(t, queries=20, restarts=2), (Linf, L2)),
    ("simba", lambda t: SimBA(t, queries=20), (Linf, L2)),
    ("spsa", lambda t: SPSA(t, steps=3, samples=4), (Linf,)),
    ("nes", lambda t: NES(t, steps=3, samples=4), (L2,)),
    ("hopskipjump", lambda t: HopSkipJump(t, queries=40), (L2, Linf)),
    ("boundary", lambda t: Boundary(t, queries=40), (L2,)),
    ("ti-fgsm", lambda t: TIFGSM(t, steps=3, kernel_size=3), (Linf,)),
]
EPS = {Linf: 0.1, L2: 0.8, L1: 4.0, L0: 5}
CASES = [(name, make, kind) for name, make, kinds in ATTACKS for kind in kinds]
IDS = [f"{name}-{kind.__name__}" for name, make, kind in CASES]


class TinyNet(nn.Module):
    def __init__(self, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(4 * 6 * 6, 5)

    def forward(self, x):
        return self.fc(self.drop(torch.relu(self.bn(self.conv(x)))).flatten(1))


def _data(seed: int, n: int = 6):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 6, 6, generator=g), torch.randint(0, 5, (n,), generator=g)


@pytest.mark.parametrize("name,make,kind", CASES, ids=IDS)
@settings(max_examples=8)  # x 30 attack/threat cases
@given(seed=st.integers(0, 10_000))
def test_result_inside_threat_and_bounds_and_judged_by_model(name, make, kind, seed):
    model = TinyNet().eval()
    x, y = _data(seed)
    threat = kind(EPS[kind])
    res = make(threat)(model, x, y)
    assert res.x_adv.shape == x.shape and res.x_adv.dtype == x.dtype and res.x_adv.device == x.device
    assert bool((res.x_adv >= 0).all() and (res.x_adv <= 1).all())
    assert bool((threat.distance(res.x_adv, x) <= threat.eps * (1 + 1e-5) + 1e-6).all())
    torch.testing.assert_close(res.distance, threat.distance(res.x_adv, x))
    with torch.no_grad():
        pred = model(res.x_adv).argmax(1)
    assert torch.equal(res.success, pred != y)
    assert bool((res.queries >= res.gradients).all() and (res.queries >= 2).all())


@pytest.mark.parametrize("name,make,kind", CASES, ids=IDS)
def test_eps_zero_returns_x_unchanged(name, make, kind):
    model = TinyNet().eval()
    x, y = _data(1)
    res = make(kind(0))(model, x, y)
    assert torch.equal(res.x_adv, x)
    assert torch.equal(res.distance, torch.zeros(len(x)))


@pytest.mark.parametrize("name,make,kind", CASES, ids=IDS)
def test_deterministic_and_model_left_as_it_came(name, make, kind):
    model = TinyNet()
    model.train()
    model.fc.weight.requires_grad_(False)  # a user's frozen layer must stay frozen
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    x, y = _data(2)
    attack = make(kind(EPS[kind]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r1 = attack(model, x, y, generator=torch.Generator().manual_seed(3))
    assert any("training mode" in str(w.message) for w in caught)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r2 = attack(model, x, y, generator=torch.Generator().manual_seed(3))
    assert torch.equal(r1.x_adv, r2.x_adv)
    assert model.training and model.bn.training and model.drop.training
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), f"{k} changed"  # BatchNorm running stats included
    assert all(p.grad is None for p in model.parameters())


def test_targeted_attack_reaches_target():
    from tests.helpers import LinearModel

    model = LinearModel(36, 5).eval()
    x, y = _data(4, n=16)
    y = model(x).argmax(1)
    target = (y + 1) % 5
    res = PGD(Linf(1.0), steps=30, loss="margin")(model, x, y, target=target)
    assert bool(res.success.all())
    assert torch.equal(res.logits.argmax(1), target)


# --------------------------------------------------------------------- errors
def _call(**kw):
    model = TinyNet().eval()
    x, y = _data(5)
    args = {"x": x, "y": y, "target": None} | kw
    return PGD(Linf(0.1), steps=2)(model, args["x"], args["y"], target=args["target"])


@pytest.mark.parametrize(
    "kw,exc,match",
    [
        ({"x": torch.rand(6, 1, 6, 6) + 1.5}, ValueError, "outside the threat's bounds"),
        ({"x": torch.full((6, 1, 6, 6), float("nan"))}, ValueError, "NaN"),
        ({"x": torch.randint(0, 2, (6, 1, 6, 6))}, TypeError, "floating-point"),
        ({"y": torch.zeros(6, dtype=torch.int32)}, TypeError, "int64"),
        ({"y": torch.zeros(6, 1, dtype=torch.long)}, ValueError, r"shape \(6,\)"),
        ({"y": torch.full((6,), 7, dtype=torch.long)}, ValueError, "outside"),
        ({"target": torch.full((6,), -1, dtype=torch.long)}, ValueError, "target has labels outside"),
    ],
)
def test_clear_errors_name_the_argument(kw, exc, match):
    with pytest.raises(exc, match=match):
        _call(**kw)


def test_target_equal_to_label_is_rejected():
    x, y = _data(6)
    with pytest.raises(ValueError, match="target equals the true label"):
        PGD(Linf(0.1))(TinyNet().eval(), x, y, target=y.clone())


def test_bad_attack_arguments():
    with pytest.raises(ValueError, match="steps"):
        PGD(Linf(0.1), steps=0)
    with pytest.raises(TypeError, match="threat"):
        PGD(0.1)
    with pytest.raises(ValueError, match="logits of shape"):
        PGD(Linf(0.1))(lambda z: z.flatten(1).sum(1), *_data(7))
