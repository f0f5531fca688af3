"""The one job pipeline: batches -> checkpoints -> outputs, for every command.

A job (:class:`Job`) is three methods: how many batches, one batch -> a record
(tensors + JSON meta), all records -> :class:`JobOutput`. :func:`run_job` does
the rest the same way for ``attack``, ``demo``, ``evaluate``, ``certify``,
``transfer``, ``text attack`` and ``audio attack``:

1. fingerprint the job (:func:`advx.jobs.fingerprint.fingerprint`) and open the
   run folder (:class:`advx.jobs.run_folder.RunFolder`: locked, bound, checked);
2. shard the batches over ``torchrun`` processes (:mod:`advx.jobs.distributed`);
3. per batch: load its checkpoint (``resume``) or run it and checkpoint it; a
   Rich progress bar with an ETA on stderr moves with the job's ``tick(n)``;
4. gather the records, ``job.finish(records)``, and write ``results.json``
   (the common fields of :func:`common_results` filled in), ``adversarial.safetensors``,
   ``report.html`` (``advx.report.write_report``) and any extra files.

Minimal job::

    class Squares:
        def __init__(self, x):
            self.x = x
            self.config = JobConfig("squares", argv=capture_argv(), batch_size=4, n=len(x))
        def num_batches(self):
            return math.ceil(len(self.x) / self.config.batch_size)
        def run_batch(self, b, tick):
            xb = self.x[b * 4:(b + 1) * 4]
            tick(len(xb))
            return {"y": xb ** 2}, {"n": len(xb)}
        def finish(self, records):
            y = torch.cat([records[b][0]["y"] for b in sorted(records)])
            return JobOutput(results={"sum": float(y.sum())}, tensors={"y": y})

    run_job(Squares(torch.arange(10.0)), "runs/squares")
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from advx.jobs.config import SCHEMA_VERSION, JobConfig, jsonable
from advx.jobs.distributed import gather_records, process_group, shard
from advx.jobs.fingerprint import Fingerprint, fingerprint
from advx.jobs.run_folder import RunFolder

__all__ = ["Job", "JobOutput", "Record", "Tick", "run_job", "batch_seed", "batch_count", "batch_slice", "common_results", "environment",
           "progress_bar"]

log = logging.getLogger(__name__)

Record = tuple[dict[str, Tensor], dict[str, Any]]
Tick = Callable[..., None]


@dataclass
class JobOutput:
    """What a finished job writes: results.json's body, adversarial.safetensors, extra files."""

    results: dict[str, Any]
    tensors: dict[str, Tensor] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)  #: relative path -> bytes (audio WAVs ...)
    html: str | None = None  #: the page, when the job renders its own (else advx.report.write_report)
    value: Any = None  #: what the Python API returns (e.g. an EvaluationReport); not written


@runtime_checkable
class Job(Protocol):
    """A command as a job. Optional: ``units(b)`` (tick units in batch b, default 1),
    ``label`` (progress text), ``status(records)`` (a running figure next to the bar),
    ``fingerprint()`` (default: from ``config``, whose model/data dicts hold ``sha256``)."""

    config: JobConfig

    def num_batches(self) -> int: ...

    def run_batch(self, b: int, tick: Tick) -> Record: ...

    def finish(self, records: dict[int, Record]) -> JobOutput: ...


def batch_count(n: int, batch_size: int) -> int:
    """Batches of ``batch_size`` rows covering ``n`` rows."""
    return math.ceil(n / batch_size)


def batch_slice(b: int, batch_size: int, n: int) -> slice:
    """Rows of batch ``b`` (the last one may be short)."""
    return slice(b * batch_size, min((b + 1) * batch_size, n))


def batch_seed(seed: int, b: int, *parts: Any) -> int:
    """The seed of batch ``b`` (and ``parts``: attack, threat ...). Batch 0 without parts is ``seed`` itself,
    so a one-batch run draws what a plain ``manual_seed(seed)`` would."""
    if b == 0 and not parts:
        return int(seed)
    from advx.evaluation.schedule import derive_seed  # noqa: PLC0415 -- one seed derivation for every job

    return derive_seed(int(seed), int(b), *parts)


