"""``advx attacks``: every registered attack with its threats, kind, budget and paper."""

from __future__ import annotations

import json

import click

EXAMPLE = """\b
Examples:
  advx attacks
  advx attacks --kind score-based
  advx attacks --threat l2 --json
\b
Run one with: advx attack --attack NAME --threat linf:8/255 (black-box ones take --queries N).
"""


def rows(kind: str | None = None, threat: str | None = None) -> list[dict]:
    """The registry as JSON-able rows (one per attack), filtered by kind and threat norm name."""
    from advx.attacks.registry import attacks  # noqa: PLC0415

    out = []
    for info in attacks().values():
        if kind is not None and info.kind != kind:
            continue
        if threat is not None and threat not in info.threats:
            continue
        out.append({"name": info.name, "class": info.cls.__name__, "threats": list(info.threats), "kind": info.kind,
                    "budget": list(info.budget), "targeted": info.targeted, "summary": info.summary,
                    "options": dict(info.options)})
    return out


#: the choices below are the registry's KINDS and THREATS (tests/test_registry.py checks they agree); spelled out
#: so that `advx --help` does not import every attack
@click.command(epilog=EXAMPLE, context_settings={"max_content_width": 110})
@click.option("--kind", type=click.Choice(["gradient", "minimum-norm", "score-based", "decision-based", "transfer"]),
              default=None, help="Only attacks of this kind.")
@click.option("--threat", type=click.Choice(["linf", "l2", "l1", "l0", "db"]), default=None,
              help="Only attacks that support this threat (norm name).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (one object per attack) instead of a table.")
def command(kind: str | None, threat: str | None, as_json: bool) -> None:
    """List every attack advx knows: its threats, kind, budget parameters, whether it can be targeted, and its paper."""
    found = rows(kind, threat)
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    console = Console()
    if not console.is_terminal:  # piped or captured: wide enough that no cell wraps
        console = Console(width=160)
    table = Table(title=f"{len(found)} attacks (advx attack --attack NAME)", title_justify="left")
    for head in ("name", "threats", "kind", "budget", "targeted", "summary"):
        table.add_column(head, overflow="fold")
    for r in found:
        table.add_row(r["name"], ", ".join(r["threats"]), r["kind"], ", ".join(r["budget"]) or "-",
                      "yes" if r["targeted"] else "no", r["summary"])
    console.print(table)
