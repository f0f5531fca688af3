"""The contract every tensor attack keeps, checked for every registered attack x every threat it declares.

Cases come from :func:`advx.attacks.registry.attacks` (as scikit-learn's ``all_estimators``
feeds ``check_estimator``): registering an attack puts it under every check here.
Properties: x_adv inside the ball and the bounds, shape/dtype/device kept, success judged by
the model on x_adv (targeted: reaching the target), queries counted honestly (against
advx.model.PassCounter, the count at the model) and never above a stated budget, eps = 0 returns x, the model handed back as it
came, deterministic under a seed, N = 0 gives an empty result, NaN/inf logits never count as
success, float64/float16 inputs are returned in their dtype, non-integer budgets are refused.
Every check runs on each ``device`` (CPU, plus CUDA where available).
"""

from __future__ import annotations

import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from advx.attacks import PGD, DeepFool
from advx.attacks.base import NonFiniteLogits
from advx.attacks.registry import attacks, build_attack
from advx.model import PassCounter
from advx.threat import L0, L1, L2, Decibels, Linf

REGISTRY = attacks()
#: small configurations so that every attack runs in a blink (the registry's budgets get steps=3,
#: restarts=2, queries=60); an attack without an entry runs with its defaults plus those, and the
#: cost check below fails if that is too slow for the suite
FAST = {
    "apgd-t": {"n_target_classes": 2}, "malt": {"n_target_classes": 2},
    "cw": {"steps": 10, "binary_search_steps": 2}, "ead": {"steps": 10, "binary_search_steps": 2},
    "deepfool": {"steps": 5}, "fab": {"steps": 5}, "fab-t": {"steps": 4, "n_target_classes": 2},
    "spsa": {"samples": 4}, "nes": {"samples": 4}, "tifgsm": {"kernel_size": 3},
    "hopskipjump": {"init_evals": 10}, "simba": {},
}
STEPS, RESTARTS, QUERIES = 3, 2, 60
EPS = {"linf": 0.1, "l2": 0.8, "l1": 4.0, "l0": 5, "db": -6.0}
MAKE = {"linf": Linf, "l2": L2, "l1": L1, "l0": L0, "db": Decibels}
#: configured variants checked besides the registered forms: label -> (registered name, options, norms)
VARIANTS = {
    "fgsm+random-start": ("fgsm", {"random_start": True}, ("linf", "l2", "l1")),
    "pgd+margin+momentum": ("pgd", {"loss": "margin", "momentum": 0.9}, ("linf", "l2", "l1")),
    "pgd+no-early-stop": ("pgd", {"early_stop": False}, ("linf", "l2")),
    "simba+dct": ("simba", {"basis": "dct"}, ("linf",)),
    "hopskipjump+early-stop": ("hopskipjump", {"early_stop": True}, ("l2",)),
}
CASES = [(name, norm) for name, info in REGISTRY.items() for norm in info.threats] + [
    (label, norm) for label, (_, _, norms) in VARIANTS.items() for norm in norms]
IDS = [f"{name}-{norm}" for name, norm in CASES]
#: the most passes (forwards + backwards) one sample may cost in a contract case
MAX_PASSES = 400


def threat_for(norm: str, eps=None):
    eps = EPS[norm] if eps is None else eps
    return MAKE[norm](eps) if norm != "db" else Decibels(eps, bounds=(0.0, 1.0))


def make(name: str, threat, queries: int = QUERIES):
    """The contract case ``name`` (a registered attack or a VARIANTS label), small, for ``threat``."""
    if name in VARIANTS:
        base, options, _ = VARIANTS[name]
        return build_attack(base, threat, steps=STEPS, restarts=RESTARTS, queries=queries,
                            options={**FAST.get(base, {}), **options})
    return build_attack(name, threat, steps=STEPS, restarts=RESTARTS, queries=queries, options=FAST.get(name))


def info_of(name: str):
    return REGISTRY[VARIANTS[name][0] if name in VARIANTS else name]


