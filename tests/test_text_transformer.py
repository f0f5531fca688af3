"""MiniLM reference transformers, hf: classifiers and the subword attacks (short texts, tiny n: CPU forwards)."""

from __future__ import annotations

import json

import pytest
import torch

from advx.text.attacks import GCG, PWWS, DeepWordBug, HotFlip
from advx.text.attacks.subword import word_tokens
from advx.text.words import STOPWORDS, Words
from advx.text.zoo import WEIGHTS_DIR, load_reference, resolve_model

TEXTS = ["I love this great day", "worst flight ever, so angry and sad"]
LABELS = [1, 0]


@pytest.fixture(scope="module")
def minilm():
    clf, meta = load_reference("minilm-tweets")
    return clf


def test_minilm_reference_is_small_and_accurate(minilm):
    meta = json.loads((WEIGHTS_DIR / "minilm-tweets.json").read_text())
    assert meta["architecture"] == "MiniLMClassifier" and meta["config"]["trained_layers"] == 1
    assert meta["test_accuracy"] >= 0.88 and meta["test_size"] == 846
    assert (WEIGHTS_DIR / "minilm-tweets.safetensors").stat().st_size < 5_000_000  # top layer + head, float16
    p = minilm.predict_proba(TEXTS)
    assert p.argmax(1).tolist() == LABELS
    assert torch.allclose(p, minilm.predict_proba(TEXTS[::-1]).flip(0), atol=1e-5)  # padding does not matter