def environment() -> dict[str, Any]:
    """Versions needed to reproduce a run."""
    import platform  # noqa: PLC0415

    import numpy  # noqa: PLC0415

    from advx._version import __version__  # noqa: PLC0415

    return {
        "advx": __version__,
        "advx_git_revision": _git_revision(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _git_revision() -> str | None:
    import subprocess  # noqa: PLC0415

    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def common_results(config: JobConfig, fp: Fingerprint | None = None) -> dict[str, Any]:
    """The fields every results.json has (docs/results-schema.md)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "command": config.command,
        "argv": list(config.argv),
        "command_line": config.command_line,
        "config": config.to_dict(),
        "model": dict(config.model),
        "data": dict(config.data),
        "fingerprint": None if fp is None else fp.to_dict(with_key=False),
        "environment": environment(),
    }


def progress_bar(label: str):
    """A Rich progress bar on stderr: label, bar, done/total, elapsed, ETA, a status text."""
    from rich.console import Console  # noqa: PLC0415
    from rich.progress import (  # noqa: PLC0415
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("ETA"), TimeRemainingColumn(), TextColumn("{task.fields[status]}"),
                    console=Console(stderr=True), transient=False)


def _fingerprint_of(job: Job) -> Fingerprint:
    own = getattr(job, "fingerprint", None)
    return own() if callable(own) else fingerprint(job.config)


def run_job(job: Job, out: str | Path | None, *, resume: bool = False, overwrite: bool = False,
            progress: bool = True) -> JobOutput:
    """Run ``job`` into the run folder ``out`` (nothing written if None); return its output.

    ``resume`` reuses the finished batches of the same run in ``out`` (a different run is
    refused); ``overwrite`` replaces what is there; a non-empty ``out`` needs one of them.
    """
    config = job.config
    fp = _fingerprint_of(job)
    device = torch.device(config.device)
    started = time.perf_counter()
    with process_group(device) as (rank, size):
        folder = None
        if out is not None:
            folder = RunFolder(out, fp, resume=resume, overwrite=overwrite, command=config.command_line)
            folder.open(rank, size)
        try:
            output = _run(job, folder, resume, progress, rank, size, device)
            if rank == 0:
                output.results = {**common_results(config, fp), **output.results}
                output.results.setdefault("wall_time_s", round(time.perf_counter() - started, 3))
                if folder is not None:
                    write_outputs(folder, output)
            if size > 1:
                torch.distributed.barrier()
        finally:
            if folder is not None:
                folder.close()
    return output


def _run(job: Job, folder: RunFolder | None, resume: bool, progress: bool, rank: int, size: int,
         device: torch.device) -> JobOutput:
    n = int(job.num_batches())
    mine = shard(n, rank, size)
    records: dict[int, Record] = {}
    todo = []
    for b in mine:
        rec = folder.load_batch(b) if (folder is not None and resume) else None
        if rec is not None:
            records[b] = rec
        else:
            todo.append(b)
    if records:
        log.info("resumed %d finished batches from %s", len(records), folder.path)
    units = getattr(job, "units", None)
    status = getattr(job, "status", None)
    label = getattr(job, "label", None) or config_label(job.config, rank, size)
    bar = progress_bar(label) if progress and rank == 0 else None
    with bar if bar is not None else contextlib.nullcontext():
        task = None
        if bar is not None:
            total = sum(units(b) if units else 1 for b in mine)
            done = sum(units(b) if units else 1 for b in records)
            task = bar.add_task(label, total=total, completed=done, status=status(records) if status else "")

        for b in todo:
            ticked = 0

            def tick(k: float = 1) -> None:  # k units of this batch are done
                nonlocal ticked
                ticked += k
                if bar is not None:
                    bar.update(task, advance=k)

            records[b] = job.run_batch(b, tick)
            if folder is not None:
                folder.save_batch(b, *records[b])
            if bar is not None:
                rest = (units(b) if units else 1) - ticked
                bar.update(task, advance=max(rest, 0), status=status(records) if status else "")
    records = gather_records(records, device)
    return job.finish(records)


def config_label(config: JobConfig, rank: int = 0, size: int = 1) -> str:
    base = f"advx {config.command}"
    return base if size == 1 else f"{base} (rank {rank} of {size})"


def write_outputs(folder: RunFolder, output: JobOutput) -> dict[str, Path]:
    """results.json, adversarial.safetensors (if any tensors), report.html and the extra files."""
    import json  # noqa: PLC0415

    from advx.jobs.config import SCHEMA_VERSION as V  # noqa: PLC0415

    paths = {}
    results = jsonable(output.results)
    paths["results"] = folder.write_text("results.json", json.dumps(results, indent=2, allow_nan=False) + "\n")
    if output.tensors:
        paths["adversarial"] = folder.save_tensors("adversarial.safetensors", output.tensors,
                                                   metadata={"schema_version": str(V)})
    for name, data in output.files.items():
        paths[name] = folder.write_bytes(name, data)
    if output.html is not None:
        paths["report"] = folder.write_text("report.html", output.html)
    else:
        from advx.report import KINDS, write_report  # noqa: PLC0415

        if results.get("command") in KINDS or results.get("command") == "demo":
            paths["report"] = Path(write_report(results, output.tensors or None, folder.path / "report.html"))
        else:  # a new command without a body in advx.report.kinds yet
            log.warning("advx.report has no page for the command %r yet: report.html not written (add a body in "
                        "advx.report.kinds, or set JobOutput.html)", results.get("command"))
    return paths
