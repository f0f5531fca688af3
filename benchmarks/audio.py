"""Targeted success rate versus the dB bound on the spoken-digit model (synthetic speech).

    python benchmarks/audio.py --n 50 --dbs=-20,-30,-40,-50,-60,-70 --out runs/bench_audio.json
    python benchmarks/audio.py --model digits-kws-floor --n 50 --dbs=-30,-40,-50,-60,-70 --parts sweep,cw

(the second: the same network trained with the log-mel floor 70 dB below full
scale instead of the absolute 1e-6 -- the noise-floor comparison.)

* PGD (margin loss) inside Decibels(db) for each bound: targeted success rate
  over the clips the model classifies correctly, and the median dB_x of successes.
* The C&W minimum-dB attack (Carlini & Wagner 2018) from a -20 dB ball: its
  targeted success and the median dB_x of its successful examples (the anchor:
  C&W report 100% targeted success on DeepSpeech at about -31 dB).
* Optionally (--eot K) PGD at --eot-db with EOT over K random playbacks versus
  plain PGD: the fraction of fresh random playbacks (room, gain, shift, noise)
  after which the example still succeeds.

Data: espeak-ng digits, test split (voices never heard in training): SYNTHETIC SPEECH.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from advx.attacks.pgd import PGD
from advx.audio import EOT, CarliniWagnerDB, Decibels, db_x, load_digits, load_model, playback, success_under


def _targets(y: torch.Tensor, seed: int) -> torch.Tensor:
    return (y + torch.randint(1, 10, y.shape, generator=torch.Generator().manual_seed(seed))) % 10


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="digits-kws", help="digits-kws or digits-kws-floor")
    p.add_argument("--n", type=int, default=50)
    p.add_argument("--dbs", default="-20,-30,-40,-50,-60,-70")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--cw-steps", type=int, default=300)
    p.add_argument("--eot", type=int, default=0, help="EOT samples (0: skip the playback comparison)")
    p.add_argument("--eot-db", type=float, default=-20.0)
    p.add_argument("--parts", default="sweep,cw,eot", help="which parts to run (comma-separated)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("runs/bench_audio.json"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.model)
    data = load_digits("espeak", "test", limit=args.n)
    with torch.no_grad():
        right = model(data.waves).argmax(1) == data.labels
    x, y = data.waves[right], data.labels[right]
    t = _targets(y, 0)
    print(f"{data.description}; {len(x)} of {len(data)} clips classified correctly and attacked (targeted)")
    rows = []
    parts = set(args.parts.split(","))
    print("| attack | bound dB_x | targeted success | median dB_x of successes | grads/clip | seconds |")
    print("|---|---|---|---|---|---|")
    for db in [float(v) for v in args.dbs.split(",")] if "sweep" in parts else []:
        t0 = time.time()
        r = PGD(Decibels(db), steps=args.steps, loss="margin")(model, x, y, t)
        d = db_x(r.x_adv, x)[r.success]
        row = {"attack": f"PGD-{args.steps}", "db": db, "success": r.success_rate,
               "median_db_x": float(d.median()) if len(d) else None,
               "gradients": float(r.gradients.double().mean()), "seconds": round(time.time() - t0, 1)}
        rows.append(row)
        med = "-" if row["median_db_x"] is None else f"{row['median_db_x']:.1f}"
        print(f"| {row['attack']} | {db:g} | {row['success']:.3f} | {med} | {row['gradients']:.1f} | {row['seconds']} |")
    if "cw" in parts:
        rows.append(_cw(model, x, y, t, args.cw_steps))
    if args.eot and "eot" in parts:
        rows += _eot(model, x, y, t, args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"model": args.model, "data": data.description, "attacked": len(x), "rows": rows},
                                   indent=2) + "\n")
    print(f"wrote {args.out}")


def _cw(model, x, y, t, steps) -> dict:
    t0 = time.time()
    r = CarliniWagnerDB(Decibels(-20), steps=steps)(model, x, y, t)
    d = db_x(r.x_adv, x)[r.success]
    cw = {"attack": f"C&W-dB-{steps}", "db": -20.0, "success": r.success_rate,
          "median_db_x": float(d.median()) if len(d) else None,
          "success_at_or_below_-30": float((db_x(r.x_adv, x) <= -30)[r.success].double().sum() / len(x)),
          "gradients": float(r.gradients.double().mean()), "seconds": round(time.time() - t0, 1)}
    print(f"| {cw['attack']} | -20 (start) | {cw['success']:.3f} | {cw['median_db_x']:.1f} | {cw['gradients']:.1f} "
          f"| {cw['seconds']} |")
    print(f"C&W: targeted success with dB_x <= -30: {cw['success_at_or_below_-30']:.3f}")
    return cw


def _eot(model, x, y, t, args) -> list[dict]:
    rows = []
    for k in (0, args.eot):
        t0 = time.time()
        victim = EOT(model, k, transform=playback(), seed=1) if k else model
        r = PGD(Decibels(args.eot_db), steps=args.steps, loss="margin", early_stop=not k)(victim, x, y, t)
        with torch.no_grad():
            plain = model(r.x_adv).argmax(1) == t
        surv = success_under(model, r.x_adv, y, t, draws=16, seed=999)
        row = {"attack": f"PGD-{args.steps}" + (f" + EOT-{k}" if k else ""), "db": args.eot_db,
               "success": float(plain.double().mean()), "success_after_playback": float(surv.mean()),
               "seconds": round(time.time() - t0, 1)}
        rows.append(row)
        print(f"{row['attack']} at {args.eot_db:g} dB: targeted success {row['success']:.3f}, still targeted "
              f"after fresh random playback {row['success_after_playback']:.3f} ({row['seconds']} s)")
    return rows


if __name__ == "__main__":
    main()
