"""Text models: MiniLM against reference values, save/load, adapters, reference accuracy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from advx.text.classifier import CallableClassifier, TorchTextClassifier, as_classifier
from advx.text.data import load_text_dataset
from advx.text.minilm import default_encoder
from advx.text.models import CharCNN, CharTokenizer, WordTokenizer, load_text_model, save_text_model
from advx.text.train import accuracy
from advx.text.zoo import ZOO, load_reference

# all-MiniLM-L6-v2 via transformers' BertModel + mean pooling + L2 norm (computed once offline with transformers 5.x)
REFERENCE = {
    "A man is eating food.": ([101, 1037, 2158, 2003, 5983, 2833, 1012, 102],
                              [0.0332416, 0.0044061, -0.0062770, 0.0483787, -0.1387023, -0.0336174]),
    "The flight was delayed for three hours!": ([101, 1996, 3462, 2001, 8394, 2005, 2093, 2847, 999, 102],
                                                [0.0514233, 0.0096725, -0.0063493, 0.0822426, 0.0531591, -0.0617787]),
}


def test_minilm_matches_reference_embeddings():
    enc = default_encoder()
    texts = list(REFERENCE)
    for t in texts:
        assert enc.tokenizer.encode(t) == REFERENCE[t][0]
    emb = enc.encode(texts)  # padded batch: the mask must make padding irrelevant
    for k, t in enumerate(texts):
        np.testing.assert_allclose(emb[k, :6].numpy(), REFERENCE[t][1], atol=2e-5)
    np.testing.assert_allclose(emb.norm(dim=1).numpy(), 1.0, atol=1e-5)
    assert abs(float(emb[0] @ emb[1]) - (-0.0660946)) < 1e-4
    sim = enc.similarity(["The flight was delayed for hours."], ["My plane was late by several hours."])
    assert float(sim[0]) > 0.5


def test_save_load_roundtrip_is_exact_in_half_precision(tmp_path):
    tok = CharTokenizer(max_len=32)
    torch.manual_seed(0)
    model = CharCNN(tok.vocab_size, 3, channels=8).eval()
    save_text_model(tmp_path / "m", model, tok, ["a", "b", "c"], {"dataset": "x"})
    loaded, tok2, meta = load_text_model(tmp_path / "m")
    x = tok(["hello world", "Zebra!"])
    assert torch.equal(tok2(["hello world", "Zebra!"]), x) and meta["label_names"] == ["a", "b", "c"]
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())  # what was stored
        assert torch.allclose(model(x), loaded(x), atol=1e-6)
        one_hot = torch.nn.functional.one_hot(x, tok.vocab_size).float()
        assert torch.allclose(loaded.forward_one_hot(one_hot), loaded(x), atol=1e-5)
    with pytest.raises(FileNotFoundError, match="advx text train"):
        load_text_model(tmp_path / "missing")


def test_tokenizers():
    tok = CharTokenizer(alphabet="ab", max_len=4)
    assert tok(["aBc", ""]).tolist() == [[2, 3, 1, 0], [0, 0, 0, 0]]
    wt = WordTokenizer.build(["the cat", "the dog", "the cat"], size=10, max_len=3, min_count=1)
    assert wt.vocab[0] == "the" and wt(["The CAT sat!"]).tolist() == [[2, wt.index["cat"], 1]]


def test_adapters():
    clf = CallableClassifier(lambda texts: [[1.0, 0.0] if "a" in t else [0.0, 1.0] for t in texts])
    assert clf.predict_proba(["a", "b"]).argmax(1).tolist() == [0, 1]
    logits = CallableClassifier(lambda texts: np.zeros((len(texts), 3)), outputs="logits")
    assert torch.allclose(logits.predict_proba(["x"]), torch.full((1, 3), 1 / 3))
    with pytest.raises(ValueError, match="outputs='logits'"):
        CallableClassifier(lambda texts: np.ones((len(texts), 2))).predict_proba(["x"])
    assert as_classifier(clf) is clf
    with pytest.raises(TypeError, match="tokenizer"):
        as_classifier(torch.nn.Linear(2, 2))
    tok = CharTokenizer(max_len=16)
    model = CharCNN(tok.vocab_size, 2, channels=4).train()
    tclf = TorchTextClassifier(model, tok)
    with pytest.warns(UserWarning, match="training mode"):
        tclf.predict_proba(["hi"])
    assert model.training and all(p.requires_grad for p in model.parameters())  # restored


@pytest.mark.parametrize("name", sorted(ZOO))
def test_reference_models_accuracy(name):
    clf, meta = load_reference(name)
    n = 60 if name.startswith("minilm") else 200  # a transformer forward is slow on one CPU thread
    test = load_text_dataset(ZOO[name].dataset, "test").subset(n)
    acc = accuracy(clf, test)
    assert acc >= 0.8, f"{name}: {acc:.3f} on {n} test examples"
    assert meta["test_accuracy"] >= 0.8 and meta["dataset"] == ZOO[name].dataset


def test_huggingface_adapter_offline(tmp_path):
    transformers = pytest.importorskip("transformers")  # optional extra; not part of the default install
    from advx.text.hf import HuggingFaceClassifier
    from advx.text.minilm import minilm_dir

    tok = transformers.BertTokenizerFast(vocab_file=str(minilm_dir() / "vocab.txt"), do_lower_case=True)
    cfg = transformers.BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                  intermediate_size=64, num_labels=2, id2label={0: "neg", 1: "pos"},
                                  label2id={"neg": 0, "pos": 1})
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(cfg).eval()
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    clf = HuggingFaceClassifier(tmp_path)
    texts = ["hello world", "a much longer sentence than the first one"]
    with torch.no_grad():
        expected = model(**tok(texts, padding=True, return_tensors="pt")).logits.softmax(1)
    assert clf.label_names == ("neg", "pos")
    assert torch.allclose(clf.predict_proba(texts), expected, atol=1e-5)
