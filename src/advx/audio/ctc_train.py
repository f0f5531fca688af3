"""The recipe that trains the committed ``phrases-ctc`` recogniser (SYNTHETIC speech).

    nice -n 10 python -m advx.audio.ctc_train --out src/advx/audio/weights --epochs 6

Data: the espeak-ng command phrases (:mod:`advx.audio.phrases`), train split
(6720 clips of 560 voices); the val split (other voices) picks the best epoch by
greedy word error rate; the test split (voices never heard in training) and the
real ``pocketsphinx-testdata`` recordings whose words lie in the vocabulary are
scored at the end, with greedy, beam and closed-vocabulary beam decoding. Loss:
CTC (``torch.nn.functional.ctc_loss``). Augmentation: the playback transforms of
:mod:`advx.audio.transforms` (room response, gain, shift, noise) and SpecAugment
masks. AdamW with a one-cycle learning rate. One thread by default.

This is a minimal loop of its own: ``advx.audio`` sits below ``advx.defenses``
(where the project's shared training loop lives) and must not import it; the
recipe here is the medium's whole training step (batch, model, CTC loss).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from advx.audio.asr import TESTDATA, wer
from advx.audio.ctc import CTCRecognizer, ctc_loss, encode_text, transcribe
from advx.audio.phrases import PHRASES_VERSION, VOCABULARY, load_phrases
from advx.audio.transforms import AddNoise, RandomGain, RandomShift, RoomResponse

__all__ = ["train_ctc", "word_error_rate", "real_clips", "evaluate_recognizer", "PhraseBatches", "ctc_step",
           "augment"]

log = logging.getLogger(__name__)

#: pocketsphinx-testdata recordings whose every word is in VOCABULARY: (file, reference, format)
REAL_CLIPS = (
    ("cards/001.wav", "ten of clubs"), ("cards/002.wav", "four queen of clubs"), ("cards/003.wav", "seven of clubs"),
    ("cards/004.wav", "five five"), ("cards/005.wav", "eight of spades four of clubs seven of hearts"),
    ("goforward.raw", "go forward ten meters"), ("tidigits/dhd.2934z.raw", "two nine three four zero"),
)


def real_clips(root: Path = TESTDATA) -> list[tuple[str, Tensor, str]]:
    """(name, waveform (T,) at 16 kHz, reference) for the in-vocabulary real recordings that are installed."""
    from advx.audio.wav import read_wav  # noqa: PLC0415

    out = []
    for rel, ref in REAL_CLIPS:
        path = Path(root) / rel
        if not path.is_file():
            continue
        if path.suffix == ".raw":  # headerless 16-bit little-endian mono at 16 kHz (as pocketsphinx reads it)
            wave = torch.from_numpy(np.fromfile(path, dtype="<i2").astype(np.float32) / 32768.0)
        else:
            wave, rate = read_wav(path)
            if rate != 16000 or wave.dim() != 1:
                continue
        out.append((rel, wave, ref))
    return out


def word_error_rate(hyps: list[str], refs: list[str]) -> float:
    """Corpus WER: word errors summed over clips / reference words summed."""
    errors = sum(wer(h, r) * len(r.split()) for h, r in zip(hyps, refs))
    return errors / max(1, sum(len(r.split()) for r in refs))


def char_error_rate(hyps: list[str], refs: list[str]) -> float:
    from advx.audio.asr import _edit_distance  # noqa: PLC0415

    errors = sum(_edit_distance(list(h), list(r)) for h, r in zip(hyps, refs))
    return errors / max(1, sum(len(r) for r in refs))


def _augment(x: Tensor, g: torch.Generator) -> Tensor:
    n = len(x)
    room = RoomResponse(rt60=(0.1, 0.6))(x, g)
    x = torch.where((torch.rand(n, generator=g) < 0.5)[:, None], room, x)
    x = RandomShift(800)(RandomGain((-12.0, 3.0))(x, g), g)
    noisy = AddNoise((5.0, 40.0))(x, g)
    return torch.where((torch.rand(n, generator=g) < 0.7)[:, None], noisy, x)


augment = _augment  #: the recipe's waveform augmentation, augment(x, generator) -> x (for the shared loop)


class PhraseBatches:
    """The phrases as the shared training loop's ``Batches``: ``batch(idx) -> (waves, (targets, lengths))``.

    ``targets`` is the concatenation of the character ids of the clips' transcriptions,
    ``lengths`` their lengths (what ``torch.nn.functional.ctc_loss`` takes).
    """

    def __init__(self, split: str = "train", limit: int | None = None):
        data = load_phrases(split, limit=limit)
        self.pcm = torch.round(data.waves * 32768).to(torch.int16)
        self.texts = data.texts
        self.ids = [encode_text(t) for t in data.texts]

    def __len__(self) -> int:
        return len(self.texts)

    def batch(self, idx: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        picked = [self.ids[i] for i in idx.tolist()]
        return (self.pcm[idx].float() / 32768.0,
                (torch.cat(picked), torch.tensor([len(t) for t in picked], dtype=torch.long)))

    def fingerprint(self) -> dict:
        return {"data": PHRASES_VERSION, "clips": len(self), "texts": hash_texts(self.texts)}


def hash_texts(texts: list[str]) -> str:
    import hashlib  # noqa: PLC0415

    return hashlib.sha256("\n".join(texts).encode()).hexdigest()


def ctc_step(model, x: Tensor, y: tuple[Tensor, Tensor], generator=None) -> tuple[Tensor, None]:
    """The recipe's objective for the shared loop: CTC loss per character, averaged over the batch."""
    targets, lengths = y
    parts = list(torch.split(targets, lengths.tolist()))
    return ctc_loss(model(x), parts, reduction="mean"), None


