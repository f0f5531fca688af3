"""Fingerprints: the same x_adv, success and query counts on a fixed batch, for every registered attack.

A refactor of the attacks, the threats or the base class must not change what an attack returns on
valid input. Each case runs in float64 (a float64 model, so rounding noise is far below the 1e-6 grid
the points are hashed on) and is compared with ``tests/attack_fingerprints.json``. An intended change
(a fixed bug, a new default) regenerates the file and says why in its commit:

    python tests/test_attack_fingerprints.py --write
"""

from __future__ import annotations

import hashlib
import json
import sys
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

if __name__ == "__main__":  # run as a script from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from advx.attacks.registry import attacks, build_attack
from advx.threat import L0, L1, L2, Decibels, Linf

STORE = Path(__file__).with_name("attack_fingerprints.json")
EPS = {"linf": 0.25, "l2": 2.5, "l1": 10.0, "l0": 12, "db": -14.0}
#: small, fixed budgets (the contract suite's, a little larger)
OPTIONS = {"apgd-t": {"n_target_classes": 3}, "malt": {"n_target_classes": 3},
           "cw": {"steps": 20, "binary_search_steps": 3}, "ead": {"steps": 20, "binary_search_steps": 3},
           "fab": {"steps": 10}, "fab-t": {"steps": 5, "n_target_classes": 3}, "spsa": {"samples": 4},
           "nes": {"samples": 4}, "tifgsm": {"kernel_size": 3}}


class Net(nn.Module):
    """One 3x3 conv + ReLU + linear on (N, 1, 8, 8), 5 classes, float64, weights from seed 0."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv = nn.Conv2d(1, 4, 3, padding=1).double()
        self.fc = nn.Linear(4 * 8 * 8, 5).double()
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.3)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).flatten(1))


def _threat(norm: str):
    return Decibels(EPS[norm], bounds=(0.0, 1.0)) if norm == "db" else \
        {"linf": Linf, "l2": L2, "l1": L1, "l0": L0}[norm](EPS[norm])


def cases() -> list[tuple[str, str, bool]]:
    out = []
    for name, info in attacks().items():
        for norm in info.threats:
            out.append((name, norm, False))
            if info.targeted:
                out.append((name, norm, True))
    return out


def fingerprint(name: str, norm: str, targeted: bool) -> dict:
    model = Net().eval()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(6, 1, 8, 8, generator=g, dtype=torch.float64)
    with torch.no_grad():
        y = model(x).argmax(1)
    target = (y + 1) % 5 if targeted else None
    attack = build_attack(name, _threat(norm), steps=6, restarts=2, queries=120, seed=0, options=OPTIONS.get(name))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = attack(model, x, y, target)
    grid = torch.round(res.x_adv * 1e6).long()
    return {"x_adv": hashlib.sha256(grid.numpy().tobytes()).hexdigest()[:16],
            "success": res.success.int().tolist(), "queries": res.queries.tolist()}


def _key(name: str, norm: str, targeted: bool) -> str:
    return f"{name} {norm} {'targeted' if targeted else 'untargeted'}"


@pytest.fixture(scope="module")
def stored() -> dict:
    return json.loads(STORE.read_text())


@pytest.mark.parametrize("name,norm,targeted", cases(), ids=[_key(*c).replace(" ", "-") for c in cases()])
def test_attack_returns_what_it_returned(name, norm, targeted, stored):
    key = _key(name, norm, targeted)
    assert key in stored, f"no fingerprint for {key!r}: run python tests/test_attack_fingerprints.py --write"
    assert fingerprint(name, norm, targeted) == stored[key], (
        f"{key}: x_adv/success/queries changed on the fixed batch; if intended, regenerate with "
        "python tests/test_attack_fingerprints.py --write and say why in the commit")


def test_no_stale_fingerprints(stored):
    assert set(stored) == {_key(*c) for c in cases()}


if __name__ == "__main__":
    torch.set_num_threads(1)
    if "--write" not in sys.argv[1:]:
        sys.exit("usage: python tests/test_attack_fingerprints.py --write")
    found = {_key(*c): fingerprint(*c) for c in cases()}
    STORE.write_text(json.dumps(found, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(found)} fingerprints to {STORE}")
