"""Every page kind of the one report renderer, opened in headless Chromium.

One small results document (and tensors) per kind -- attack (grey-scale and
RGB), evaluate, certify, transfer, text attack, audio attack -- is rendered by
``advx.report.render_report`` and loaded, all at once, into 1280 px wide frames
of one Chromium run. In the browser's DOM: every <img> decodes, every number a
table or card shows is its results.json value formatted by the formatter the
cell names (``data-path`` is a JSON pointer, ``data-fmt`` the formatter), every
table cell with a digit in it is such a number or a row label, nothing is wider
than the 1280 px viewport, and no visible text is raw JSON or an unformatted
float.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
import shutil
import subprocess
import wave
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import nn

from advx.report import FORMATTERS, render_report
from advx.report.kinds import page_kind, resolve
from advx.report.media import inline_diff
from advx.report.transfer import transfer_results

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
VIEWPORT = 1280
PCT = re.compile(r"^(—|<0\.1%|>99\.9%|\d{1,3}\.\d%)$")


# ------------------------------------------------------------------ fixtures
class _Data:
    def __init__(self, x, y, classes, name="tiny-rgb"):
        self.x, self.y, self.classes, self.name, self.split = x, y, classes, name, "test"
        self.source, self.bounds = "random colour images, made up for the report test", (0.0, 1.0)


def _rgb_problem(n: int = 16):
    g = torch.Generator().manual_seed(3)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4)).eval()
    with torch.no_grad():
        model[1].weight.copy_(torch.randn(4, 192, generator=g) * 0.4)
        model[1].bias.zero_()
    x = torch.rand(n, 3, 8, 8, generator=g)
    with torch.no_grad():
        y = model(x).argmax(1)
    y[:2] = (y[:2] + 1) % 4
    return model, x, y


def attack_page() -> tuple[dict, dict]:
    from advx.jobs.attack import run_experiment
    from advx.threat import parse_threat

    model, x, y = _rgb_problem()
    data = _Data(x, y, ["cat", "dog", "<i>bird</i>", "a very long class name that must wrap somewhere"])
    exp = run_experiment(model, data, [("fgsm", parse_threat("linf:0.03")), ("pgd", parse_threat("linf:0.03,0.1")),
                                       ("cw", parse_threat("l2:0.5,1"))],
                         steps=4, batch_size=8, seed=0, attack_options={"cw": {"steps": 10, "binary_search_steps": 2}},
                         model_meta={"spec": "tests:rgb-linear"})
    results = json.loads(json.dumps(exp.results("advx attack --model tests:rgb-linear --data tiny-rgb", 3),
                                    default=str))
    return results, exp.tensors()


def wide_attack_page() -> tuple[dict, dict]:
    """Eight attacks with long names (copies of the runs of attack_page): panels wrap, tables still fit."""
    import copy

    results, tensors = attack_page()
    runs, examples = [], []
    for k in range(8):
        for r in results["runs"][:1]:
            r = copy.deepcopy(r)
            old, r["attack"] = r["id"], f"attack-with-a-long-registry-name-{k}"
            r["id"] = f"{r['attack']}-linf-0.03"
            runs.append(r)
            tensors[f"{r['id']}/x_adv"] = tensors[f"{old}/x_adv"]
            for e in results["examples"]:
                if e["run"] == old:
                    examples.append({**e, "run": r["id"], "attack": r["attack"]})
    results["runs"], results["examples"], results["worst_case"] = runs, examples, []
    return results, tensors


def evaluate_page() -> tuple[dict, dict]:
    from advx import evaluate

    model, x, y = _rgb_problem(20)
    rep = evaluate(model, (x, y), "linf:0.02,0.05", attacks="fast", batch_size=10, progress=False, probe_points=4,
                   description={"model": "tests:rgb-linear", "data": "random"})
    if not rep.examples:
        rep.attach_examples(model, x, y, "cpu", ["cat", "dog", "bird", "fish"], count=3)
    results = json.loads(json.dumps(rep.to_dict(per_sample=False)))
    # the job records the command line next to the report's numbers
    results.setdefault("argv", ["advx", "evaluate", "--model", "tests:rgb-linear", "--threat", "linf:0.02,0.05"])
    # and a check that fired, with nested evidence (lists of dicts): shown as a list of figures, never as JSON
    results["checks"].append({"name": "made_up", "status": "warning", "message": "a check that fired",
                              "suggestion": "run with --eot 8", "evidence": {
                                  "threats": [{"threat": "linf:0.02", "probed": 11, "broken": 3, "drop": 0.0123},
                                              {"threat": "linf:0.05", "probed": 0, "broken": 0}],
                                  "masked_fraction": 0.25, "names": ["a", "b"], "nothing": None}})
    results["flags"] = [*results["flags"], "made_up"]
    return results, rep.report_tensors()


def certify_page() -> tuple[dict, dict]:
    label = [0, 1, 2, 1, 0, 2, 1, 1]
    pred = [0, 1, -1, 1, 2, 2, 1, 0]
    radius = [0.41, 0.12, 0.0, 0.33, 0.2, 0.05, 0.6, 0.1]

    def acc(r):
        return sum(p == t and q >= r for p, t, q in zip(pred, label, radius)) / len(label)

    radii = [0.0, 0.1, 0.25, 0.5]
    grid = [i * 0.8 / 40 for i in range(41)]
    return {
        "schema_version": 1, "kind": "certify", "model": "fmnist-cnn", "data": "fashion-mnist", "split": "test",
        "source": "tests", "command": "advx certify --model fmnist-cnn --sigma 0.25 -n 8",
        "config": {"sigma": 0.25, "n0": 10, "n": 100, "alpha": 0.001, "seed": 0, "chunk": 4, "points": 8},
        "base_accuracy": 0.875, "smoothed_accuracy": acc(0.0), "abstain_rate": 0.125, "max_certifiable_radius": 0.7667,
        "table": {"radii": radii, "certified_accuracy": [acc(r) for r in radii]},
        "curve": {"radii": grid, "certified_accuracy": [acc(r) for r in grid]},
        "per_sample": {"label": label, "prediction": pred, "radius": radius, "count": [90] * 8},
        "wall_time_s": 12.3, "environment": {"advx": "0.1.0", "torch": torch.__version__},
    }, {}


def transfer_page() -> tuple[dict, dict]:
    names = ["fmnist-cnn", "fmnist-cnn-at", "module_with_a_long_name:build_the_model_for_transfer",
             "hf:some-organisation/a-vision-transformer-fine-tuned-on-fashion-mnist", "cousins:noisy", "m6.safetensors"]
    g = torch.Generator().manual_seed(0)
    success = torch.rand(6, 6, generator=g).tolist()
    success[0][1], success[1][2], success[2][2] = 0.31234, 0.0019, 0.9996
    matrix = {"sources": names, "targets": names, "success": success,
              "clean_accuracy": [0.91, 0.83, 0.88, 0.9, 0.7, 0.5], "n": [500] * 6}
    results = transfer_results(matrix, "mifgsm Linf(0.1), 10 steps", "fashion-mnist",
                               "advx transfer --models " + ",".join(names) + " --data fashion-mnist",
                               environment={"advx": "0.1.0"})
    return json.loads(json.dumps(results)), {}


def text_page() -> tuple[dict, dict]:
    from advx.text.attacks import Edit, TextAttackResult
    from advx.text.report import results_document

    long = "a quiet opening sentence that goes on " * 30
    rs = [
        TextAttackResult(original="<script>alert(1)</script> a good day", perturbed="<script>alert(1)</script> a goood day",
                         label=1, target=None, status="succeeded", original_probs=[0.1, 0.9],
                         perturbed_probs=[0.8, 0.2], queries=3, gradients=0,
                         edits=[Edit(word=2, start=28, before="good", after="goood", kind="insert")], num_words=5),
        TextAttackResult(original=long + "the film was great", perturbed=long + "the flim was graet", label=1, target=None,
                         status="succeeded", original_probs=[0.002, 0.998], perturbed_probs=[0.51, 0.49], queries=412,
                         gradients=0, edits=[Edit(word=0, start=len(long) + 4, before="film", after="flim", kind="swap"),
                                             Edit(word=0, start=len(long) + 13, before="great", after="graet",
                                                  kind="swap")], num_words=200),
        TextAttackResult(original="nothing to change", perturbed="nothing to change", label=0, target=None,
                         status="failed", original_probs=[0.7, 0.3], perturbed_probs=[0.7, 0.3], queries=40,
                         gradients=0, edits=[], num_words=3),
    ]
    summary = {"examples": 3, "clean_accuracy": 1.0, "accuracy_under_attack": 1 / 3, "success_rate": 2 / 3,
               "succeeded": 2, "failed": 1, "skipped": 0, "mean_words_changed": 1.5,
               "mean_percent_words_changed": 10.5, "mean_chars_changed": 2.5, "mean_queries": 151.6667, "seconds": 3.2}
    config = {"model": "tweets-charcnn", "recipe": "deepwordbug", "attack": "DeepWordBug(query_budget=500)",
              "dataset": "tweets", "n": 3, "budget": 500, "seed": 0}
    doc = results_document(rs, summary, config, ["negative", "positive"],
                           argv=["advx", "text", "attack", "--model", "tweets-charcnn", "-n", "3"],
                           environment={"advx": "0.1.0"})
    return json.loads(json.dumps(doc)), {}


def audio_universal_page() -> tuple[dict, dict]:
    """A universal perturbation with the psychoacoustic figures: energy above the masking threshold."""
    results, tensors = audio_page()
    results["command"], results["attack_name"] = "audio universal", "universal"
    results["examples"] = results["examples"][:2]
    results["history"] = [{"step": k, "loss": 3.0 / (1 + k)} for k in range(0, 300, 50)]
    for r in results["results"]:
        r["median_above_threshold"] = 0.125
    for e in results["examples"]:
        e["above_threshold"] = 0.0004
    g = torch.Generator().manual_seed(1)
    for m in ("untargeted", "targeted"):
        tensors[f"audible/{m}"] = 30 * torch.randn(3, 16, 257, generator=g)
    return results, tensors


def audio_page() -> tuple[dict, dict]:
    sr = 8000
    t = torch.arange(sr // 2) / sr
    g = torch.Generator().manual_seed(0)
    x = torch.stack([0.4 * torch.sin(2 * math.pi * f * t) for f in (220.0, 330.0, 440.0)])
    adv = {"untargeted": x + 0.01 * torch.randn(x.shape, generator=g), "targeted": x + 0.02 * torch.randn(x.shape,
                                                                                                     generator=g)}
    rows = [{"mode": m, "attacked": 3, "success_rate": s, "mean_db_x": -31.23, "median_db_x": -30.5,
             "mean_snr_db": 24.1, "mean_queries": 101.0, "success_16bit_wav": s, "success_after_playback": 0.5}
            for m, s in (("untargeted", 1.0), ("targeted", 2 / 3))]
    exs = [{"index": i, "mode": m, "label": i, "label_name": ["one", "two", "three"][i], "pred": 0, "pred_name": "zero",
            "target_name": "zero" if m == "targeted" else None, "success": True, "db_x": -30.2, "speaker": "en+f3"}
           for i in (0, 2) for m in (("untargeted", "targeted") if i == 0 else ("targeted",))]
    results = {"command": "audio attack", "medium": "audio", "argv": ["advx", "audio", "attack", "--n", "3"],
               "model": "digits-kws", "data": "espeak-ng spoken digits (SYNTHETIC SPEECH)", "synthetic": True,
               "split": "test", "n": 3, "clean_accuracy": 1.0, "attack": "PGD(Decibels(-30), steps=100)",
               "attack_name": "pgd", "threat_db": -30.0, "eot_samples": 0, "seed": 0, "results": rows,
               "sample_rate": sr, "notes": ["These clips are SYNTHETIC SPEECH generated by espeak-ng."],
               "examples": exs, "seconds": 4.0, "environment": {"advx": "0.1.0"}}
    return json.loads(json.dumps(results)), {"x": x, **{f"x_adv/{m}": v.clamp(-1, 1) for m, v in adv.items()}}


def grey_attack_page() -> tuple[dict, dict]:
    from tests.test_report import _make_run

    class _Factory:
        def mktemp(self, name):
            import tempfile

            return Path(tempfile.mkdtemp(prefix=name))

    run = _make_run(_Factory())
    from safetensors.torch import load_file

    return json.loads((run / "results.json").read_text()), load_file(str(run / "adversarial.safetensors"))


PAGES = {"attack": attack_page, "attack-wide": wide_attack_page, "attack-grey": grey_attack_page, "evaluate": evaluate_page, "certify": certify_page,
         "transfer": transfer_page, "text": text_page, "audio": audio_page, "audio-universal": audio_universal_page}
KIND = {"attack": "attack", "attack-wide": "attack", "attack-grey": "attack", "evaluate": "evaluate", "certify": "certify",
        "transfer": "transfer", "text": "text attack", "audio": "audio attack", "audio-universal": "audio universal"}


# ------------------------------------------------------------------ browser
_PROBE = """<script>
window.addEventListener('load', () => {
  const d = document, root = d.documentElement;
  const imgs = Array.from(d.images, i => [i.alt, i.complete ? i.naturalWidth : 0]);
  const cells = Array.from(d.querySelectorAll('[data-path]'), e => [e.dataset.path, e.dataset.fmt, e.dataset.agg || '',
    (e.querySelector('.t') || e).textContent, e.tagName]);
  const tds = Array.from(d.querySelectorAll('td'), e => [e.className, !!e.dataset.path, e.textContent]);
  const clone = d.body.cloneNode(true);
  clone.querySelectorAll('style,script').forEach(e => e.remove());
  const words = node => { const w = d.createTreeWalker(node, NodeFilter.SHOW_TEXT), out = [];
    while (w.nextNode()) out.push(w.currentNode.nodeValue); return out.join(' '); };  // one text node = one word run
  const text = words(clone);
  clone.querySelectorAll('code,pre').forEach(e => e.remove());
  const plain = words(clone);
  const wide = Array.from(d.querySelectorAll('body *')).filter(e => e.getBoundingClientRect().right > root.clientWidth + 1)
    .map(e => e.tagName + '.' + e.className).slice(0, 10);
  d.body.setAttribute('data-probe', JSON.stringify({imgs, cells, tds, sw: root.scrollWidth, vw: innerWidth, wide,
    json: text.includes('{"'), raw: (plain.match(/\\d\\.\\d{5,}/g) || []).slice(0, 5),
    audio: d.querySelectorAll('audio').length}));
});
</script>"""

def _browse(pages: dict[str, str], tmp: Path) -> dict[str, dict]:
    """Each page in its own headless Chromium (``--dump-dom`` after its load event, when the probe has
    written its findings into ``body[data-probe]``); three at a time.

    One browser per page, not one driver page of iframes: ``--dump-dom`` does not wait for a driver's
    iframes, so on a busy machine the driver was dumped before its frames had loaded (a flaky test)."""
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is needed for the report tests: run scripts/system-deps.sh (apt-get install chromium)")

    def probe(name: str) -> dict:
        page = tmp / f"{name}.html"
        page.write_text(pages[name].replace("</body>", _PROBE + "</body>"), encoding="utf-8")
        cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--disable-background-networking", "--allow-file-access-from-files", "--hide-scrollbars",
               f"--user-data-dir={tmp / f'profile-{name}'}", f"--window-size={VIEWPORT},1000",
               "--virtual-time-budget=30000", "--dump-dom", page.as_uri()]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
        assert out.returncode == 0, (name, out.stderr[-2000:])
        m = re.search(r'<body[^>]*\sdata-probe="([^"]*)"', out.stdout)
        assert m, f"the {name} page did not report (its load event did not run the probe): {out.stdout[-300:]}"
        return json.loads(html.unescape(m.group(1)))

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=3) as pool:
        return dict(zip(pages, pool.map(probe, pages)))


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict[str, tuple[dict, dict, str]]:
    out = {}
    for name, make in PAGES.items():
        results, tensors = make()
        out[name] = (results, tensors, render_report(results, tensors))
    return out


@pytest.fixture(scope="module")
def browser(rendered, tmp_path_factory) -> dict[str, dict]:
    return _browse({k: v[2] for k, v in rendered.items()}, tmp_path_factory.mktemp("pages"))


# ------------------------------------------------------------------ tests
@pytest.mark.parametrize("name", list(PAGES))
def test_page_kind_comes_from_the_results(rendered, name):
    results, _, page = rendered[name]
    assert page_kind(results) == KIND[name]
    assert f'data-kind="{KIND[name]}"' in page
    assert "http://" not in page and "https://" not in page  # nothing fetched from the network
    assert "<script" not in page  # the pages run no code of their own


@pytest.mark.parametrize("name", list(PAGES))
def test_every_image_decodes_in_the_browser(browser, rendered, name):
    imgs = browser[name]["imgs"]
    page = rendered[name][2]
    assert len(imgs) == page.count("<img ")
    assert all(w > 0 for _, w in imgs), [a for a, w in imgs if not w]
    for uri in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page):  # and in Pillow
        Image.open(io.BytesIO(base64.b64decode(uri))).load()
    plots = {"attack": 1, "attack-wide": 1, "attack-grey": 1, "evaluate": 1, "certify": 1, "transfer": 1}.get(name, 0)
    assert len(imgs) >= plots + (name != "certify" and name != "transfer" and name != "text")


@pytest.mark.parametrize("name", list(PAGES))
def test_every_number_is_its_results_json_value(browser, rendered, name):
    results = rendered[name][0]
    cells = browser[name]["cells"]
    assert len(cells) >= 4
    for src, fmt, agg, text, _tag in cells:
        values = [resolve(results, p) for p in src.split(" ")] if agg == "sum" else [resolve(results, src)]
        value = sum(values) if agg == "sum" else values[0]
        assert text.strip() == FORMATTERS[fmt](value), (src, fmt, text)
        if fmt == "pct":
            assert PCT.match(text.strip()), (src, text)
    for cls, has_src, text in browser[name]["tds"]:  # a digit in a table is a sourced number or a row label
        if re.search(r"\d", text) and not has_src:
            assert {"lbl", "txt"} & set(cls.split()), (cls, text)


@pytest.mark.parametrize("name", list(PAGES))
def test_nothing_is_wider_than_the_viewport(browser, name):
    p = browser[name]
    assert p["vw"] == VIEWPORT
    assert p["sw"] <= VIEWPORT, (p["sw"], p["wide"])
    assert p["wide"] == []


@pytest.mark.parametrize("name", list(PAGES))
def test_no_raw_json_or_unformatted_floats(browser, name):
    p = browser[name]
    assert not p["json"]
    assert p["raw"] == [], p["raw"]


def test_attack_tables_show_every_run(browser, rendered):
    results = rendered["attack"][0]
    shown = {src for src, *_ in browser["attack"]["cells"]}
    for i in range(len(results["runs"])):
        for key in ("clean_accuracy", "robust_accuracy", "attack_success_rate", "median_distance"):
            assert f"/runs/{i}/metrics/{key}" in shown
    for j, _ in enumerate(results.get("worst_case") or []):
        assert f"/worst_case/{j}/robust_accuracy" in shown


def test_rgb_perturbation_legend_is_true_for_rgb(rendered):
    from advx.report.figures import perturbation_uri, signed_swatches

    page = rendered["attack"][2]
    assert "red up" in page and "blue down" in page
    assert "red: brighter" not in page  # the grey-scale legend is not used for colour inputs
    assert "|δ|" in page
    # the swatch "red up" is what the signed view draws for a pixel whose red channel rose the most
    clean = torch.full((3, 4, 4), 0.5)
    adv = clean.clone()
    adv[0, 0, 0] += 0.1
    adv[2, 1, 1] -= 0.1
    im = Image.open(io.BytesIO(base64.b64decode(perturbation_uri(adv, clean).split(",", 1)[1]))).convert("RGB")
    sw = dict((m, c) for c, m in signed_swatches())
    assert "#{:02x}{:02x}{:02x}".format(*im.getpixel((0, 0))) == sw["red up"]
    assert "#{:02x}{:02x}{:02x}".format(*im.getpixel((1, 1))) == sw["blue down"]
    assert im.getpixel((3, 3)) == (128, 128, 128)  # unchanged: grey


def test_large_inputs_are_shrunk_for_the_page_and_keep_their_shape():
    from advx.report.figures import MAX_SIDE, image_uri, perturbation_uri

    x = torch.rand(3, 224, 112)
    adv = (x + 0.05 * torch.randn(x.shape)).clamp(0, 1)
    for uri in (image_uri(x, 0, 1), perturbation_uri(adv, x)):
        im = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
        assert im.size == (MAX_SIDE // 2, MAX_SIDE)  # (width, height): the aspect ratio of the input
    small = Image.open(io.BytesIO(base64.b64decode(image_uri(x[:, :8, :8], 0, 1).split(",", 1)[1])))
    assert small.size == (8, 8)  # small inputs keep their resolution (the page scales them up)


def test_grey_inputs_keep_the_diverging_legend(rendered):
    page = rendered["attack-grey"][2]
    assert "brighter" in page and "darker" in page and "red up" not in page


def test_evaluate_page_collapses_evidence_and_shows_checks(browser, rendered):
    results, _, page = rendered["evaluate"]
    assert page.count("<details>") >= len(results["checks"])
    for c in results["checks"]:
        assert f'data-check="{c["name"]}"' in page
    assert 'class="verdict bad"' in page and "made_up" in page and "→ run with --eot 8" in page
    assert "<dt>threats · linf:0.02 · drop</dt><dd>1.2%</dd>" in page and "<dt>masked fraction</dt><dd>25.0%</dd>" in page
    shown = {src for src, *_ in browser["evaluate"]["cells"]}
    for k, t in enumerate(results["results"]):
        assert f"/results/{k}/robust_accuracy" in shown and f"/results/{k}/ci95" in shown
        for a in t["broken_by"]:
            assert f"/results/{k}/broken_by/{a}" in shown


def test_text_page_diffs_each_edit_and_escapes(rendered):
    results, _, page = rendered["text"]
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.count('class="ex ') == len(results["results"])
    assert "<ins>o</ins>" in page  # "good" -> "goood": one inserted character
    assert "<del>" in page and "fl" in page  # "film" -> "flim": a swap shows as deleted + inserted characters
    assert "…" in page  # the long unchanged stretch is shortened
    assert "99.8%" in page and ">negative<" in page  # probabilities formatted, label names shown


def test_inline_diff_rebuilds_both_texts():
    original, perturbed = "the film was great fun", "the flim was graet fun"
    pieces = inline_diff(original, perturbed, None, context=None)  # no edits given: a word diff finds them
    before = "".join(p["text"] if p["kind"] == "same" else p["before"] for p in pieces)
    after = "".join(p["text"] if p["kind"] == "same" else p["after"] for p in pieces)
    assert before == original and after == perturbed
    for p in pieces:
        if p["kind"] == "edit":
            assert "".join(t for k, t in p["parts"] if k != "ins") == p["before"]
            assert "".join(t for k, t in p["parts"] if k != "del") == p["after"]


def test_inline_diff_ignores_edits_that_do_not_add_up():
    original, perturbed = "a good day", "a goood day"
    wrong = [{"start": 0, "before": "good", "after": "goood"}]  # not where "good" is
    pieces = inline_diff(original, perturbed, wrong, context=None)
    assert "".join(p["text"] if p["kind"] == "same" else p["after"] for p in pieces) == perturbed
    assert [p["before"] for p in pieces if p["kind"] == "edit"] == ["good"]


def test_audio_page_plays_and_draws_each_example(browser, rendered):
    results, _, page = rendered["audio"]
    n = len(results["examples"])
    assert browser["audio"]["audio"] == 3 * n  # clean, adversarial, perturbation per (clip, mode)
    uris = re.findall(r'src="data:audio/wav;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(uris) == 3 * n
    with wave.open(io.BytesIO(base64.b64decode(uris[0]))) as w:
        assert w.getframerate() == results["sample_rate"] and w.getnframes() == results["sample_rate"] // 2
    assert len(browser["audio"]["imgs"]) == n  # a waveform + spectrogram figure per example
    assert "SYNTHETIC SPEECH" in page


def test_universal_audio_page_draws_the_masking_threshold(browser, rendered):
    results, _, page = rendered["audio-universal"]
    n = len(results["examples"])
    assert len(browser["audio-universal"]["imgs"]) == 1 + 2 * n  # the training curve, + a threshold map each
    assert page.count("above (red) / below (blue) the masking threshold") == n
    assert "&lt;0.1% of the energy above the masking threshold" in page  # 0.0004 is not "0.0%"
    assert "Universal audio perturbation" in page


@pytest.mark.parametrize("name", list(PAGES))
def test_reproduce_block_has_the_command_and_versions(rendered, name):
    page = rendered[name][2]
    assert 'id="command"' in page and 'id="versions"' in page


def test_an_evaluate_run_folder_redraws_the_same_page(tmp_path):
    """The page of an evaluate run folder comes back from its results.json and adversarial.safetensors alone."""
    from advx import evaluate
    from advx.report import rebuild_report

    model, x, y = _rgb_problem(12)
    evaluate(model, (x, y), "linf:0.05", attacks="fast", batch_size=12, progress=False, checks=["gradients"],
             out_dir=str(tmp_path / "run"), description={"model": "tests:rgb-linear", "data": "random"})
    page = (tmp_path / "run" / "report.html").read_text()
    again = rebuild_report(tmp_path / "run", tmp_path / "again.html").read_text()
    assert again == page
    assert page.count("<img ") >= 2  # the curve and the examples' images, drawn from the saved tensors


@pytest.mark.parametrize("doc", [
    {"command": "attack", "runs": [], "clean": {"n": 0, "n_correct": 0, "accuracy": None}, "examples": []},
    {"command": "evaluate", "n": 0, "clean_correct": 0, "clean_accuracy": None, "results": [], "checks": []},
    {"command": "certify", "settings": {"sigma": 0.25, "n": 100, "alpha": 0.001}},
    {"command": "transfer", "sources": [], "targets": [], "success": []},
    {"command": "text attack", "results": []},
    {"command": "audio attack", "results": []},
], ids=lambda d: d["command"])
def test_a_document_with_little_in_it_still_renders(doc):
    page = render_report(doc, None)
    assert page.startswith("<!doctype html>") and "Reproduce" in page
    assert "This run did not record its command line." in page
