"""`advx text attack` / `advx text train` and the HTML report."""

from __future__ import annotations

import json

import torch

from advx.cli import main
from advx.report import write_report
from advx.text.attacks import Edit, TextAttackResult
from advx.text.report import diff_segments, write_results


def test_attack_cli_writes_results_and_report(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["text", "attack", "--model", "tweets-wordcnn", "--recipe", "deepwordbug", "--n", "6",
               "--budget", "60", "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "accuracy under attack" in printed and "mean queries" in printed
    data = json.loads((out / "results.json").read_text())
    assert data["settings"]["budget"] == 60 and len(data["results"]) == 6 and data["command"] == "text attack"
    for r in data["results"]:
        assert r["queries"] <= 60
        assert r["status"] in ("succeeded", "failed", "skipped")
        assert (r["perturbed_pred"] != r["label"]) == (r["status"] != "failed")
    html = (out / "report.html").read_text()
    assert html.count('class="ex ') == 6 and "<script" not in html


def test_attack_cli_rejects_bad_input(tmp_path, capsys):
    assert main(["text", "attack", "--model", "nope", "--out", str(tmp_path)]) == 2
    assert "--model must be one of" in capsys.readouterr().err
    assert main(["text", "attack", "--model", "tweets-wordcnn", "--recipe", "hotflip", "--n", "1",
                 "--out", str(tmp_path)]) == 2  # white-box attack on a word model
    assert "white-box" in capsys.readouterr().err


def test_report_escapes_and_highlights(tmp_path):
    r = TextAttackResult(
        original="<script>alert(1)</script> good day", perturbed="<script>alert(1)</script> goood day", label=1,
        target=None, status="succeeded", original_probs=[0.1, 0.9], perturbed_probs=[0.8, 0.2], queries=3,
        gradients=0, edits=[Edit(word=4, start=26, before="good", after="goood", kind="insert")], num_words=5)
    orig, pert = diff_segments(r)
    assert "".join(t for _, t in orig) == r.original and "".join(t for _, t in pert) == r.perturbed
    assert ("ins", "o") in pert
    summary = {"examples": 1, "clean_accuracy": 1.0, "accuracy_under_attack": 0.0, "success_rate": 1.0,
               "succeeded": 1, "failed": 0, "skipped": 0, "mean_words_changed": 1.0, "mean_percent_words_changed": 20.0,
               "mean_chars_changed": 1.0, "mean_queries": 3.0}
    doc = write_results(tmp_path / "results.json", [r], summary, {"recipe": "x", "model": "<b>m</b>", "dataset": "d",
                                                                  "budget": None, "seed": 0}, ["neg", "pos"])
    html = write_report(doc, None, tmp_path / "r.html").read_text()  # the one renderer draws the text page
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;m&lt;/b&gt;" in html and "<ins>o</ins>" in html


def test_attack_cli_accepts_a_saved_model_path(tmp_path):
    from advx.text.models import CharCNN, CharTokenizer, save_text_model

    tok = CharTokenizer(max_len=64)
    torch.manual_seed(0)
    path = save_text_model(tmp_path / "tiny", CharCNN(tok.vocab_size, 2, channels=4), tok, ["negative", "positive"],
                           {"dataset": "tweets"})
    out = tmp_path / "run"
    assert main(["text", "attack", "--model", str(path), "--recipe", "hotflip", "--n", "3", "--budget", "12",
                 "--out", str(out)]) == 0
    data = json.loads((out / "results.json").read_text())
    assert data["settings"]["dataset"] == "tweets" and all(r["queries"] <= 12 for r in data["results"])
    assert main(["text", "attack", "--model", str(path), "--data", "bbc", "--n", "1", "--out", str(out)]) == 2
