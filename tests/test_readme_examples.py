"""README.md's examples are true, and so are the runnable examples of docs/*.md that no other test runs.

What is run, and how (so a reader knows what a green run means):

* Every ```python block of README.md is run (``PYTHON`` below) or skipped with a reason (``SKIPPED``); a new
  block that is neither fails ``test_every_readme_python_block_is_run_or_skipped``. A block runs by ``exec``
  in a fresh namespace, the working directory a fresh tmp dir, ``$ADVX_HOME`` a tmp dir this file shares (the
  data caches are built once), one torch thread (tests/conftest.py); then its check asserts what the README
  says around it: printed numbers, files it says it writes, the properties the prose promises.
* Every line starting with ``advx`` of the README's ```bash/```sh/```console blocks runs, in README order and
  in ONE directory, as a user following the README would (two commands writing the same default ``--out``
  fail there too), through ``advx.cli.main`` in-process. Each line is in ``COMMANDS`` (with its checks) or
  matches ``SKIP_PREFIXES`` (training commands: out of scope here). Its exit status is 0, or N where its
  comment says ``exit N`` (and the quoted message is printed); its run folder (found by the exact argv its
  results.json records) holds results.json, report.html and adversarial.safetensors (a text run has no
  .safetensors: its adversarial examples are the strings in results.json); a ``runs/...`` path its comment
  names exists.
* Shrinking, the only way this file changes an example: an entry's ``swaps`` replace exact pieces of its text
  (a sample count, a step count) by cheaper ones, e.g. ``--n 1000`` -> ``--n 20``. Each piece must occur exactly
  once, so when the README changes the test fails naming the entry instead of silently testing something else.
  Numbers the README prints as promised (the quickstart's 0.922 / 0.036) are run as written.
* The "two commands": README's ``make demo`` / ``make test`` are what the Makefile runs (``make -n -B``), and
  .ci/run runs exactly the README's test command.

docs/architecture.md's worked example is run by tests/test_jobs_docs_example.py and docs/extending.md by
tests/test_docs_extending.py; they are not run again here (extending.md's mymodels.py and images blocks do make
the project the README's "Your own model and data" commands run in). The docs blocks run here are those in
``PYTHON``; the others are fragments (they use a ``model``/``x`` they do not define, or placeholder paths), train
models, or (docs/audio.md's PocketSphinx block) repeat the README's attack on the same clip at 5 s of decoding.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
SHELL = ("bash", "sh", "console", "shell")


@dataclass(frozen=True)
class Block:
    path: Path
    lang: str
    code: str
    line: int  # of the opening fence

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks(path: Path, langs: tuple[str, ...]) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    return [Block(path, m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1)
            for m in FENCE.finditer(text) if m.group(1) in langs]


def the_block(path: Path, anchor: str) -> Block:
    """The one ```python block of ``path`` containing ``anchor``."""
    found = [b for b in blocks(path, ("python",)) if anchor in b.code]
    assert len(found) == 1, (f"{path.relative_to(ROOT)}: {len(found)} python blocks contain {anchor!r} (want 1): "
                             "the file changed; update this test's anchor")
    return found[0]


def shrink(text: str, swaps: tuple[tuple[str, str], ...], where: str) -> str:
    """``text`` with each (old, new) swapped; each ``old`` must occur exactly once (no silent drift)."""
    for old, new in swaps:
        count = text.count(old)
        assert count == 1, (f"{where}: the swapped text {old!r} occurs {count} times (want 1): the example changed; "
                            "update its swaps in tests/test_readme_examples.py")
        text = text.replace(old, new)
    return text


@pytest.fixture(scope="module")
def advx_home(tmp_path_factory) -> Path:
    """One private $ADVX_HOME for this file: the data caches are built once, never in the user's home."""
    return tmp_path_factory.mktemp("advx-home")


def run_block(block: Block, swaps, cwd: Path, home: Path, monkeypatch, capsys) -> tuple[dict, str]:
    """``exec`` the (shrunk) block in a fresh namespace in ``cwd``; returns the namespace and what it printed."""
    code = shrink(block.code, swaps, block.where)
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("ADVX_HOME", str(home))
    namespace: dict = {"__name__": "__readme__"}
    capsys.readouterr()
    exec(compile(code, block.where, "exec"), namespace)  # noqa: S102 -- our own documentation
    return namespace, capsys.readouterr().out


def split_comment(line: str) -> tuple[str, str]:
    """(code, comment) of one line: the ``# ...`` comment outside quotes, or ''."""
    in_quote = None
    for i, c in enumerate(line):
        if in_quote:
            in_quote = None if c == in_quote else in_quote
        elif c in "'\"":
            in_quote = c
        elif c == "#":
            return line[:i].rstrip(), line[i + 1:].strip()
    return line.rstrip(), ""


# ------------------------------------------------------------------------------------------ README python blocks

def _quickstart(ns, out, block, cwd):
    promise = re.search(r"\(`examples/quickstart\.py`; it prints clean accuracy ([\d.]+) and robust accuracy "
                        r"([\d.]+)\.\)", README.read_text(encoding="utf-8"))
    assert promise, "README no longer says what examples/quickstart.py prints"
    clean, robust = promise.groups()
    assert out.splitlines() == [f"clean accuracy  {clean}", f"robust accuracy {robust} at Linf eps=0.1"]
    script = (ROOT / "examples" / "quickstart.py").read_text(encoding="utf-8")
    assert script.split('"""', 2)[2].lstrip("\n") == block.code, "examples/quickstart.py is not the README's block"
    # the paragraph after it: what an AttackResult holds
    r, x, y, model = ns["result"], ns["data"].x, ns["data"].y, ns["model"]
    assert (r.x_adv.shape, r.x_adv.dtype, r.x_adv.device) == (x.shape, x.dtype, x.device)
    assert float((r.x_adv - x).abs().max()) <= 0.1 + 1e-6 and 0 <= float(r.x_adv.min()) <= float(r.x_adv.max()) <= 1
    with torch.no_grad():
        fooled = model(r.x_adv).argmax(1) != y
    assert torch.equal(r.success, fooled)  # judged by the model on x_adv
    assert torch.allclose(r.distance, (r.x_adv - x).flatten(1).abs().amax(1), atol=1e-6)  # in the threat's norm
    assert r.gradients.shape == (len(x),) and 1 <= int(r.gradients.max()) <= 40  # passes per sample, steps=40


def _run_experiment(ns, out, block, cwd):
    run = cwd / "runs" / "py"  # the comment: adversarial.safetensors, results.json, report.html
    results = json.loads((run / "results.json").read_text())
    assert {r["id"] for r in results["runs"]} == {"pgd-linf-0.05", "pgd-linf-0.1"}
    assert results["settings"]["steps"] == 20 and results["data"]["n"] == 40
    assert "<html" in (run / "report.html").read_text(encoding="utf-8").lower()
    with safe_open(str(run / "adversarial.safetensors"), "pt") as f:
        assert len(list(f.keys())) > 0
    assert len(ns["exp"].runs) == 2


def _scores_and_labels(ns, out, block, cwd):
    m = re.fullmatch(r"([\d.]+) (?:tensor\()?(\d+)\)?", out.strip())
    assert m, out
    assert 0 <= float(m.group(1)) <= 1 and int(m.group(2)) <= 300  # queries: a hard per-sample budget
    r = ns["r"]  # HopSkipJump through LabelOnly
    assert int(r.queries.max()) <= 300 and 0 <= r.success_rate <= 1
    assert bool((r.distance[r.success] <= 4.0 + 1e-4).all())


def _parameter_free(ns, out, block, cwd):
    lines = [line.split() for line in out.splitlines()]
    assert [name for name, _ in lines] == ["APGD", "APGDT", "FABT"], out
    # the standard model falls to a few percent at Linf 0.1 (README: 2.8% [1.9, 4.0] over 1,000 points)
    assert all(0 <= float(v) <= 0.25 for _, v in lines), out


def _speech_pgd(ns, out, block, cwd):
    assert float(out) >= 0.9, out  # "PGD(Decibels(-30)) works as is": it fools the spotter on (nearly) every clip


def _sphinx(ns, out, block, cwd):
    said = re.search(r'# "([^"]+)"', block.code).group(1)  # the comment: what the clip says
    res = ns["res"]
    assert res.clean == said and res.adversarial != res.clean  # the transcription changed ...
    assert res.db_x <= -40 + 0.05 and res.queries <= 100       # ... under the dB bound, within the query budget
    assert out.strip() == f"{res.clean} -> {res.adversarial} {res.db_x:.1f} dB {res.queries} queries"


def _evaluate(ns, out, block, cwd):
    report, run = ns["report"], cwd / "runs" / "ev"
    assert report.flags == []  # README's defense table: no flag on fmnist-cnn
    r1, r2 = report.robust_accuracy("linf:0.1"), report.robust_accuracy("linf:0.2")
    assert 0 <= r2 <= r1 <= 0.1  # fmnist-cnn falls to 2.8% at Linf 0.1
    assert "linf:0.1" in out and "gradients" in out  # print(): the curve and the checks
    assert json.loads((run / "results.json").read_text())["flags"] == []
    assert (run / "report.html").is_file() and (run / "adversarial.safetensors").is_file()


# ------------------------------------------------------------------------------------------ docs python blocks

def _docs_apgd(ns, out, block, cwd):
    pattern = r"(APGD|APGDT|FABT) robust accuracy ([\d.]+)% median distance ([\d.]+) gradients (\d+)"
    rows = [re.fullmatch(pattern, line) for line in out.splitlines()]
    assert all(rows) and [r.group(1) for r in rows] == ["APGD", "APGDT", "FABT"], out
    for r in rows:
        assert 0 <= float(r.group(2)) <= 100 and float(r.group(3)) <= 0.01 + 1e-3 and int(r.group(4)) > 0


def _docs_minimum_norm(ns, out, block, cwd):
    promised = [line.removeprefix("# ") for line in block.code.splitlines() if line.startswith("# ")]
    printed = out.splitlines()
    assert len(printed) == len(promised) == 2, out
    for got, want in zip(printed, promised, strict=True):
        *words, dist = got.split()
        *want_words, want_dist = want.split()
        # the distance to within 0.01: C&W's 500 Adam steps drift in the last digit across CPUs
        assert words == want_words and abs(float(dist) - float(want_dist)) <= 0.01, (got, want)


def _docs_registry(ns, out, block, cwd):
    lines = [line for line in block.code.splitlines() if line.startswith(("build_attack(", "get("))]
    value = {line: eval(line.split("#")[0], ns) for line in lines}  # noqa: S307 -- our own documentation
    pgd, cw_ignored, cw_options, hsj, square = value.values()
    assert (pgd.steps, pgd.restarts) == (100, 5)
    assert cw_ignored.steps != 100 and cw_options.steps == 500 and cw_options.binary_search_steps == 5
    assert hsj.queries == 1000
    assert square == ast.literal_eval(f"({lines[-1].split('#', 1)[1].strip()})"), lines[-1]


def _docs_audio_pgd(ns, out, block, cwd):
    success, db = map(float, out.split())
    assert success == 1.0 and db <= -30 + 1e-6  # the comment: 1.0, <= -30


def _docs_data(ns, out, block, cwd):
    data = ns["data"]
    comments = {line.split()[0]: split_comment(line)[1] for line in block.code.splitlines() if line.startswith("data.")}
    assert data.x.dtype == torch.float32 and tuple(data.x.shape) == (1000, 1, 28, 28)
    assert comments["data.x"].startswith("float32 (1000, 1, 28, 28)")
    assert 0 <= float(data.x.min()) and float(data.x.max()) <= 1
    assert data.y.dtype == torch.int64 and tuple(data.y.shape) == (1000,) and comments["data.y"] == "int64 (1000,)"
    first, second, *_, last = ast.literal_eval(comments["data.classes"].replace("...", "None"))
    assert (data.classes[0], data.classes[1], data.classes[-1]) == (first, second, last)
    assert data.source == ast.literal_eval(comments["data.source"])
    assert tuple(data.bounds) == ast.literal_eval(comments["data.bounds"])


def _docs_evaluate(ns, out, block, cwd):
    report = ns["report"]
    assert isinstance(report.robust_accuracy("linf:0.1"), float)  # "a float"
    saved = json.loads((cwd / "runs" / "ev" / "results.json").read_text())
    d = json.loads(json.dumps(report.to_dict()))  # "runs/ev/results.json holds it"
    for key in ("results", "checks", "flags", "clean_accuracy", "n"):
        assert saved[key] == d[key], key


@dataclass(frozen=True)
class Example:
    path: Path
    anchor: str  # a piece of text only this block of the file contains
    check: Callable
    swaps: tuple[tuple[str, str], ...] = ()  # (exact text, cheaper text), see the module docstring

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.check.__name__.strip('_')}"


DOCS = ROOT / "docs"
PYTHON = [
    Example(README, "result = PGD(Linf(0.1), steps=40)", _quickstart),  # as is: its printed numbers are promised
    Example(README, "run_experiment(", _run_experiment,
            (('load_data("fashion-mnist", n=200)', 'load_data("fashion-mnist", n=40)'),)),
    Example(README, "HopSkipJump(L2(4.0)", _scores_and_labels),
    Example(README, "APGDT(Linf(0.1))", _parameter_free, (('load("fashion-mnist", "test", n=200)',
                                                           'load("fashion-mnist", "test", n=8)'),)),
    Example(README, "PGD(Decibels(-30), steps=50)", _speech_pgd),
    Example(README, "TranscriptionAttack(Decibels(-40), max_queries=100)", _sphinx),
    Example(README, "report.flags", _evaluate, (('load("fashion-mnist", n=1000)', 'load("fashion-mnist", n=20)'),)),
    Example(DOCS / "attacks" / "apgd.md", "FABT(threat, steps=40)", _docs_apgd),
    Example(DOCS / "attacks" / "minimum_norm.md", "CarliniWagnerL2(L2(10.0)", _docs_minimum_norm),
    Example(DOCS / "attacks" / "registry.md", 'build_attack("hopskipjump"', _docs_registry),
    Example(DOCS / "audio.md", 'loss="margin")(model, x, y, target)', _docs_audio_pgd,
            (('load_digits("espeak", "test", limit=20)', 'load_digits("espeak", "test", limit=8)'),)),
    Example(DOCS / "data_and_models.md", "data.bounds", _docs_data),
    Example(DOCS / "evaluation.md", "report.to_dict()", _docs_evaluate,
            (('load("fashion-mnist", n=1000)', 'load("fashion-mnist", n=20)'),)),
]
#: README python blocks not run, anchor -> reason (none today)
SKIPPED: dict[str, str] = {}


def test_every_readme_python_block_is_run_or_skipped():
    anchors = [e.anchor for e in PYTHON if e.path == README] + list(SKIPPED)
    for block in blocks(README, ("python",)):
        hits = [a for a in anchors if a in block.code]
        assert len(hits) == 1, (f"{block.where}: matched by {hits} (want exactly one): add the block to PYTHON "
                                "(with a check of what its text promises) or to SKIPPED (with the reason)")


@pytest.mark.parametrize("example", PYTHON, ids=lambda e: e.id)
def test_python_example_is_true(example, advx_home, tmp_path, monkeypatch, capsys):
    block = the_block(example.path, example.anchor)
    ns, out = run_block(block, example.swaps, tmp_path, advx_home, monkeypatch, capsys)
    example.check(ns, out, block, tmp_path)


# ------------------------------------------------------------------------------------------ README command lines

def _files(run: Path, results: dict) -> None:
    assert "<html" in (run / "report.html").read_text(encoding="utf-8").lower(), run
    if results["medium"] != "text":  # a text run's adversarial examples are strings in results.json
        with safe_open(str(run / "adversarial.safetensors"), "pt") as f:
            assert len(list(f.keys())) > 0, run


def _arg(argv: list[str], *names: str) -> str:
    i = max(argv.index(n) for n in names if n in argv)
    return argv[i + 1]


def _attack_rows(results, argv):
    """One row per (attack, eps) of the command's --attack and --threat."""
    attacks = _arg(argv, "--attack").split(",")
    norm, eps = _arg(argv, "--threat").split(":")
    want = {(a, norm, float(e)) for a in attacks for e in eps.split(",")}
    assert {(r["attack"], r["threat"]["norm"], r["threat"]["eps"]) for r in results["runs"]} == want


def _demo(results, argv):
    assert {r["attack"] for r in results["runs"]} == {"fgsm", "pgd", "cw"}  # the comment: FGSM, PGD, C&W


def _evaluated(results, argv):
    norm, eps = _arg(argv, "--threat").split(":")
    assert [r["threat"] for r in results["results"]] == [f"{norm}:{e}" for e in eps.split(",")]
    curve = [r["robust_accuracy"] for r in results["results"]]
    assert curve == sorted(curve, reverse=True)  # robust accuracy falls with eps


def _byo(results, argv):
    assert results["data"]["classes"] == ["blue", "green", "red"]  # the folder names are the class names


def _check_status(results) -> dict[str, str]:
    return {c["name"]: c["status"] for c in results["checks"]}


def _flagged(results, argv):
    # "flagged": JPEG zeroes the input gradients, and a gradient attack without bound fails
    assert {"gradients", "unbounded"} <= set(results["flags"]), results["flags"]


def _adaptive(results, argv):
    # BPDA through the JPEG: the same checks pass, the gradients are usable again
    status = _check_status(results)
    assert (status["gradients"], status["unbounded"]) == ("ok", "ok") and results["flags"] == [], status


def _transfer(results, argv):
    models = _arg(argv, "--models").split(",")
    assert results["sources"] == results["targets"] == models
    success = results["success"]  # source x target transfer matrix
    assert len(success) == len(models) and all(len(row) == len(models) and all(0 <= s <= 1 for s in row)
                                               for row in success)


def _certified(results, argv):
    assert results["settings"]["points"] == int(_arg(argv, "--n", "-n"))
    assert results["settings"]["sigma"] == float(_arg(argv, "--sigma"))
    certified = results["table"]["certified_accuracy"]
    assert certified == sorted(certified, reverse=True) and certified[0] <= results["smoothed_accuracy"] + 1e-9


def _text(results, argv):
    s = results["summary"]
    assert s["examples"] == int(_arg(argv, "--n", "-n")) and 0 <= s["success_rate"] <= 1
    assert all(r["original"] for r in results["results"])


def _audio(results, argv):
    run = Path(_arg(argv, "--out"))
    assert list((run / "wav").glob("*.wav")), "no WAVs written"  # "writes the WAVs"


@dataclass(frozen=True)
class Command:
    swaps: tuple[tuple[str, str], ...] = ()  # (exact text, cheaper text), see the module docstring
    check: Callable | None = None  # (results.json, argv run) -> None


#: the README's jpeg lines run on 4 points, one cheap attack and the two checks their comments are about
_JPEG_SHRUNK = "-n 4 --attacks apgd-ce:5 --checks gradients,unbounded"
#: every README command line (its text without the comment) -> how it is run and checked
COMMANDS = {
    "advx demo": Command((("advx demo", "advx demo -n 4"),), _demo),
    "advx attack --model fmnist-cnn --data fashion-mnist --attack fgsm,pgd --threat linf:0.05,0.1 --n 1000 "
    "--out runs/x": Command((("--n 1000", "--n 20"),), _attack_rows),
    "advx evaluate --model fmnist-cnn --data fashion-mnist --threat linf:0.1,0.2 --n 1000 --out runs/eval":
        Command((("--n 1000", "--n 20"),), _evaluated),
    "advx certify --model runs/noise/model.safetensors --data fashion-mnist --sigma 0.25 --n 200 --out runs/cert":
        Command((("--n 200", "--n 3 --samples 100"),), _certified),
    "advx transfer --models fmnist-cnn,fmnist-cnn-at --data fashion-mnist --attack difgsm --threat linf:0.1 --n 500":
        Command((("--n 500", "--n 20"),), _transfer),
    "advx text attack --model bbc-charcnn --recipe deepwordbug --n 200 --out runs/text":
        Command((("--n 200", "--n 1"),), _text),
    "advx audio attack --model digits-kws --attack pgd --threat db:-30 --n 100 --out runs/audio":
        Command((("--n 100", "--n 2 --playback-draws 2"),), _audio),
    "advx evaluate --model mymodels:build --data images --threat linf:8/255 -n 50": Command(check=_byo),
    "advx evaluate --model mymodels:build --data images --threat linf:8 -n 50": Command(),  # exit 2
    "advx text attack --model minilm-tweets --recipe deepwordbug -n 100 --out runs/minilm-dwb":
        Command((("-n 100", "-n 3"),), _text),
    "advx audio attack --model phrases-ctc --attack cw --target-text \"open the door\" -n 20 --psycho-steps 100 "
    "--out runs/ctc": Command((("-n 20 --psycho-steps 100", "-n 1 --psycho-steps 2 --steps 3"),), _audio),
    "advx audio universal --model phrases-ctc --target-text \"open the door\" --threat db:-30":
        Command((("--threat db:-30", "--threat db:-30 -n 2 --train-n 4 --steps 2"),)),
    "advx audio attack --model sphinx --threat db:-40 -n 5 --out runs/sphinx":
        Command((("-n 5", "-n 1 --queries 3"),), _audio),
    "advx evaluate --model fmnist-cnn --data fashion-mnist --threat linf:0.1 --defense jpeg:75 --out runs/jpeg":
        Command((("--out runs/jpeg", f"--out runs/jpeg {_JPEG_SHRUNK}"),), _flagged),
    "advx evaluate --model fmnist-cnn --data fashion-mnist --threat linf:0.1 --defense jpeg:75 --adaptive "
    "--out runs/jpeg-bpda": Command((("--out runs/jpeg-bpda", f"--out runs/jpeg-bpda {_JPEG_SHRUNK}"),), _adaptive),
    "advx certify --model runs/noise/model.safetensors --data fashion-mnist --sigma 0.25 --n 200 --samples 10000":
        Command((("--n 200 --samples 10000", "--n 3 --samples 100"),), _certified),
}
#: command lines not run: prefix -> reason
SKIP_PREFIXES = {
    "advx train ": "trains a model (minutes; another change is reworking the training flags): not run here",
    "advx text attack --model hf:path/to/": "a placeholder for the reader's own saved model and data file",
    "advx text train ": "trains a text model (minutes; another change is reworking its flags): not run here",
}


def readme_command_lines() -> list[tuple[str, str]]:
    """(command without its comment, comment) of each ``advx`` line of the README's shell blocks, in order."""
    lines = []
    for block in blocks(README, SHELL):
        for line in block.code.splitlines():
            line = line.strip().removeprefix("$ ")
            if line.startswith("advx "):
                command, comment = split_comment(line)
                lines.append((" ".join(command.split()), comment))
    return lines


def test_every_readme_command_line_is_run_or_skipped():
    lines = [c for c, _ in readme_command_lines()]
    unknown = [c for c in lines if c not in COMMANDS and not c.startswith(tuple(SKIP_PREFIXES))]
    assert not unknown, f"README command lines this test neither runs nor skips (add them to COMMANDS): {unknown}"
    stale = [c for c in COMMANDS if c not in lines]
    assert not stale, f"COMMANDS entries the README no longer has (update them): {stale}"


def _project(root: Path) -> None:
    """What the README's commands presuppose, in ``root`` (the working directory): mymodels.py and
    images/<class>/*.png ("Your own model and data"), made by docs/extending.md's own blocks (the page the README
    sends you to), and runs/noise/model.safetensors (trained by `advx train --defense noise`, which is not run
    here: the committed fmnist-cnn, weights and sidecar, stands in)."""
    extending = DOCS / "extending.md"
    (root / "mymodels.py").write_text(the_block(extending, "# file: mymodels.py").code)
    images = the_block(extending, 'Image.fromarray(pixels).save(Path("images")')
    exec(compile(images.code, images.where, "exec"), {"__name__": "__readme__"})  # noqa: S102 -- our own docs
    weights = ROOT / "src" / "advx" / "zoo" / "weights"
    (root / "runs" / "noise").mkdir(parents=True)
    shutil.copy(weights / "fmnist-cnn.safetensors", root / "runs" / "noise" / "model.safetensors")
    shutil.copy(weights / "fmnist-cnn.json", root / "runs" / "noise" / "model.json")


def _find_run(root: Path, argv: list[str]) -> tuple[Path, dict]:
    for path in root.rglob("results.json"):
        results = json.loads(path.read_text())
        if results.get("argv") == argv:
            return path.parent, results
    raise AssertionError(f"no results.json records the argv {argv}")


@pytest.mark.filterwarnings("ignore:MALT:UserWarning")  # the 3-class model of "Your own model and data"
def test_readme_command_lines_run_in_order_in_one_directory(advx_home, tmp_path, monkeypatch, capsys):
    from advx.cli import main

    monkeypatch.chdir(tmp_path)
    _project(tmp_path)
    monkeypatch.setenv("ADVX_HOME", str(advx_home))
    modules, path = set(sys.modules), list(sys.path)
    ran, failures = [], []
    try:
        for command, comment in readme_command_lines():
            if command.startswith(tuple(SKIP_PREFIXES)):
                continue
            spec = COMMANDS[command]
            argv = shlex.split(shrink(command, spec.swaps, f"README command {command!r}"))
            expected = re.search(r"\bexit (\d+)", comment)
            rc_wanted = int(expected.group(1)) if expected else 0
            torch.set_num_threads(1)
            capsys.readouterr()
            rc = main(argv[1:])
            err = capsys.readouterr().err
            try:
                assert rc == rc_wanted, f"exit {rc}, README says {rc_wanted}: {err[-1500:]}"
                if rc_wanted:
                    message = re.search(r'exit \d+: "([^"]+)"', comment)
                    assert message is None or message.group(1) in err, err[-1500:]
                    with pytest.raises(AssertionError):
                        _find_run(tmp_path, argv)
                else:
                    run, results = _find_run(tmp_path, argv)
                    _files(run, results)
                    for named in re.findall(r"runs/[\w./-]+", comment):
                        assert (tmp_path / named).exists(), f"the comment names {named}; it is not there"
                    if spec.check is not None:
                        spec.check(results, argv)
            except Exception as e:  # noqa: BLE001 -- report every line that is not true, then fail
                failures.append(f"{command}\n    ran: {shlex.join(argv)}\n    {e}")
            ran.append(command)
    finally:
        for name in set(sys.modules) - modules:
            if name == "mymodels":
                del sys.modules[name]
        sys.path[:] = path
    assert not failures, "README command lines that are not true:\n" + "\n".join(failures)
    assert len(ran) == len(COMMANDS)


# ------------------------------------------------------------------------------------------ the two commands

def test_the_two_commands_are_what_make_and_ci_run():
    block = next(b for b in blocks(README, SHELL) if "make demo" in b.code)
    commands = [shlex.split(line, comments=True) for line in block.code.splitlines() if line.strip()]
    assert commands == [["make", "demo"], ["make", "test"]]
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
          if line.strip() and not line.startswith("#")]
    assert ci[-1] == "make test" and all(line.startswith(("set ", "cd ")) for line in ci[:-1]), ci
    if shutil.which("make") is None:
        pytest.skip("no make on this machine")

    def dry(target: str) -> list[str]:
        # under `make test` (as CI runs it) this make is a child: without the parent's MAKEFLAGS/MAKELEVEL and with
        # --no-print-directory it prints only the recipe lines, as on a bare shell
        env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES")}
        p = subprocess.run(["make", "--no-print-directory", "-n", "-B", target], cwd=ROOT, capture_output=True,
                           text=True, timeout=60, check=True, env=env)
        return [line.split("  #")[0].strip() for line in p.stdout.splitlines()]

    setup = ["bash scripts/system-deps.sh",                       # as root: the Debian packages
             "test -x .venv/bin/python || python3 -m venv .venv"]  # creates .venv if missing
    test, demo = dry("test"), dry("demo")
    for steps in (test, demo):
        assert steps[:2] == setup, steps
        installs = [s for s in steps if "pip install" in s and "-e '.[" in s]
        assert len(installs) == 1 and all(x in installs[0] for x in ("test", "data")), installs
    assert any(s.startswith(".venv/bin/ruff check") for s in test)  # runs ruff ...
    assert test[-1] == ".venv/bin/python -m pytest"                # ... and the whole suite, this file with it
    assert demo[-1] == ".venv/bin/advx demo --overwrite"           # the README's `advx demo` (run above)
    assert "advx demo" in COMMANDS
    import tomllib

    pytest_ini = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert "tests" in pytest_ini["testpaths"] and "-m" not in pytest_ini.get("addopts", "").split()


# ------------------------------------------------------------------------------------------ --help

def _commands(group, path=()):
    import click

    for name in group.list_commands(None):
        cmd = group.get_command(None, name)
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*path, name))
        else:
            yield (*path, name), cmd


def test_every_command_has_help_with_an_example_that_parses():
    """README: "Every command has `--help` with an example"; each example line parses with the command's options
    (training commands' examples are only required to exist: their flags are another change's)."""
    import click

    from advx.cli import cli

    seen = []
    for path, cmd in _commands(cli):
        prog = " ".join(("advx", *path))
        text = cmd.get_help(click.Context(cmd, info_name=prog))
        examples = [shlex.split(line, comments=True) for line in text.splitlines()
                    if re.match(rf"\s+(torchrun .* -m )?{re.escape(prog)}( |$)", line)]
        assert examples, f"`{prog} --help` shows no example"
        seen.append(prog)
        if path[-1] == "train":
            continue
        for argv in examples:
            args = argv[argv.index("advx") + 1 + len(path):]
            cmd.make_context(prog, args)  # a UsageError names the example that no longer parses
    assert {"advx attack", "advx evaluate", "advx audio attack", "advx text attack"} <= set(seen)


def test_the_targeted_attack_sentence(advx_home, tmp_path, monkeypatch, capsys):
    """README's "Targeted attacks" paragraph and its inline command: the success rate counts samples classified as
    their target, least-likely is the clean model's lowest-scoring class; DeepFool is untargeted only (exit 2).
    Shrunk: ``pgd,cw`` -> ``pgd`` (C&W's fixed ~1,400 passes per sample cost seconds) and ``-n 200`` -> ``-n 8``."""
    from safetensors.torch import load_file

    from advx.cli import main

    text = " ".join(README.read_text(encoding="utf-8").split())
    inline = re.findall(r"`(advx attack [^`]*--target least-likely[^`]*)`", text)
    assert len(inline) == 1, inline
    argv = shlex.split(shrink(inline[0], (("pgd,cw", "pgd"), ("-n 200", "-n 8")), "README targeted command"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ADVX_HOME", str(advx_home))
    assert main(argv[1:]) == 0, capsys.readouterr().err[-1500:]
    run, results = _find_run(tmp_path, argv)
    assert results["targeting"]["mode"] == "least-likely"
    t = load_file(str(run / "adversarial.safetensors"))
    assert torch.equal(t["target"], t["clean_logits"].argmin(1))  # the clean model's lowest-scoring class
    for r in results["runs"]:
        reached = t[f"{r['id']}/logits"].argmax(1) == t["target"]
        assert torch.equal(t[f"{r['id']}/success"], reached), r["id"]  # success = classified as the target
        assert r["metrics"]["attack_success_rate"] == pytest.approx(float(reached[t["y"] == t["clean_logits"].argmax(1)]
                                                                          .double().mean()))
    assert "DeepFool is untargeted only" in text
    deepfool = [*argv[1:argv.index("--attack") + 1], "deepfool", *argv[argv.index("--attack") + 2:]]
    capsys.readouterr()
    assert main(deepfool) == 2 and "'deepfool' (DeepFool) is untargeted only" in capsys.readouterr().err
