"""APGD and APGD-T (Croce & Hein 2020): schedule, invariants, known answers, strength."""

from __future__ import annotations

import warnings

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from tests.geometry import exact_distance
from tests.helpers import EPS, LinearModel, TinyMLP, boxed_linear_problem, per_sample, tiny_data

from advx.attacks.apgd import APGD, APGDT, checkpoints
from advx.attacks.pgd import PGD
from advx.threat import L0, L1, L2, Linf


# ---------------------------------------------------------------- schedule
def test_checkpoints_follow_the_paper():
    # p = 0, .22, .41, .57, .70, .80, .87, .93, .99 (then 1.05 > 1)
    assert checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]
    assert checkpoints(1) == [1]
    for n in (5, 10, 37, 250):
        w = checkpoints(n)
        gaps = [b - a for a, b in zip([0, *w], w)]
        assert w == sorted(set(w)) and 1 <= w[0] and w[-1] <= n
        assert all(g >= 1 for g in gaps)


# --------------------------------------------------------------- invariants
ATTACKS = [
    ("apgd-ce", lambda t: APGD(t, steps=6, restarts=2), (Linf, L2, L1)),
    ("apgd-dlr", lambda t: APGD(t, steps=6, loss="dlr"), (Linf, L2, L1)),
    ("apgd-t", lambda t: APGDT(t, steps=5, n_target_classes=2), (Linf, L2, L1)),
]
CASES = [(name, make, kind) for name, make, kinds in ATTACKS for kind in kinds]
IDS = [f"{name}-{kind.__name__}" for name, make, kind in CASES]


@pytest.mark.parametrize("name,make,kind", CASES, ids=IDS)
@given(seed=st.integers(0, 10_000), scale=st.floats(0.1, 3.0), double=st.booleans())
def test_inside_ball_and_bounds_deterministic_and_model_untouched(name, make, kind, seed, scale, double):
    model = TinyMLP().train()  # attacked in eval mode, given back in train mode
    dtype = torch.float64 if double else torch.float32
    model = model.to(dtype)
    params = [p.detach().clone() for p in model.parameters()]
    x, y = tiny_data(seed)
    x = x.to(dtype) * 2 - 1
    threat = kind(EPS[kind] * scale, bounds=(-1.0, 1.0))
    attack = make(threat)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = attack(model, x, y, generator=torch.Generator().manual_seed(seed))
        again = attack(model, x, y, generator=torch.Generator().manual_seed(seed))
    assert res.x_adv.shape == x.shape and res.x_adv.dtype == dtype
    assert bool((res.x_adv >= -1).all() and (res.x_adv <= 1).all())
    assert bool((threat.distance(res.x_adv, x) <= threat.eps * (1 + 1e-5) + 1e-6).all())
    assert torch.equal(res.x_adv, again.x_adv) and torch.equal(res.queries, again.queries)
    assert model.training and all(p.requires_grad for p in model.parameters())
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), params))
    with torch.no_grad():
        assert torch.equal(res.success, model.eval()(res.x_adv).argmax(1) != y)


@pytest.mark.parametrize("name,make,kind", CASES, ids=IDS)
def test_eps_zero_returns_x(name, make, kind):
    x, y = tiny_data(3)
    res = make(kind(0.0))(TinyMLP().eval(), x, y)
    assert torch.equal(res.x_adv, x)


@pytest.mark.parametrize("kind", [Linf, L2, L1])
def test_per_sample_radius_is_respected(kind):
    """Audio threats give every sample its own radius: here radius = eps * ||x||_2."""
    x, y = tiny_data(4, n=8)
    threat = per_sample(kind, lambda x: EPS[kind] * x.flatten(1).norm(dim=1), bounds=(0.0, 1.0))
    res = APGD(threat, steps=8)(TinyMLP().eval(), x, y)
    radius = EPS[kind] * x.flatten(1).norm(dim=1)
    assert bool((res.distance <= radius * (1 + 1e-5)).all())
    assert bool((res.distance > 0).any())


def test_samples_already_fooled_cost_no_gradients_and_early_stop_saves_some():
    model = TinyMLP().eval()
    x, _ = tiny_data(5, n=16)
    with torch.no_grad():
        pred = model(x).argmax(1)
    y = pred.clone()
    y[:4] = (pred[:4] + 1) % 5  # misclassified from the start
    res = APGD(L2(2.0, bounds=(0.0, 1.0)), steps=20, restarts=3)(model, x, y)
    assert bool((res.gradients[:4] == 0).all())
    assert bool((res.gradients <= 20 * 3).all())
    assert bool(res.success[4:].all())  # a large ball: every sample falls ...
    assert bool((res.gradients[4:] < 20).any())  # ... and some stop before the first run ends


# ---------------------------------------------------------- known answers
@pytest.mark.parametrize("kind", [Linf, L2, L1])
def test_binary_linear_model_apgd_ce_is_exact(kind):
    """Two classes: the CE gradient is +-(w_1 - w_0), so APGD-CE finds the nearest boundary."""
    model = LinearModel(20, 2, seed=2).eval()
    x = torch.randn(32, 20, generator=torch.Generator().manual_seed(1)) * 0.5
    y = model(x).argmax(1)
    for factor, expect in ((1.05, True), (0.95, False)):
        threat = per_sample(kind, lambda z, f=factor: f * exact_distance(model, z, kind))
        res = APGD(threat, steps=40)(model, x, y)
        assert bool((res.success == expect).all()), f"x{factor}: {int(res.success.sum())}/{len(x)}"


