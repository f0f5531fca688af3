"""--data FILE for text: CSV / JSON Lines of (text, label), strict about what a row means; sidecar validation."""

from __future__ import annotations

import json

import pytest

from advx.text.data import load_text_file
from advx.text.models import load_text_model


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_csv_and_jsonl_read_the_same_rows(tmp_path):
    csv = tmp_path / "d.csv"
    csv.write_text('sentence,y\n"great, really",1\nawful,0\n', encoding="utf-8")
    a = load_text_file(csv, text_column="sentence", label_column="y")
    b = load_text_file(_jsonl(tmp_path / "d.jsonl", [{"text": "great, really", "label": 1},
                                                      {"text": "awful", "label": 0}]))
    assert a.texts == b.texts == ["great, really", "awful"] and a.labels == b.labels == [1, 0]
    assert a.label_names == ("0", "1")
    named = load_text_file(_jsonl(tmp_path / "n.jsonl", [{"text": "x", "label": "positive"}]),
                           label_names=("negative", "positive"))
    assert named.labels == [1]


@pytest.mark.parametrize("label, match", [(1.5, "not an integer"), (True, "not an integer"), ("1", None),
                                          ("1.0", "neither an integer"), (None, "not an integer class index"),
                                          (7, "outside the model's 2 classes"), (-1, "outside")])
def test_labels_are_never_cast_silently(tmp_path, label, match):
    path = _jsonl(tmp_path / "d.jsonl", [{"text": "fine", "label": label}])
    if match is None:  # a digit string is an integer index in a CSV cell; in JSON too, as written
        assert load_text_file(path, label_names=("a", "b")).labels == [1]
        return
    with pytest.raises(ValueError, match=match):
        load_text_file(path, label_names=("a", "b"))


def test_clear_errors_for_bad_files(tmp_path):
    csv = tmp_path / "d.csv"
    csv.write_text("body,label\nhello,1\n")
    with pytest.raises(ValueError, match=r"no column 'text'; the header has \['body', 'label'\]"):
        load_text_file(csv)
    csv.write_text("text,label\nhello,1\n   ,0\n")
    with pytest.raises(ValueError, match=r"d.csv:3: empty text"):
        load_text_file(csv)
    csv.write_text("text,label\n" + "a" * 201 + ",1\n")
    with pytest.raises(ValueError, match=r"201 characters, over the limit of 200 \(--max-chars\)"):
        load_text_file(csv, max_chars=200)
    bad = tmp_path / "d.jsonl"
    bad.write_text('{"text": "ok", "label": 0}\n{"text": "oops"\n')
    with pytest.raises(ValueError, match=r"d.jsonl:2: not valid JSON"):
        load_text_file(bad)
    with pytest.raises(ValueError, match="unknown file type"):
        load_text_file(csv.rename(tmp_path / "d.txt"))
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_text_file(tmp_path / "missing.csv")


def test_cnn_sidecar_validated_before_allocating(tmp_path):
    # issue 13: a sidecar claiming a huge vocabulary must fail fast, not allocate terabytes
    from advx.text.zoo import WEIGHTS_DIR

    meta = json.loads((WEIGHTS_DIR / "tweets-wordcnn.json").read_text())
    (tmp_path / "m.safetensors").write_bytes((WEIGHTS_DIR / "tweets-wordcnn.safetensors").read_bytes())
    for key, value, match in (("vocab_size", 10**12, r"config.vocab_size must be an integer in \[1, 2,000,000\]"),
                              ("dim", 1.5, "config.dim must be an integer"),
                              ("vocab_size", 17, r"config.vocab_size is 17 but the tokenizer has \d+ entries")):
        bad = json.loads(json.dumps(meta))
        bad["config"][key] = value
        (tmp_path / "m.json").write_text(json.dumps(bad))
        with pytest.raises(ValueError, match=match):
            load_text_model(tmp_path / "m")
    bad = json.loads(json.dumps(meta))
    bad["config"]["channels"] = 65  # sane, but not what the weights hold: caught from the safetensors header
    (tmp_path / "m.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="does not match"):
        load_text_model(tmp_path / "m")
    (tmp_path / "m.json").write_text(json.dumps(meta))
    model, tok, _ = load_text_model(tmp_path / "m")
    assert tok.vocab_size == meta["config"]["vocab_size"]


def test_attacks_refuse_huge_texts_up_front():
    # issue 13: a 200,000-character text with a 30-query budget ran 131 s; now it is refused before any query
    from advx.text.attacks import DeepWordBug
    from advx.text.classifier import CallableClassifier

    calls = []
    clf = CallableClassifier(lambda t: calls.append(len(t)) or [[0.5, 0.5]] * len(t))
    with pytest.raises(ValueError, match=r"texts\[1\] is 200,000 characters, over max_text_chars=100,000"):
        DeepWordBug(query_budget=30)(clf, ["short", "a " * 100_000], [0, 1])
    assert calls == []
