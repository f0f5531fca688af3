"""Black-box attack on a real speech recogniser: CMU PocketSphinx (US-English model of PyPI
``pocketsphinx``) on the real recordings of Debian ``pocketsphinx-testdata``.

For each dB bound and fitness, attack every clip with ``TranscriptionAttack`` and print:
success rate (transcription changed), median WER of the changed transcriptions against the clean
ones, median dB_x and SNR of the successes, median queries per clip (clean decode included),
seconds per clip. ``--per-clip`` prints every transcription.

    OMP_NUM_THREADS=1 python benchmarks/audio_asr.py --db=-30,-40 --queries 100
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from advx.audio import Decibels, SphinxASR, TranscriptionAttack, sphinx_clips, wer


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--subset", default="cards", choices=["cards", "librivox"])
    p.add_argument("--db", default="-30,-40", help="comma-separated dB_x bounds (write --db=-30,-40)")
    p.add_argument("--fitness", default="confidence,wer", help="comma-separated: confidence, wer")
    p.add_argument("--queries", type=int, default=100, help="transcriptions per clip, the clean one included")
    p.add_argument("--population", type=int, default=6)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--per-clip", action="store_true")
    p.add_argument("--json", default=None, help="write the rows here")
    a = p.parse_args()

    clips = sphinx_clips(a.subset)
    asr = SphinxASR()
    print(f"{len(clips)} real recordings ({a.subset}), CMU PocketSphinx US-English model")
    for c in clips:
        text = asr(c.wave)
        print(f"  {c.name}: reference {c.reference!r}; clean transcription {text!r} (WER {wer(text, c.reference):.2f})")
    rows = []
    print("| dB_x bound | fitness | success | median WER | median dB_x | median SNR (dB) | median queries | s / clip |")
    print("|---|---|---|---|---|---|---|---|")
    for db in (float(v) for v in a.db.split(",")):
        for fitness in a.fitness.split(","):
            attack = TranscriptionAttack(Decibels(db), max_queries=a.queries, population=a.population,
                                         fitness=fitness, seed=a.seed)
            t0, res = time.perf_counter(), []
            for c in clips:
                r = attack(asr, c.wave)
                res.append(r)
                if a.per_clip:
                    print(f"    {c.name} {db:g} dB {fitness}: {r.clean!r} -> {r.adversarial!r} "
                          f"(WER {r.wer:.2f}, dB_x {r.db_x:.2f}, {r.queries} queries)", flush=True)
            ok = [r for r in res if r.success]
            med = (lambda v: statistics.median(v) if v else float("nan"))  # noqa: E731
            row = dict(db=db, fitness=fitness, clips=len(res), success=len(ok) / len(res),
                       median_wer=med([r.wer for r in ok]), median_db_x=med([r.db_x for r in ok]),
                       median_snr=med([r.snr for r in ok]), median_queries=med([r.queries for r in res]),
                       seconds_per_clip=(time.perf_counter() - t0) / len(res),
                       examples=[(r.clean, r.adversarial) for r in res])
            rows.append(row)
            print(f"| {db:g} | {fitness} | {row['success']:.2f} ({len(ok)}/{len(res)}) | {row['median_wer']:.2f} | "
                  f"{row['median_db_x']:.1f} | {row['median_snr']:.1f} | {row['median_queries']:g} | "
                  f"{row['seconds_per_clip']:.0f} |", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
