"""Targeted attacks and universal perturbations on the CTC recogniser (SYNTHETIC speech).

    OMP_NUM_THREADS=1 python benchmarks/audio_ctc.py --n 10 --dbs=-20,-30,-40 --steps 200 --psycho-steps 100
    OMP_NUM_THREADS=1 python benchmarks/audio_ctc.py --parts eot --n 6 --eot 4
    OMP_NUM_THREADS=1 python benchmarks/audio_ctc.py --parts universal --train-n 256 --n 100

* sweep: targeted C&W (CTC loss, dB bound then shrinking) to ``--target`` on test
  clips (voices never heard in training) for each bound, then the psychoacoustic
  stage (Qin et al. 2019) from the same examples: success (exact target
  transcription), success after 16-bit rounding, median dB_x, median fraction of
  the perturbation's energy above the masking threshold, gradients per clip.
* eot: C&W at ``--eot-db`` with and without EOT over the air (room, band-pass,
  gain, noise): the share of fresh random playbacks after which the target is
  still transcribed.
* universal: one perturbation (peak ``--universal-db`` dBFS) learned on
  ``--train-n`` training clips, judged on ``--n`` test clips: targeted to
  ``--target`` and untargeted, on the CTC recogniser and on the keyword spotter
  (targeted: every digit heard as ``--kws-target``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from advx.audio.ctc import transcribe
from advx.audio.ctc_attack import TargetedCTC, transcription_survival
from advx.audio.data import DIGITS, load_digits
from advx.audio.models import load_model
from advx.audio.phrases import load_phrases
from advx.audio.transforms import over_the_air
from advx.audio.universal import apply_universal, ctc_objective, kws_objective, universal_perturbation
from advx.threat import Decibels, db_x


def _print_row(r: dict) -> None:
    cells = [r["attack"], f"{r['db']:g}", f"{r['success_rate']:.2f}", f"{r['success_16bit']:.2f}",
             f"{r['median_db_x']:.1f}", f"{r['median_above_threshold']:.2f}", f"{r['mean_gradients']:.0f}",
             f"{r['seconds']:.0f}"]
    print("| " + " | ".join(cells) + " |", flush=True)


def sweep(model, x, target, args) -> list[dict]:
    rows = []
    print("| attack | dB_x bound | success | as 16-bit | median dB_x | energy above threshold | grads/clip | s |")
    print("|---|---|---|---|---|---|---|---|")
    for db in [float(v) for v in args.dbs.split(",")]:
        res = TargetedCTC(Decibels(db), steps=args.steps, psycho_steps=args.psycho_steps)(model, x, target)
        for name, r in (("C&W", res.stage1 or res), ("C&W + psychoacoustic", res if res.stage1 else None)):
            if r is None:
                continue
            row = {"attack": name, "db": db, **r.summary(), "transcriptions": r.transcriptions}
            rows.append(row)
            _print_row(row)
    return rows


def eot(model, x, target, args) -> list[dict]:
    rows = []
    tr = over_the_air()
    for k in (0, args.eot):
        t0 = time.time()
        att = TargetedCTC(Decibels(args.eot_db), steps=args.steps, eot=k, transform=tr if k else None, seed=1)
        r = att(model, x, target)
        surv = transcription_survival(model, r.x_adv, [target] * len(x), tr, draws=16, seed=999)
        row = {"attack": "C&W" + (f" + EOT-{k}" if k else ""), "db": args.eot_db, "success": r.success_rate,
               "survival": float(surv.mean()), "survival_of_successes": float(surv[r.success].mean())
               if bool(r.success.any()) else 0.0, "seconds": round(time.time() - t0, 1)}
        rows.append(row)
        print(f"{row['attack']} at {args.eot_db:g} dB: success {row['success']:.2f}, target still transcribed after "
              f"fresh over-the-air playback {row['survival']:.2f} ({row['seconds']} s)", flush=True)
    return rows


def universal(ctc, args) -> list[dict]:
    return universal_ctc(ctc, args) + universal_kws(args)


def universal_ctc(ctc, args) -> list[dict]:
    rows = []
    train, test = load_phrases("train", limit=args.train_n), load_phrases("test", limit=args.n)
    clean_train, clean_test = transcribe(ctc, train.waves), transcribe(ctc, test.waves)
    for goal in (args.target, None):
        res = universal_perturbation(ctc, train.waves, ctc_objective(clean_train, goal), db=args.universal_db,
                                     steps=args.universal_steps, seed=0)
        adv = apply_universal(res.delta, test.waves)
        heard = transcribe(ctc, adv)
        if goal is not None:
            keep = torch.tensor([c != goal for c in clean_test])
            ok = torch.tensor([h == goal for h in heard])
        else:
            keep = torch.ones(len(heard), dtype=torch.bool)
            ok = torch.tensor([h != c for h, c in zip(heard, clean_test)])
        rows.append(_uni_row("phrases-ctc", goal, ok, keep, adv, test.waves, res, heard))
    return rows


def universal_kws(args) -> list[dict]:
    rows = []
    kws = load_model("digits-kws")
    dtrain, dtest = load_digits("espeak", "train", limit=args.train_n), load_digits("espeak", "test", limit=args.n)
    with torch.no_grad():
        clean = kws(dtest.waves).argmax(1)
    tclass = DIGITS.index(args.kws_target)
    for goal in (tclass, None):
        res = universal_perturbation(kws, dtrain.waves, kws_objective(dtrain.labels, goal), db=args.universal_db,
                                     steps=args.universal_steps, seed=0)
        adv = apply_universal(res.delta, dtest.waves)
        with torch.no_grad():
            pred = kws(adv).argmax(1)
        keep = (clean == dtest.labels) & ((dtest.labels != goal) if goal is not None else True)
        ok = pred == goal if goal is not None else pred != dtest.labels
        rows.append(_uni_row("digits-kws", None if goal is None else DIGITS[goal], ok, keep, adv, dtest.waves, res,
                             [DIGITS[int(p)] for p in pred]))
    return rows


def _uni_row(model, goal, ok, keep, adv, x, res, heard) -> dict:
    d = db_x(adv, x)[keep]
    row = {"model": model, "target": goal, "success_rate": float((ok & keep).sum()) / max(1, int(keep.sum())),
           "attacked": int(keep.sum()), "delta_dbfs": res.dbfs, "median_db_x": float(d.median()),
           "seconds": round(res.seconds, 1), "examples": heard[:5]}
    print(f"universal {model} {'to ' + repr(goal) if goal else 'untargeted'}: success {row['success_rate']:.2f} "
          f"of {row['attacked']} held-out clips, peak {row['delta_dbfs']:.1f} dBFS, median dB_x "
          f"{row['median_db_x']:.1f} ({row['seconds']} s); e.g. {heard[:3]}", flush=True)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--parts", default="sweep", help="sweep, eot, universal, universal-ctc, universal-kws "
                   "(comma-separated)")
    p.add_argument("--n", type=int, default=10)
    p.add_argument("--target", default="open the door")
    p.add_argument("--dbs", default="-20,-30,-40")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--psycho-steps", type=int, default=100)
    p.add_argument("--eot", type=int, default=4)
    p.add_argument("--eot-db", type=float, default=-20.0)
    p.add_argument("--train-n", type=int, default=256)
    p.add_argument("--universal-db", type=float, default=-30.0)
    p.add_argument("--universal-steps", type=int, default=300)
    p.add_argument("--kws-target", default="seven")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("runs/bench_audio_ctc.json"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model("phrases-ctc")
    data = load_phrases("test", limit=args.n)
    keep = [i for i, t in enumerate(data.texts) if t != args.target]
    x = data.waves[keep]
    print(f"{data.description}; {len(x)} test clips, target '{args.target}'", flush=True)
    out = {"target": args.target, "clips": len(x), "args": vars(args) | {"out": str(args.out)}}
    parts = set(args.parts.split(","))
    if "sweep" in parts:
        out["sweep"] = sweep(model, x, args.target, args)
    if "eot" in parts:
        out["eot"] = eot(model, x, args.target, args)
    if "universal" in parts:
        out["universal"] = universal(model, args)
    if "universal-ctc" in parts:
        out["universal_ctc"] = universal_ctc(model, args)
    if "universal-kws" in parts:
        out["universal_kws"] = universal_kws(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