def test_minilm_sidecar_refused_before_allocating(tmp_path):
    from advx.text.transformer import load_minilm

    meta = json.loads((WEIGHTS_DIR / "minilm-tweets.json").read_text())
    (tmp_path / "m.safetensors").write_bytes((WEIGHTS_DIR / "minilm-tweets.safetensors").read_bytes())
    for key, value, match in ((("config", "classes"), 10**9, r"config.classes must be an integer in \[2, 10000\]"),
                              (("tokenizer", "max_len"), 10**7, "tokenizer.max_len"),
                              (("config", "trained_layers"), True, "trained_layers")):
        bad = json.loads(json.dumps(meta))
        bad[key[0]][key[1]] = value
        (tmp_path / "m.json").write_text(json.dumps(bad))
        with pytest.raises(ValueError, match=match):
            load_minilm(tmp_path / "m")
    bad = json.loads(json.dumps(meta))
    bad["config"]["trained_layers"], bad["base_sha256"] = 2, None
    (tmp_path / "m.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="does not match"):
        load_minilm(tmp_path / "m")
    bad["base_sha256"] = "0" * 64
    (tmp_path / "m.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="SHA-256"):
        load_minilm(tmp_path / "m")


def test_word_tokens_and_gradient(minilm):
    text = Words("Don't like cafés!! soooo bad")
    pos = word_tokens(text, minilm.tokenizer.spans(text.text))
    assert sorted(pos) == list(range(len(text)))  # every word has tokens
    ids = minilm.tokenizer([text.text])["input_ids"][0]
    inv = {v: k for k, v in minilm.tokenizer.vocab.items()}
    assert [inv[int(ids[p])] for p in pos[len(text) - 2]] == ["soo", "##oo"]
    y = torch.tensor([1])
    ids_list, grads, logits = minilm.token_gradient(TEXTS, lambda z: -torch.nn.functional.cross_entropy(
        z, y.expand(len(z)), reduction="none"))
    assert torch.allclose(logits.softmax(1), minilm.predict_proba(TEXTS), atol=1e-5)
    assert [len(i) for i in ids_list] == [len(g) for g in grads] and grads[0].shape[1] == 384
    # first order: moving the embeddings along the gradient changes the loss as predicted
    emb = minilm.model.get_input_embeddings()(ids_list[0][None]).detach()
    with torch.no_grad():
        f = lambda e: -torch.nn.functional.cross_entropy(minilm.model(inputs_embeds=e), y)  # noqa: E731
        step = 1e-3 * grads[0][None]
        assert abs(float(f(emb + step) - f(emb)) - float((step * grads[0]).sum())) < 1e-2 * float((step * grads[0]).sum()) + 1e-6


@pytest.mark.parametrize("attack, white", [
    (DeepWordBug(query_budget=40), False), (DeepWordBug(score="gradient", prescreen=2, query_budget=40), True),
    (DeepWordBug(greedy="first", query_budget=12), False),
    (PWWS(query_budget=60, max_synonyms=8), False), (PWWS(estimate="gradient", query_budget=60), True),
    (HotFlip(beam_width=2, max_flips=3, query_budget=40), True), (GCG(steps=3, candidates=6, query_budget=40), True),
], ids=["dwb", "dwb-grad", "dwb-first", "pwws", "pwws-grad", "hotflip-words", "gcg"])
def test_subword_attacks_keep_the_contract(minilm, attack, white):
    results = attack(minilm, TEXTS, LABELS)
    for r, text in zip(results, TEXTS):
        assert r.queries <= attack.query_budget
        assert r.status in ("succeeded", "failed")  # both are classified correctly
        pred = int(minilm.predict_proba([r.perturbed]).argmax(1))
        assert (pred != r.label) == (r.status == "succeeded")
        original = Words(text)
        assert all(original[e.word].lower() not in STOPWORDS for e in r.edits)  # every recipe keeps stop words
        assert (r.gradients >= 1) == white and r.gradients <= r.queries
    assert attack(minilm, TEXTS, LABELS)[0].perturbed == results[0].perturbed  # deterministic under the seed


def test_white_box_attacks_refuse_a_black_box():
    from advx.text.classifier import CallableClassifier

    black = CallableClassifier(lambda t: [[0.2, 0.8]] * len(t))
    for attack in (GCG(), DeepWordBug(score="gradient"), PWWS(estimate="gradient")):
        with pytest.raises(TypeError, match="gradients"):
            attack(black, ["a good day"], [1])


def test_hf_directory_from_save_pretrained(minilm, tmp_path):
    transformers = pytest.importorskip("transformers")
    from advx.text.transformer import to_hf_directory

    out = to_hf_directory(minilm.model, ["negative", "positive"], tmp_path / "hf")
    hf = transformers.AutoModelForSequenceClassification.from_pretrained(out, local_files_only=True).eval()
    tok = transformers.AutoTokenizer.from_pretrained(out, local_files_only=True)
    clf, meta = resolve_model(f"hf:{out}", max_length=32)
    assert meta["label_names"] == ["negative", "positive"] and clf.differentiable_tokens
    enc = tok(TEXTS, padding=True, truncation=True, max_length=32, return_tensors="pt")
    with torch.no_grad():
        expected = hf(**enc).logits.softmax(1)
        # same encoder: transformers' BertModel and ours agree on the hidden states
        ours = minilm.model.encoder(enc["input_ids"], enc["attention_mask"])
        theirs = hf.bert(**enc).last_hidden_state
    assert torch.allclose(ours, theirs, atol=1e-4)
    assert torch.allclose(clf.predict_proba(TEXTS), expected, atol=1e-5)
    assert clf.tokenizer.spans("hi there")[1:3] == [(0, 2), (3, 8)]
    r = HotFlip(beam_width=2, max_flips=2, query_budget=20)(clf, TEXTS[:1], [int(expected[0].argmax())])[0]
    assert r.queries <= 20 and r.gradients >= 1


def test_hf_errors(tmp_path, monkeypatch):
    import sys

    from advx.text.hf import HuggingFaceClassifier

    with pytest.raises(FileNotFoundError, match="no config.json"):
        HuggingFaceClassifier(tmp_path)
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ImportError, match=r"pip install 'advx\[hf\]'"):
        HuggingFaceClassifier(tmp_path)


def test_text_attack_cli_on_the_transformer_and_a_csv(minilm, tmp_path, capsys):
    from advx.cli import main

    csv = tmp_path / "mine.csv"
    csv.write_text("tweet,sentiment\n" + "".join(f'"{t}",{y}\n' for t, y in zip(TEXTS, ["positive", "negative"])))
    out = tmp_path / "run"
    rc = main(["text", "attack", "--model", "minilm-tweets", "--data", str(csv), "--text-column", "tweet",
               "--label-column", "sentiment", "--recipe", "deepwordbug", "-n", "2", "--budget", "25",
               "--out", str(out), "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    doc = json.loads((out / "results.json").read_text())
    assert doc["command"] == "text attack" and doc["medium"] == "text" and len(doc["results"]) == 2
    for r, text in zip(doc["results"], TEXTS):
        assert r["original"] == text and r["queries"] <= 25
        assert (r["status"] == "succeeded") == (r["perturbed"] != text and r["perturbed_pred"] != r["label"])
    assert "report.html" in {p.name for p in out.iterdir()}
    csv.write_text("tweet,sentiment\nfine,1.5\n")
    assert main(["text", "attack", "--model", "minilm-tweets", "--data", str(csv), "--text-column", "tweet",
                 "--label-column", "sentiment", "-n", "1", "--out", str(tmp_path / "bad"), "--no-progress"]) == 2
    assert "neither an integer class index nor a class name" in capsys.readouterr().err