class TinyNet(nn.Module):
    """conv + BatchNorm + dropout + linear on (N, 1, 6, 6), 5 classes: mode and buffers must survive an attack."""

    def __init__(self, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(4 * 6 * 6, 5)

    def forward(self, x):
        return self.fc(self.drop(torch.relu(self.bn(self.conv(x)))).flatten(1))


def _data(seed: int, device, n: int = 4):
    g = torch.Generator().manual_seed(seed)
    x, y = torch.rand(n, 1, 6, 6, generator=g), torch.randint(0, 5, (n,), generator=g)
    return x.to(device), y.to(device)


def _inside(threat, x_adv, x):
    lo, hi = threat.box(x)
    assert bool((x_adv >= lo - 1e-6).all() and (x_adv <= hi + 1e-6).all()), "x_adv leaves the bounds"
    d = threat.distance(x_adv, x)  # in the threat's units: eps is its bound (Decibels: a ratio to the peak)
    assert bool((d <= threat.eps * (1 + 1e-5) + 1e-6).all()), f"x_adv leaves the ball: {d.tolist()}"


def test_every_registered_attack_has_contract_cases():
    """A registered attack is checked here automatically; the small configurations name only real attacks."""
    assert {name for name, _ in CASES} - set(VARIANTS) == set(REGISTRY)
    assert all(base in REGISTRY for base, _, _ in VARIANTS.values())
    assert set(FAST) <= set(REGISTRY), f"stale FAST entries: {sorted(set(FAST) - set(REGISTRY))}"
    assert len(CASES) >= 50


@pytest.mark.parametrize("name,norm", CASES, ids=IDS)
@settings(max_examples=3)
@given(seed=st.integers(0, 10_000), targeted=st.booleans())
def test_result_inside_threat_judged_by_the_model_and_counted(name, norm, seed, targeted, device):
    info = info_of(name)
    model = PassCounter(TinyNet()).eval().to(device)
    x, y = _data(seed, device)
    target = (y + 1 + seed % 4) % 5 if targeted and info.targeted else None
    threat = threat_for(norm)
    res = make(name, threat)(model, x, y, target)
    assert res.x_adv.shape == x.shape and res.x_adv.dtype == x.dtype and res.x_adv.device == x.device
    _inside(threat, res.x_adv, x)
    torch.testing.assert_close(res.distance, threat.distance(res.x_adv, x))
    with torch.no_grad():
        pred = model.model(res.x_adv).argmax(1)
    assert torch.equal(res.success, pred == target if target is not None else pred != y)
    assert torch.equal(res.logits.argmax(1), pred)
    with torch.no_grad():
        clean = model.model(x).argmax(1)
    already = clean == target if target is not None else clean != y
    assert bool(res.success[already].all())  # never worse than x: an input adversarial at x stays a success
    for t in (res.success, res.queries, res.gradients, res.distance, res.logits, res.clean_correct):
        assert t.device == x.device and len(t) == len(x)
    assert bool((res.queries >= res.gradients).all() and (res.queries >= 2).all())
    assert int(res.queries.max()) <= MAX_PASSES, f"{name}: too costly for the contract suite; add it to FAST"
    assert int((res.queries - res.gradients).sum()) == model.forwards  # every forward counted, on the right sample
    assert not bool(res.nonfinite.any())
    if info.black_box:
        assert bool((res.queries <= QUERIES).all()), f"{name} overspent its budget: {res.queries.tolist()}"
        assert int(res.gradients.sum()) == 0


@pytest.mark.parametrize("name", [n for n, i in REGISTRY.items() if i.black_box])
@settings(max_examples=4)
@given(seed=st.integers(0, 10_000), queries=st.integers(3, 90))
def test_black_box_budgets_are_hard_limits(name, seed, queries):
    """No score- or decision-based attack spends more than ``queries`` on any sample (the contract's 2 included)."""
    info = REGISTRY[name]
    model = PassCounter(TinyNet()).eval()
    x, y = _data(seed, "cpu", n=5)
    threat = threat_for(info.threats[0])
    try:
        attack = make(name, threat, queries=queries)
    except ValueError as e:  # a budget too small for one step of the attack is refused, naming it
        assert "queries" in str(e)
        return
    res = attack(model, x, y)
    assert bool((res.queries <= queries).all()), res.queries.tolist()
    assert int(res.queries.sum()) == model.forwards and int(res.gradients.sum()) == 0


@pytest.mark.parametrize("name,norm", [c for c in CASES if c[1] != "db"], ids=[i for c, i in zip(CASES, IDS)
                                                                               if c[1] != "db"])
def test_eps_zero_returns_x_unchanged(name, norm, device):
    model = TinyNet().eval().to(device)
    x, y = _data(1, device)
    res = make(name, threat_for(norm, 0))(model, x, y)
    assert torch.equal(res.x_adv, x)
    assert torch.equal(res.distance, torch.zeros(len(x), device=device))


@pytest.mark.parametrize("name,norm", CASES, ids=IDS)
def test_deterministic_and_model_left_as_it_came(name, norm, device):
    model = TinyNet().to(device)
    model.train()
    model.fc.weight.requires_grad_(False)  # a user's frozen layer must stay frozen
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    x, y = _data(2, device)
    attack = make(name, threat_for(norm))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r1 = attack(model, x, y, generator=torch.Generator(device=device).manual_seed(3))
    assert any("training mode" in str(w.message) for w in caught)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r2 = attack(model, x, y, generator=torch.Generator(device=device).manual_seed(3))
        r3 = make(name, threat_for(norm))(model, x, y)  # no generator: the attack's seed
        r4 = make(name, threat_for(norm))(model, x, y)
    assert torch.equal(r1.x_adv, r2.x_adv) and torch.equal(r1.queries, r2.queries)
    assert torch.equal(r3.x_adv, r4.x_adv)
    assert model.training and model.bn.training and model.drop.training
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), f"{k} changed"  # BatchNorm running stats included
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("name", list(REGISTRY))
def test_empty_batch_gives_an_empty_result_without_calling_the_model(name, device):
    model = PassCounter(TinyNet()).eval().to(device)
    x, y = torch.zeros(0, 1, 6, 6, device=device), torch.zeros(0, dtype=torch.long, device=device)
    res = make(name, threat_for(REGISTRY[name].threats[0]))(model, x, y)
    assert res.x_adv.shape == (0, 1, 6, 6) and res.x_adv.device == x.device and model.forwards == 0
    for t in (res.success, res.distance, res.queries, res.gradients, res.clean_correct, res.nonfinite):
        assert t.shape == (0,) and t.device == x.device
    assert res.logits.shape[0] == 0


