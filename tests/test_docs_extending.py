"""docs/extending.md runs as written: its code blocks, in order, in an empty directory.

```python blocks are exec'd in one namespace (a block whose first line is ``# file: NAME`` is written to NAME
instead); ```sh lines starting with ``advx`` run as commands (the console script, only ADVX_HOME set); ```py
blocks are shown, not run (they need packages advx does not depend on).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
ADVX = Path(sys.executable).parent / "advx"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)


def blocks(path: Path) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in BLOCK.finditer(path.read_text())]


def run_markdown(path: Path, where: Path) -> list[str]:
    """Run ``path``'s blocks in ``where``; returns the commands run."""
    namespace: dict = {"__name__": "__doc__"}
    commands = []
    for lang, code in blocks(path):
        first = code.splitlines()[0] if code.strip() else ""
        if lang == "python" and first.startswith("# file: "):
            (where / first.removeprefix("# file: ").strip()).write_text(code)
        elif lang == "python":
            exec(compile(code, f"{path.name} block", "exec"), namespace)  # noqa: S102 -- our own docs
        elif lang == "sh":
            for line in code.splitlines():
                if line.startswith("advx "):
                    args = line.split()[1:]
                    p = subprocess.run([str(ADVX), *args], cwd=where, env={"ADVX_HOME": str(where / "home")},
                                       capture_output=True, text=True, timeout=900)
                    assert p.returncode == 0, f"{line}\n{p.stderr[-3000:]}"
                    commands.append(line)
    return commands


def test_extending_md_runs_as_written(tmp_path, monkeypatch):
    if not ADVX.exists():
        pytest.skip(f"no advx console script at {ADVX}")
    from advx.attacks import registry

    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    names = ("mymodels", "myattacks", "wrapped")
    try:
        commands = run_markdown(DOCS / "extending.md", tmp_path)
        assert registry.get("margin-steps").kind == "gradient"
    finally:
        registry._REGISTRY.pop("margin-steps", None)  # the doc's attack must not join other tests' registry
        for name in names:
            sys.modules.pop(name, None)
    assert any("advx attack --import myattacks" in c and "--attack margin-steps" in c for c in commands)
    assert any("advx evaluate --import myattacks" in c and "margin-steps" in c for c in commands)
    import json

    attack = json.loads((tmp_path / "runs" / "mine" / "results.json").read_text())
    assert "margin-steps" in json.dumps(attack["runs"] if "runs" in attack else attack)
    evaluation = json.loads((tmp_path / "runs" / "mine-eval" / "results.json").read_text())
    assert "margin-steps" in json.dumps(evaluation)
    for kind in ("mine", "mine-eval"):
        assert (tmp_path / "runs" / kind / "report.html").is_file()
