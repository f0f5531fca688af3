"""The house rules of the package layout: ``import advx`` stays light, the layers hold.

The layering contracts themselves (imports point downward only, no cycles) are
import-linter contracts in pyproject.toml, run by ``make lint`` (part of ``make test``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


_PROBE = """
import json, sys
import advx
print(json.dumps({
    "medium": any(m.startswith(("advx.text", "advx.audio")) for m in sys.modules),
    "heavy": sorted(m for m in ("transformers", "timm", "textattack", "pocketsphinx", "soundfile", "librosa")
                    if m in sys.modules),
    "names": [str(advx.Decibels(-30)), advx.PGD.__name__, advx.ScoresOnly.__name__, str(advx.Linf(0.1))],
}))
"""


@pytest.fixture(scope="module")
def fresh_import() -> dict:
    """What a fresh ``import advx`` loads, from one subprocess."""
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120, cwd=ROOT,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_advx_loads_neither_text_nor_audio(fresh_import):
    # the issue's check: python -c "import advx, sys; print(any(m.startswith(('advx.text', 'advx.audio'))
    #                                                        for m in sys.modules))" prints False
    assert fresh_import["medium"] is False


def test_import_advx_loads_no_optional_heavy_package(fresh_import):
    assert fresh_import["heavy"] == []


def test_top_level_names_still_resolve(fresh_import):
    assert fresh_import["names"] == ["db:-30", "PGD", "ScoresOnly", "linf:0.1"]


def test_layers_contract_matches_the_design():
    """pyproject's layers contract is the DESIGN.md stack, top to bottom."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = [c for c in config["contracts"] if c["type"] == "layers"]
    flat = [set(layer.replace(":", "|").split("|")) for layer in layers["layers"]]
    order = [name.strip() for layer in flat for name in sorted(layer)]
    for upper, lower in [("cli", "jobs"), ("jobs", "evaluation"), ("report", "evaluation"), ("defenses", "attacks"),
                         ("evaluation", "attacks"), ("text", "model"), ("audio", "threat"), ("attacks", "model"),
                         ("model", "data"), ("threat", "zoo")]:
        assert order.index(upper) < order.index(lower), (upper, lower)
    assert any(c["type"] == "acyclic_siblings" for c in config["contracts"])