class NaNAbove(nn.Module):
    """TinyNet whose logits are NaN for any input with a feature above ``level`` (the clean data stay below)."""

    def __init__(self, level: float = 0.62, value: float = float("nan")):
        super().__init__()
        self.net, self.level, self.value = TinyNet().eval(), level, value

    def forward(self, x):
        out = self.net(x)
        bad = (x.flatten(1) > self.level).any(1, keepdim=True)
        return torch.where(bad, torch.full_like(out, self.value), out)


@pytest.mark.parametrize("name,norm", CASES, ids=IDS)
def test_non_finite_logits_are_never_success(name, norm):
    """NaN (or inf) logits met during the attack raise NonFiniteLogits, or with nonfinite="fail" the samples are
    marked failed: never success, never NaN in x_adv, never outside the bounds."""
    x, y = _data(3, "cpu")
    x = x * 0.6  # clean inputs below the NaN level
    threat = threat_for(norm)
    for value in (float("nan"), float("inf")):
        model = NaNAbove(value=value).eval()
        try:
            res = make(name, threat)(model, x, y)
        except NonFiniteLogits as e:
            assert "non-finite logits" in str(e) and "nonfinite='fail'" in str(e)
        else:  # the attack never stepped above the level: then every verdict is a finite one
            assert bool(torch.isfinite(res.logits[res.success]).all())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = make(name, threat)(model, x, y, nonfinite="fail")
        assert bool(torch.isfinite(res.x_adv).all())
        _inside(threat, res.x_adv, x)
        with torch.no_grad():
            finite = torch.isfinite(model(res.x_adv)).all(1)
        assert not bool((res.success & ~finite).any()), "a non-finite verdict counted as success"
        assert not bool((res.nonfinite & res.success).any())
        assert bool(res.nonfinite[~finite].all())  # every sample with a non-finite final verdict is flagged


def test_nan_logits_at_eps_zero_are_not_success():
    """The issue's case: PGD at eps 0 on a model returning NaN logits reported success 0.90 (argmax of NaN is 0)."""
    x, y = _data(4, "cpu", n=10)
    y = torch.ones(10, dtype=torch.long)

    def nan_model(z):
        return z.flatten(1)[:, :5] * float("nan")

    with pytest.raises(NonFiniteLogits, match="non-finite logits"):
        PGD(Linf(0.0), steps=2)(nan_model, x, y)
    with pytest.warns(UserWarning, match="marked failed"):
        res = PGD(Linf(0.0), steps=2)(nan_model, x, y, nonfinite="fail")
    assert res.success_rate == 0.0 and not bool(res.clean_correct.any()) and bool(res.nonfinite.all())