def evaluate_recognizer(model: CTCRecognizer, waves: Tensor, texts: list[str], beam: bool = True) -> dict:
    """WER / CER with greedy decoding, and (``beam``) prefix beam search with and without the vocabulary."""
    out = {}
    hyps = transcribe(model, waves)
    out["greedy"] = {"wer": word_error_rate(hyps, texts), "cer": char_error_rate(hyps, texts),
                     "exact": float(np.mean([h == t for h, t in zip(hyps, texts)]))}
    if beam:
        for key, lex in (("beam8", None), ("beam8_vocabulary", VOCABULARY)):
            h = transcribe(model, waves, decoder="beam", beam=8, lexicon=lex)
            out[key] = {"wer": word_error_rate(h, texts), "cer": char_error_rate(h, texts),
                        "exact": float(np.mean([a == b for a, b in zip(h, texts)]))}
    out["examples"] = [{"reference": t, "greedy": h} for t, h in list(zip(texts, hyps))[:8]]
    return out


def train_ctc(epochs: int = 6, batch: int = 32, lr: float = 3e-3, seed: int = 0, threads: int = 1,
              channels: int = 96, hidden: int = 96, floor_db: float = -70.0, limit: int | None = None,
              snapshot: Path | None = None, init: Path | None = None,
              pct_start: float = 0.15, stop_after: int | None = None) -> tuple[CTCRecognizer, dict]:
    """Train a :class:`CTCRecognizer` on the espeak-ng phrases; returns it and its metadata.

    ``snapshot``: after every epoch, the current weights are written there (safetensors), so
    a long run can be inspected (or used) before it ends. ``init``: start from these weights
    (safetensors of the same architecture) instead of a random initialisation -- the second
    phase of the committed recipe. ``stop_after``: end after this many epochs of the
    ``epochs``-epoch schedule (the first phase of the committed recipe stops after 4 of 6).
    """
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    train = load_phrases("train", limit=limit)
    val = load_phrases("val", limit=None if limit is None else max(32, limit // 8))
    pcm = torch.round(train.waves * 32768).to(torch.int16)  # half the memory of float32
    targets = [encode_text(t) for t in train.texts]
    model = CTCRecognizer(channels=channels, hidden=hidden, floor_db=floor_db, spec_augment=True)
    if init is not None:
        from safetensors.torch import load_file  # noqa: PLC0415

        model.load_state_dict(load_file(str(init)))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    per_epoch = len(train) // batch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * per_epoch,
                                                pct_start=pct_start)
    best, best_state, history = float("inf"), None, []
    t0 = time.time()
    for epoch in range(epochs if stop_after is None else min(epochs, int(stop_after))):
        model.train()
        order = torch.randperm(len(train), generator=g)
        total = 0.0
        for s in range(per_epoch):
            idx = order[s * batch: (s + 1) * batch]
            x = _augment(pcm[idx].float() / 32768.0, g)
            loss = ctc_loss(model(x), [targets[i] for i in idx.tolist()], reduction="mean")
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            sched.step()
            total += float(loss.detach())
            if s % 50 == 0:
                log.info("epoch %d step %d/%d: loss %.3f (%.0f s)", epoch + 1, s, per_epoch, float(loss),
                         time.time() - t0)
        hyps = transcribe(model, val.waves)
        v = word_error_rate(hyps, val.texts)
        history.append({"epoch": epoch + 1, "train_loss": total / max(1, per_epoch), "val_wer_greedy": v,
                        "seconds": round(time.time() - t0, 1)})
        log.info("epoch %d: train loss %.3f, val WER (greedy) %.4f (%.0f s); e.g. %r -> %r", epoch + 1,
                 total / max(1, per_epoch), v, time.time() - t0, val.texts[0], hyps[0])
        if v <= best:
            best, best_state = v, {k: t.clone() for k, t in model.state_dict().items()}
        if snapshot is not None:
            from safetensors.torch import save_file  # noqa: PLC0415

            save_file({k: t.contiguous() for k, t in model.state_dict().items()}, str(snapshot))
    model.load_state_dict(best_state)
    model.spec_augment = False
    model.eval()
    train_seconds = time.time() - t0
    test = load_phrases("test")
    real = real_clips()
    info = {
        "name": "phrases-ctc",
        "config": model.config,
        "parameters": sum(p.numel() for p in model.parameters()),
        "data": f"{PHRASES_VERSION}: SYNTHETIC speech (espeak-ng command phrases, 2-4 words of a "
                f"{len(VOCABULARY)}-word vocabulary), splits disjoint by voice variant",
        "vocabulary": list(VOCABULARY),
        "train_clips": len(train), "val_clips": len(val), "test_clips": len(test),
        "recipe": {"init": None if init is None else str(init), "epochs": epochs, "stop_after": stop_after, "batch": batch, "lr": lr, "optimizer": "AdamW (wd 1e-4), one-cycle, clip 5",
                   "loss": "CTC (torch.nn.functional.ctc_loss), per character",
                   "augment": "room 50%, gain -12..3 dB, shift 50 ms, noise 5-40 dB SNR 70%, SpecAugment 1 freq "
                              "(<=6 mels) + 2 time (<=12 frames) masks", "seed": seed, "threads": threads},
        "val_wer_greedy": best,
        "test": evaluate_recognizer(model, test.waves, test.texts),
        "history": history,
        "train_seconds": round(train_seconds, 1),
        "torch": torch.__version__,
    }
    if real:
        names, waves, refs = zip(*real)
        per = []
        for name, w, ref in real:
            per.append({"clip": name, "reference": ref, "greedy": transcribe(model, w[None])[0],
                        "beam8_vocabulary": transcribe(model, w[None], decoder="beam", lexicon=VOCABULARY)[0]})
        info["real_pocketsphinx_testdata"] = {
            "clips": len(real), "words": sum(len(r.split()) for r in refs),
            "note": "real recordings of people (Debian pocketsphinx-testdata) whose words are all in the vocabulary",
            "greedy_wer": word_error_rate([p["greedy"] for p in per], list(refs)),
            "beam8_vocabulary_wer": word_error_rate([p["beam8_vocabulary"] for p in per], list(refs)),
            "per_clip": per,
        }
    return model, info


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "weights")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--channels", type=int, default=96)
    parser.add_argument("--hidden", type=int, default=96)
    parser.add_argument("--floor-db", type=float, default=-70.0)
    parser.add_argument("--limit", type=int, default=None, help="train clips (default: all); for quick trials")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--name", default="phrases-ctc")
    parser.add_argument("--init", type=Path, default=None, help="start from these weights (phase 2)")
    parser.add_argument("--warmup", type=float, default=0.15, help="one-cycle warm-up fraction")
    parser.add_argument("--stop-after", type=int, default=None, help="end after this many epochs of the schedule")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from safetensors.torch import save_file  # noqa: PLC0415

    args.out.mkdir(parents=True, exist_ok=True)
    model, info = train_ctc(epochs=args.epochs, batch=args.batch, lr=args.lr, seed=args.seed, threads=args.threads,
                            channels=args.channels, hidden=args.hidden, floor_db=args.floor_db, limit=args.limit,
                            snapshot=args.out / f"{args.name}.snapshot.safetensors", init=args.init,
                            pct_start=args.warmup, stop_after=args.stop_after)
    info["name"] = args.name
    info["command"] = "python -m advx.audio.ctc_train " + " ".join(argv if argv is not None else sys.argv[1:])
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(args.out / f"{args.name}.safetensors"))
    (args.out / f"{args.name}.json").write_text(json.dumps(info, indent=2) + "\n")
    log.info("saved to %s: val WER %.4f, test WER greedy %.4f", args.out, info["val_wer_greedy"],
             info["test"]["greedy"]["wer"])


if __name__ == "__main__":
    main()
