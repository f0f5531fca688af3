"""``advx audio``: adversarial speech against keyword spotters on raw waveforms.

    advx audio attack --model digits-kws --attack pgd --threat db:-30 --n 100 --out runs/audio

The default data are SYNTHETIC SPEECH (espeak-ng spoken digits, test voices never
heard in training). Prints the success rate (untargeted and targeted), mean dB_x
and SNR; writes original and adversarial WAVs, summary.json and report.html.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from pathlib import Path

import click
import torch

log = logging.getLogger(__name__)

ATTACKS = ("pgd", "apgd", "cw", "genetic")


def _build_attack(name: str, threat, steps: int | None, restarts: int, queries: int, seed: int, eot: int = 0):
    if name == "pgd":
        from advx.attacks.pgd import PGD  # noqa: PLC0415

        # under EOT one lucky draw is no success: run every step instead of stopping at the first
        return PGD(threat, steps=steps or 100, restarts=restarts, loss="margin", early_stop=not eot, seed=seed)
    if name == "apgd":
        try:
            from advx.attacks.apgd import APGD  # noqa: PLC0415
        except ImportError:
            raise click.UsageError("--attack apgd needs advx.attacks.apgd, which this install lacks") from None
        return APGD(threat, steps=steps or 100, restarts=restarts, loss="ce", seed=seed)
    if name == "cw":
        from advx.audio.cw import CarliniWagnerDB  # noqa: PLC0415

        return CarliniWagnerDB(threat, steps=steps or 300, seed=seed)
    from advx.audio.genetic import GeneticAttack  # noqa: PLC0415

    return GeneticAttack(threat, max_queries=queries, seed=seed)


def _stats(x_adv, success, queries, x, target, keep) -> dict:
    """Success rate over the clips the model got right; dB_x and SNR over the successful ones."""
    from advx.threat import db_x, snr_db  # noqa: PLC0415

    ok = success & keep
    d = db_x(x_adv, x)[ok]
    s = snr_db(x_adv, x)[ok]
    d, s = d[torch.isfinite(d)], s[torch.isfinite(s)]
    return {
        "mode": "targeted" if target is not None else "untargeted",
        "attacked": int(keep.sum()),
        "success_rate": float(ok.sum()) / max(1, int(keep.sum())),
        "mean_db_x": float(d.mean()) if len(d) else math.nan,
        "median_db_x": float(d.median()) if len(d) else math.nan,
        "mean_snr_db": float(s.mean()) if len(s) else math.nan,
        "mean_queries": float(queries[keep].double().mean()) if bool(keep.any()) else math.nan,
    }


@click.group()
def command() -> None:
    """Speech: attack keyword-spotting models on raw waveforms (dB_x threats)."""


@command.command("attack")
@click.option("--model", "model_name", default="digits-kws", show_default=True, help="Audio model name.")
@click.option("--data", "source", type=click.Choice(["espeak", "fsdd"]), default="espeak", show_default=True,
              help="espeak: synthetic speech, offline. fsdd: Free Spoken Digit recordings (downloads once).")
@click.option("--split", default="test", show_default=True, type=click.Choice(["train", "val", "test"]))
@click.option("--attack", "attack_name", type=click.Choice(ATTACKS), default="pgd", show_default=True)
@click.option("--threat", "threat_spec", default="db:-30", show_default=True, help="db:<bound>, e.g. db:-30.")
@click.option("--n", type=click.IntRange(1), default=100, show_default=True, help="Clips to attack.")
@click.option("--mode", type=click.Choice(["both", "untargeted", "targeted"]), default="both", show_default=True)
@click.option("--steps", type=click.IntRange(1), default=None, help="Iterations (pgd/apgd 100, cw 300).")
@click.option("--restarts", type=click.IntRange(1), default=1, show_default=True)
@click.option("--queries", type=click.IntRange(2), default=4000, show_default=True, help="Budget per clip (genetic).")
@click.option("--eot", type=click.IntRange(0), default=0, show_default=True,
              help="Attack the average over this many random playbacks (room, gain, shift, noise); 0: off.")
@click.option("--playback-draws", type=click.IntRange(0), default=16, show_default=True,
              help="Fresh random playbacks to test each adversarial clip against; 0: skip.")
@click.option("--batch", type=click.IntRange(1), default=50, show_default=True)
@click.option("--examples", type=click.IntRange(0), default=8, show_default=True, help="Clips shown in the report.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/audio"), show_default=True)
def attack(model_name, source, split, attack_name, threat_spec, n, mode, steps, restarts, queries, eot,
           playback_draws, batch, examples, seed, out) -> None:
    """Attack spoken digits; print success rates, dB_x and SNR; write WAVs and an HTML report."""
    from advx.audio.data import DIGITS, load_digits  # noqa: PLC0415
    from advx.audio.eot import EOT, success_under  # noqa: PLC0415
    from advx.audio.models import load_model  # noqa: PLC0415
    from advx.audio.transforms import playback  # noqa: PLC0415
    from advx.audio.wav import write_wav  # noqa: PLC0415
    from advx.threat import (  # noqa: PLC0415
        Decibels,
        db_x,
        parse_threat,  # noqa: PLC0415
    )

    threats = parse_threat(threat_spec, bounds=(-1.0, 1.0))
    if len(threats) != 1 or not isinstance(threats[0], Decibels):
        raise click.BadParameter(f"give one decibel bound, e.g. db:-30 (got {threat_spec!r})", param_hint="--threat")
    threat = threats[0]
    t0 = time.time()
    model = load_model(model_name)
    data = load_digits(source, split, limit=n)
    x, y = data.waves, data.labels
    sr = data.sample_rate
    g = torch.Generator().manual_seed(seed)
    target_all = (y + torch.randint(1, 10, y.shape, generator=g)) % 10
    with torch.no_grad():
        clean_pred = torch.cat([model(x[s: s + batch]).argmax(1) for s in range(0, len(x), batch)])
    keep = clean_pred == y
    click.echo(f"data: {len(x)} clips of {data.description}, split {split!r}")
    click.echo(f"model {model_name}: clean accuracy {float(keep.double().mean()):.3f}; attacking the "
               f"{int(keep.sum())} clips it gets right with {attack_name}, threat {threat!r}"
               + (f", EOT over {eot} playbacks" if eot else ""))
    victim = EOT(model, eot, transform=playback(), seed=seed) if eot else model
    att = _build_attack(attack_name, threat, steps, restarts, queries, seed, eot)
    modes = ["untargeted", "targeted"] if mode == "both" else [mode]
    out.mkdir(parents=True, exist_ok=True)
    rows, results = [], {}
    for m in modes:
        x_adv, qs = [], []
        for s in range(0, len(x), batch):
            xb, yb = x[s: s + batch], y[s: s + batch]
            tb = target_all[s: s + batch] if m == "targeted" else None
            gen = torch.Generator().manual_seed(seed + s)
            r = att(victim, xb, yb, tb, generator=gen)
            x_adv.append(r.x_adv)
            qs.append(r.queries)
        x_adv = torch.cat(x_adv)
        tgt = target_all if m == "targeted" else None
        with torch.no_grad():  # judged by the plain model, on the returned clips
            logits = torch.cat([model(x_adv[s: s + batch]) for s in range(0, len(x), batch)])
        pred = logits.argmax(1)
        success = (pred == tgt) if tgt is not None else (pred != y)
        row = _stats(x_adv, success, torch.cat(qs), x, tgt, keep)
        with torch.no_grad():  # what the written 16-bit WAVs do: quantisation may undo very quiet attacks
            q = torch.round(x_adv * 32768).clamp(-32768, 32767) / 32768
            qpred = torch.cat([model(q[s: s + batch]).argmax(1) for s in range(0, len(x), batch)])
        qsucc = (qpred == tgt) if tgt is not None else (qpred != y)
        row["success_16bit_wav"] = float((qsucc & keep).sum()) / max(1, int(keep.sum()))
        if playback_draws:
            surv = success_under(model, x_adv, y, tgt, draws=playback_draws, seed=seed + 999)
            row["success_after_playback"] = float(surv[keep & success].mean()) if bool((keep & success).any()) else 0.0
        rows.append(row)
        results[m] = (x_adv, pred, success, tgt)
        msg = (f"{m:>10}: success {row['success_rate']:.3f} of {row['attacked']}, mean dB_x {row['mean_db_x']:.1f} "
               f"(median {row['median_db_x']:.1f}), mean SNR {row['mean_snr_db']:.1f} dB, "
               f"queries {row['mean_queries']:.0f}, success as 16-bit WAV {row['success_16bit_wav']:.3f}")
        if playback_draws:
            msg += f", still adversarial after random playback {row['success_after_playback']:.2f}"
        click.echo(msg)
    wav_dir = out / "wav"
    for i in range(len(x)):
        write_wav(wav_dir / f"{i:03d}_clean_{DIGITS[int(y[i])]}.wav", x[i], sr)
        for m, (x_adv, pred, _, _) in results.items():
            write_wav(wav_dir / f"{i:03d}_{m}_as_{DIGITS[int(pred[i])]}.wav", x_adv[i], sr)
    notes = [f"Data: {data.description}. " + ("These clips are SYNTHETIC SPEECH generated by espeak-ng, not "
                                              "recordings of people." if data.synthetic else ""),
             f"Model {model_name}; attack {attack_name}; threat {threat!r} (dB_x <= {threat.db:g}); "
             f"success rates are over the {int(keep.sum())} clips classified correctly when clean."]
    shown = [int(i) for i in keep.nonzero().squeeze(1)[:examples]]
    exs = []
    for i in shown:
        for m, (x_adv, pred, success, tgt) in results.items():
            exs.append({"index": i, "mode": m, "label": int(y[i]), "label_name": DIGITS[int(y[i])],
                        "pred": int(pred[i]), "pred_name": DIGITS[int(pred[i])],
                        "target_name": DIGITS[int(tgt[i])] if tgt is not None else None, "success": bool(success[i]),
                        "db_x": float(db_x(x_adv[i:i + 1], x[i:i + 1])), "speaker": str(data.speakers[i])})
    summary = {"command": "audio attack", "medium": "audio", "argv": ["advx", *sys.argv[1:]],
               "model": model_name, "data": data.description, "synthetic": data.synthetic,
               "split": split, "n": len(x), "clean_accuracy": float(keep.double().mean()), "attack": repr(att),
               "attack_name": attack_name, "threat_db": threat.db, "eot_samples": eot, "seed": seed, "results": rows,
               "sample_rate": sr, "notes": notes, "examples": exs, "seconds": round(time.time() - t0, 1)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    from advx.report import write_report  # noqa: PLC0415

    tensors = {"x": x, **{f"x_adv/{m}": r[0] for m, r in results.items()}}  # the page draws the shown clips
    report = write_report(summary, tensors, out / "report.html")
    click.echo(f"wrote {wav_dir}/ ({len(x) * (1 + len(results))} WAVs), {out / 'summary.json'}, {report}")
