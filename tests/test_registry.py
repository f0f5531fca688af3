"""The attack registry: one source for names, threats, kinds and budgets (advx.attacks.registry).

Every attack file registers its class; the CLI (``advx attacks``, ``build_attack``), the
README's table and the contract suite (tests/test_attack_contract.py) read the registry.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import logging
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import advx.attacks as attacks_pkg
from advx.attacks.base import Attack, AttackContext, UnsupportedThreat
from advx.attacks.registry import (
    BUDGETS,
    KINDS,
    THREATS,
    attacks,
    build_attack,
    get,
    register,
    registrations,
    supported_threats,
)
from advx.threat import L0, L1, L2, Linf

ROOT = Path(__file__).resolve().parent.parent


def _script():
    spec = importlib.util.spec_from_file_location("support_table", ROOT / "scripts" / "support_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_attack_class_the_package_exports_is_registered():
    exported = {obj for name in attacks_pkg.__all__ if inspect.isclass(obj := getattr(attacks_pkg, name))
                and issubclass(obj, Attack) and obj not in (Attack,) and not inspect.isabstract(obj)}
    registered = {info.cls for info in attacks().values()}
    helpers = {attacks_pkg.EstimatedPGD}  # PGD on any estimator: SPSA and NES are its registered forms
    assert exported - helpers <= registered, f"unregistered: {sorted(c.__name__ for c in exported - helpers - registered)}"
    names = set(attacks())
    for name in ("fgsm", "fgm", "pgd", "bim", "apgd-ce", "apgd-dlr", "apgd-t", "cw", "deepfool", "fab", "fab-t", "ead",
                 "jsma", "square", "simba", "spsa", "nes", "hopskipjump", "boundary", "mifgsm", "difgsm", "tifgsm"):
        assert name in names


def test_entries_are_well_formed_and_budgets_are_constructor_arguments():
    for name, info in attacks().items():
        assert info.name == name and info.kind in KINDS and info.threats and set(info.threats) <= set(THREATS)
        assert set(info.budget) <= set(BUDGETS) and "\n" not in info.summary and info.summary
        params = inspect.signature(info.cls).parameters
        assert all(b in params for b in info.budget) and all(o in params for o in info.options)
        assert ("queries" in info.budget) == info.black_box, name  # black-box attacks take a query budget


def test_get_is_case_insensitive_and_names_the_known_ones():
    assert get(" PGD ").cls.__name__ == "PGD"
    with pytest.raises(ValueError, match=r"attack 'nope' is unknown; use one of .*hopskipjump"):
        get("nope")


def test_the_attacks_own_threat_check_reads_its_registration():
    from advx.attacks import FAB, CarliniWagnerL2, Square

    assert supported_threats(Square) == ("linf", "l2", "db")
    with pytest.raises(UnsupportedThreat, match=r"threat: Square supports advx.threat.Linf, L2 or Decibels threats, got L1"):
        Square(L1(1.0))
    with pytest.raises(ValueError):  # UnsupportedThreat is a ValueError as well as a TypeError
        CarliniWagnerL2(Linf(0.1))
    FAB(L1(1.0))  # accepted: listed

    class MyFAB(FAB):  # a user's subclass inherits its parent's threats
        pass

    assert registrations(MyFAB)[0].name == "fab"
    with pytest.raises(TypeError, match="MyFAB supports"):
        MyFAB(L0(2))


def test_unregistered_attacks_check_nothing_and_register_validates():
    class Mine(Attack):
        def run(self, ctx: AttackContext):
            return ctx.x

    Mine(L0(3))  # no registration: no threat check
    with pytest.raises(ValueError, match="kind must be one of"):
        register("mine", threats=("l2",), kind="magic", summary="x")
    with pytest.raises(ValueError, match="threats must be"):
        register("mine", threats=("l3",), kind="gradient", summary="x")
    with pytest.raises(ValueError, match="takes no queries"):
        register("mine", threats=("l2",), kind="score-based", budget=("queries",), summary="x")(Mine)
    with pytest.raises(ValueError, match="taken by"):
        register("pgd", threats=("l2",), kind="gradient", summary="x")(Mine)
    assert "mine" not in attacks()


# ------------------------------------------------------------------ build_attack
def test_build_attack_forwards_budgets_only_where_listed(caplog):
    pgd = build_attack("pgd", Linf(0.1), steps=7, restarts=2, seed=3)
    assert (pgd.steps, pgd.restarts, pgd.seed) == (7, 2, 3)
    assert not hasattr(build_attack("fgsm", L2(0.5), steps=7), "steps")
    default = build_attack("cw", L2(1.0)).steps
    with caplog.at_level(logging.DEBUG, logger="advx.attacks.registry"):
        assert build_attack("cw", L2(1.0), steps=7).steps == default  # min-norm attacks keep their own steps
    assert "takes no common steps" in caplog.text
    cw = build_attack("cw", L2(1.0), options={"steps": 11, "binary_search_steps": 2})
    assert (cw.steps, cw.binary_search_steps) == (11, 2)
    assert build_attack("pgd", Linf(0.1), steps=7, options={"steps": 9}).steps == 9  # options win
    assert build_attack("hopskipjump", L2(2.0), queries=200, steps=3).queries == 200
    assert build_attack("square", Linf(0.1), queries=300, restarts=2).restarts == 2
    assert build_attack("apgd-dlr", Linf(0.1)).loss.__name__ == "dlr"
    spsa = build_attack("spsa", Linf(0.1), queries=200, options={"samples": 4})
    assert spsa.queries == 200 and spsa.steps == (200 - 2 - 1) // 9


@pytest.mark.parametrize("kwargs,match", [
    ({"steps": 2.5}, "steps must be a whole number"),
    ({"restarts": 0}, "restarts must be >= 1"),
    ({"queries": 1.5, "name": "square"}, "queries must be a whole number"),
    ({"queries": 2, "name": "hopskipjump", "threat": L2(1.0)}, "queries must be >= 3"),
    ({"seed": 0.5}, "seed must be a whole number"),
    ({"options": {"binary_search_steps": 2}}, r"'pgd' does not take option\(s\) binary_search_steps; it takes steps"),
    ({"options": {"loss": "ce"}, "name": "apgd-dlr"}, "fixes loss='dlr'"),
    ({"threat": L2(1.0), "name": "jsma"}, r"'jsma' does not support the l2 threat; it works with l0"),
])
def test_build_attack_errors_name_the_argument(kwargs, match):
    kwargs = dict(kwargs)
    name, threat = kwargs.pop("name", "pgd"), kwargs.pop("threat", Linf(0.1))
    with pytest.raises(ValueError, match=match):
        build_attack(name, threat, **kwargs)


def test_build_attack_refuses_a_non_threat():
    with pytest.raises(TypeError, match="threat must be an advx.threat.Threat"):
        build_attack("pgd", 0.1)


@pytest.mark.parametrize("name", list(attacks()))
def test_every_registered_attack_builds_for_each_of_its_threats(name):
    eps = {"linf": 0.1, "l2": 0.5, "l1": 2.0, "l0": 3}
    info = get(name)
    for norm in info.threats:
        if norm == "db":
            from advx.threat import Decibels

            threat = Decibels(-20.0)
        else:
            threat = {"linf": Linf, "l2": L2, "l1": L1, "l0": L0}[norm](eps[norm])
        attack = build_attack(name, threat, steps=3, restarts=1, queries=500, options={"samples": 4} if name in
                              ("spsa", "nes") else None)
        assert isinstance(attack, info.cls) and attack.threat is threat


# ------------------------------------------------------------------ advx attacks
def test_advx_attacks_lists_the_registry_as_table_and_json():
    from advx.cli import cli

    runner = CliRunner()
    out = runner.invoke(cli, ["attacks", "--json"])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.output)
    assert [r["name"] for r in rows] == list(attacks())
    hsj = next(r for r in rows if r["name"] == "hopskipjump")
    assert hsj == {"name": "hopskipjump", "class": "HopSkipJump", "threats": ["l2", "linf"], "kind": "decision-based",
                   "budget": ["queries"], "targeted": True, "summary": get("hopskipjump").summary, "options": {}}
    table = runner.invoke(cli, ["attacks"])
    assert table.exit_code == 0
    for name in attacks():
        assert name in table.output
    black = json.loads(runner.invoke(cli, ["attacks", "--kind", "score-based", "--threat", "l1", "--json"]).output)
    assert {r["name"] for r in black} == {n for n, i in attacks().items() if i.kind == "score-based" and "l1" in i.threats}


def test_the_cli_choices_are_the_registry_kinds_and_threats():
    from advx.cli.attacks import command

    choices = {p.name: list(p.type.choices) for p in command.params if hasattr(p.type, "choices")}
    assert choices == {"kind": list(KINDS), "threat": list(THREATS)}


# ------------------------------------------------------------------ README
def test_readme_holds_the_generated_attacks_table():
    script = _script()
    readme = (ROOT / "README.md").read_text()
    assert script.block() in readme, "README's attacks table is stale: run python scripts/support_table.py --write"
    table = script.table()
    for name, info in attacks().items():  # and the table itself says what the registry says
        row = next(line for line in table.splitlines() if line.startswith(f"| `{name}` |"))
        assert f"| {info.kind} |" in row
    assert len(table.splitlines()) == 2 + len(attacks())


def test_support_table_replace_needs_the_markers():
    script = _script()
    with pytest.raises(ValueError, match="markers"):
        script.replace("no table here")
    text = f"a\n{script.BEGIN}\nold\n{script.END}\nb"
    assert script.replace(text) == f"a\n{script.block()}\nb"


def test_registry_entries_survive_a_model_call():
    """A registered attack built by name runs end to end (the path `advx attack --attack NAME` takes)."""
    from tests.helpers import LinearModel

    model = LinearModel(12, 3).eval()
    x = torch.rand(4, 12, generator=torch.Generator().manual_seed(0))
    y = model(x).argmax(1)
    res = build_attack("hopskipjump", L2(1.0), queries=60)(model, x, y)
    assert bool((res.queries <= 60).all())
