"""Bookkeeping overhead of ``advx evaluate``: wall time over the time spent inside the model.

Runs ``advx.evaluate(model, data, threat, attacks=PRESET, checks=False)`` on a zoo model with the
model wrapped in a :class:`advx.model.PassCounter` and reports, per threat, the wall time, the
seconds inside the model (``PassCounter.seconds``: its forwards, and its backwards from the
output's gradient to the input's) and the overhead ``wall / model_s - 1``, with each attack's
share of the wall time.

``--compare SRC`` (a ``src`` folder of another checkout, e.g. one made with
``git archive OLD src | tar -x -C /tmp/advx-old``) measures that code and this one side by side:
each repeat runs both, alternately, in fresh processes (``--repeats`` times), and the medians
are reported; the robust counts and pass counts of the two must agree (a speed-up must not
change a result). On a shared machine read the overhead ratios, not single wall times.

Usage: python benchmarks/overhead.py [--model fmnist-cnn-at] [--data fashion-mnist] [--n 50]
       [--threats linf:0.1,l2:1.0] [--preset standard] [--threads 1] [--repeats 3]
       [--compare /tmp/advx-old/src] [--profile 25] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent / "src"


def measure(args) -> dict:
    """One evaluation in this process (the child's job)."""
    import torch

    torch.set_num_threads(args.threads)
    from advx import evaluate
    from advx.data import load
    from advx.model import PassCounter
    from advx.zoo import load_model

    model = load_model(args.model)
    data = load(args.data, split="test", n=args.n, seed=0)
    counter = PassCounter(model)
    profile = None
    if args.profile:
        import cProfile

        profile = cProfile.Profile()
        profile.enable()
    t0 = time.perf_counter()
    report = evaluate(counter, data, args.threat, attacks=args.preset, checks=False, progress=False,
                      batch_size=args.batch_size, keep_adversarials=False)
    wall = time.perf_counter() - t0
    if profile is not None:
        import pstats

        profile.disable()
        pstats.Stats(profile, stream=sys.stderr).sort_stats("tottime").print_stats(args.profile)
    res = report.results[0]
    return {"threat": args.threat, "wall_s": wall, "model_s": counter.seconds, "overhead": wall / counter.seconds - 1,
            "passes": counter.passes, "robust": res.robust, "broken_by": res.broken_by,
            "attack_s": report.timing["attack_s"]}


def child(src: Path, args, threat: str) -> dict:
    cmd = [sys.executable, __file__, "--child", "--threat", threat, "--model", args.model, "--data", args.data,
           "--n", str(args.n), "--preset", args.preset, "--threads", str(args.threads),
           "--batch-size", str(args.batch_size)]
    env = {**os.environ, "PYTHONPATH": str(src)}
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="fmnist-cnn-at")
    ap.add_argument("--data", default="fashion-mnist")
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--threats", default="linf:0.1,l2:1.0")
    ap.add_argument("--preset", default="standard")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--compare", default=None, help="a src folder of other code, measured alternately with this one")
    ap.add_argument("--profile", type=int, default=0, help="print the top N functions by own time (this code, once)")
    ap.add_argument("--json", default=None, help="also write the rows to this file")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--threat", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(measure(args)))
        return
    if args.profile:
        for threat in args.threats.split(","):
            args.threat = threat
            print(json.dumps(measure(args)), flush=True)
        return
    codes = {"this": HERE} if args.compare is None else {"other": Path(args.compare).resolve(), "this": HERE}
    rows = []
    for threat in args.threats.split(","):
        runs: dict[str, list[dict]] = {k: [] for k in codes}
        for _ in range(args.repeats):
            for name, src in codes.items():
                runs[name].append(child(src, args, threat))
                print(json.dumps({"code": name, **runs[name][-1]}), flush=True)
        for name, got in runs.items():
            rows.append({"threat": threat, "code": name, "src": str(codes[name]), "repeats": len(got),
                         "overhead_median": statistics.median(r["overhead"] for r in got),
                         "wall_s_median": statistics.median(r["wall_s"] for r in got),
                         "model_s_median": statistics.median(r["model_s"] for r in got),
                         "passes": got[0]["passes"], "robust": got[0]["robust"]})
        if len(runs) == 2:
            a, b = runs.values()
            if {(r["passes"], r["robust"]) for r in a} != {(r["passes"], r["robust"]) for r in b}:
                raise SystemExit(f"{threat}: the two codes disagree on passes or robust points: {a[0]} vs {b[0]}")
    print("| threat | code | overhead vs model time (median) | wall s | model s | passes | robust |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['threat']} | {r['code']} | {100 * r['overhead_median']:+.0f}% | {r['wall_s_median']:.1f} | "
              f"{r['model_s_median']:.1f} | {r['passes']:,} | {r['robust']} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