@pytest.mark.parametrize("kind", [Linf, L2, L1])
def test_apgd_t_finds_the_nearest_boundary_of_a_linear_model(linear4, kind):
    """APGD-T tries every other class, so it reaches the exact minimal distance: all above, none below."""
    model, x, y = linear4
    for factor, expect in ((1.05, True), (0.95, False)):
        threat = per_sample(kind, lambda z, f=factor: f * exact_distance(model, z, kind))
        res = APGDT(threat, steps=40)(model, x, y)
        assert bool((res.success == expect).all()), f"x{factor}: {int(res.success.sum())}/{len(x)}"
        below = APGD(threat, steps=40, loss="dlr", restarts=2)(model, x, y)
        assert expect or not bool(below.success.any())


@pytest.mark.parametrize("kind", [Linf, L2])
def test_untargeted_apgd_dlr_nearly_reaches_the_exact_distance(linear4, kind):
    """Untargeted DLR follows the runner-up class, which is not always the nearest one."""
    model, x, y = linear4
    threat = per_sample(kind, lambda z: 1.05 * exact_distance(model, z, kind))
    res = APGD(threat, steps=40, loss="dlr")(model, x, y)
    assert res.success_rate >= 0.9


@pytest.mark.parametrize("kind", [Linf, L2])
def test_targeted_apgd_reaches_the_least_likely_class(linear4, kind):
    model, x, y = linear4

    def target_of(z):
        return model(z).argmin(1)

    def lower(z):  # beating y alone needs this much
        return exact_distance(model, z, kind, target_of(z))

    target = target_of(x)
    below = APGDT(per_sample(kind, lambda z: 0.95 * lower(z)), steps=30)(model, x, y, target=target)
    assert not bool(below.success.any())
    res = APGDT(per_sample(kind, lambda z: 2.0 * lower(z)), steps=60)(model, x, y, target=target)
    assert bool(res.success.all()) and torch.equal(res.logits.argmax(1), target)
    assert bool((res.distance >= lower(x) * (1 - 1e-4)).all())


# ------------------------------------------------------------------ strength
def test_more_restarts_or_targets_never_lose_a_sample(small_cnn):
    x = torch.rand(24, 1, 28, 28, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        y = small_cnn(x).argmax(1)
    threat = Linf(0.02)
    one = APGD(threat, steps=10, restarts=1)(small_cnn, x, y)
    two = APGD(threat, steps=10, restarts=2)(small_cnn, x, y)
    assert bool((two.success | ~one.success).all())  # the first restart is the same run
    t1 = APGDT(threat, steps=10, n_target_classes=1)(small_cnn, x, y)
    t3 = APGDT(threat, steps=10, n_target_classes=3)(small_cnn, x, y)
    assert bool((t3.success | ~t1.success).all())


def test_apgd_at_least_as_strong_as_pgd_on_a_cnn(small_cnn):
    x = torch.rand(32, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        y = small_cnn(x).argmax(1)
    for eps in (0.01, 0.02):
        pgd = PGD(Linf(eps), steps=20)(small_cnn, x, y)
        apgd = APGD(Linf(eps), steps=20)(small_cnn, x, y)
        assert 0 < apgd.success_rate < 1 or 0 < pgd.success_rate < 1  # a contest, not a walkover
        assert apgd.success_rate >= pgd.success_rate


# -------------------------------------------------------------------- errors
@pytest.mark.parametrize("kwargs,word", [
    ({"steps": 0}, "steps"), ({"restarts": 0}, "restarts"), ({"rho": 0}, "rho"), ({"momentum": 1.5}, "momentum"),
    ({"loss": "hinge"}, "loss"),
])
def test_bad_arguments_name_themselves(kwargs, word):
    with pytest.raises(ValueError, match=word):
        APGD(Linf(0.1), **kwargs)


def test_l0_is_refused_and_dlr_on_too_few_classes_warns():
    with pytest.raises(ValueError, match="L0"):
        APGD(L0(3))
    with pytest.raises(ValueError, match="n_target_classes"):
        APGDT(Linf(0.1), n_target_classes=0)
    model = LinearModel(12, 2).eval()
    x, y = tiny_data(0, classes=2)
    with pytest.warns(UserWarning, match="needs at least 3 classes"):  # DLR on 2 classes: the margin loss instead
        APGD(Linf(0.1), loss="dlr")(model, x, y)


@pytest.mark.parametrize("classes", [2, 3])
def test_apgdt_on_fewer_than_four_classes_falls_back_to_the_margin_loss_and_is_exact(classes):
    # Croce & Hein's targeted DLR needs 4 classes (AutoAttack crashes below): we warn and use the margin loss.
    # Inputs in [0.3, 0.7] and eps <= 0.3: the box never binds, so the closed-form Linf distance is exact.
    model, x, y = boxed_linear_problem(classes, 64, seed=classes)
    d = exact_distance(model, x, float("inf"))
    eps = float(d.median().clamp(max=0.3))
    with pytest.warns(UserWarning, match="margin loss"):
        r = APGDT(Linf(eps), steps=50)(model, x, y)
    assert bool(r.success[d < 0.95 * eps].all())  # every point closer than eps is broken
    assert not bool(r.success[d > eps].any())  # and no point farther (impossible)