def test_deepfool_with_nan_gradients_returns_finite_points_inside_the_box():
    """The issue's case: finite logits, NaN input gradients (0 * sqrt at 0) -- DeepFool returned 1,568 NaN values."""
    lin = nn.Linear(36, 5)

    def model(z):
        return lin(z.flatten(1)) + 0 * torch.sqrt(z.flatten(1) - z.flatten(1).detach()).sum(1, keepdim=True)

    x, y = _data(5, "cpu", n=6)
    with torch.no_grad():
        y = model(x).argmax(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = DeepFool(L2(10.0), steps=5)(model, x, y)
    assert bool(torch.isfinite(res.x_adv).all())
    _inside(L2(10.0), res.x_adv, x)
    with torch.no_grad():
        assert torch.equal(res.success, model(res.x_adv).argmax(1) != y)


@pytest.mark.parametrize("name", list(REGISTRY))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float16])
def test_other_float_dtypes_are_attacked_in_the_models_and_returned_in_theirs(name, dtype, device):
    norm = REGISTRY[name].threats[0]
    model = PassCounter(TinyNet()).eval().to(device)
    x, y = _data(6, device)
    x = x.to(dtype)
    threat = threat_for(norm)
    res = make(name, threat)(model, x, y)
    assert res.x_adv.dtype == dtype and res.x_adv.shape == x.shape and res.x_adv.device == x.device
    assert bool(torch.isfinite(res.x_adv).all())
    lo, hi = threat.box(x)
    assert bool((res.x_adv >= lo).all() and (res.x_adv <= hi).all())
    tol = 1e-3 if dtype == torch.float16 else 1e-6
    assert bool((threat.distance(res.x_adv.double(), x.double()) <= threat.eps * (1 + tol) + tol).all())
    with torch.no_grad():
        pred = model.model(res.x_adv.float()).argmax(1)
    assert torch.equal(res.success, pred != y)  # judged on the returned point


@pytest.mark.parametrize("name", list(REGISTRY))
def test_budgets_refuse_non_integers_naming_the_argument(name):
    info = REGISTRY[name]
    threat = threat_for(info.threats[0])
    for arg in info.budget:
        with pytest.raises(ValueError, match=f"{arg} must be a whole number"):
            build_attack(name, threat, options={**FAST.get(name, {}), arg: 2.5})
        with pytest.raises(ValueError, match=f"{arg} must be"):
            build_attack(name, threat, **{arg: 2.5})
    with pytest.raises(ValueError, match="seed must be a whole number"):
        build_attack(name, threat, seed=1.5)


@pytest.mark.parametrize("name", [n for n, i in REGISTRY.items() if not i.targeted])
def test_untargeted_only_attacks_refuse_a_target(name):
    x, y = _data(7, "cpu")
    with pytest.raises(ValueError, match="target"):
        make(name, threat_for(REGISTRY[name].threats[0]))(TinyNet().eval(), x, y, (y + 1) % 5)


def test_targeted_attack_reaches_target():
    from tests.helpers import LinearModel

    model = LinearModel(36, 5).eval()
    x, _ = _data(4, "cpu", n=16)
    y = model(x).argmax(1)
    target = (y + 1) % 5
    res = PGD(Linf(1.0), steps=30, loss="margin")(model, x, y, target=target)
    assert bool(res.success.all())
    assert torch.equal(res.logits.argmax(1), target)


# --------------------------------------------------------------------- errors
def _call(**kw):
    model = TinyNet().eval()
    x, y = _data(5, "cpu", n=6)
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
    x, y = _data(6, "cpu")
    with pytest.raises(ValueError, match="target equals the true label"):
        PGD(Linf(0.1))(TinyNet().eval(), x, y, target=y.clone())


def test_bad_attack_arguments():
    with pytest.raises(ValueError, match="steps"):
        PGD(Linf(0.1), steps=0)
    with pytest.raises(ValueError, match="steps must be a whole number"):
        PGD(Linf(0.1), steps=2.5)
    with pytest.raises(TypeError, match="threat"):
        PGD(0.1)
    with pytest.raises(ValueError, match="logits of shape"):
        PGD(Linf(0.1))(lambda z: z.flatten(1).sum(1), *_data(7, "cpu"))
    with pytest.raises(ValueError, match="nonfinite must be"):
        PGD(Linf(0.1))(TinyNet().eval(), *_data(7, "cpu"), nonfinite="ignore")


def test_a_model_whose_class_count_changes_mid_attack_is_refused_by_name():
    calls = []

    def fickle(z):  # 5 classes at the clean input, 4 afterwards (a remote model redeployed mid-run)
        calls.append(len(z))
        return z.flatten(1)[:, : 5 if len(calls) == 1 else 4] * 1.0

    x, y = _data(9, "cpu")
    with pytest.raises(ValueError, match=r"\(during Square\) returned 4 classes, 5 at the clean input"):
        build_attack("square", Linf(0.1), queries=20)(fickle, x.flatten(1), y)


def test_a_model_that_cannot_take_the_dtype_gets_a_named_error():
    w = torch.randn(36, 5)

    def float_only(z):  # a plain function: its dtype cannot be read, so x's dtype goes in
        return z.flatten(1) @ w

    x, y = _data(8, "cpu")
    with pytest.raises(TypeError, match=r"x has dtype torch.float64, which the model does not take"):
        PGD(Linf(0.1), steps=1)(float_only, x.double(), y)
