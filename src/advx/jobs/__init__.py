"""The job pipeline every command runs on: typed config -> fingerprint -> batches -> run folder.

* :mod:`advx.jobs.config`       -- :class:`JobConfig` (typed, JSON, the exact argv)
* :mod:`advx.jobs.fingerprint`  -- config hash + model weights sha256 + data sha256 + advx version
* :mod:`advx.jobs.run_folder`   -- :class:`RunFolder`: lock, fingerprint binding, checksummed checkpoints
* :mod:`advx.jobs.runner`       -- :func:`run_job`: batches, seeding, progress, checkpoints, outputs
* :mod:`advx.jobs.distributed`  -- torchrun sharding
* :mod:`advx.jobs.attack`, :mod:`advx.jobs.evaluate`, :mod:`advx.jobs.certify`, :mod:`advx.jobs.transfer`
  -- the image commands as jobs

The map is ``docs/architecture.md``; the output schema ``docs/results-schema.md``.
"""

from advx.jobs.config import SCHEMA_VERSION, JobConfig, capture_argv
from advx.jobs.fingerprint import Fingerprint, fingerprint
from advx.jobs.run_folder import RunFolder, RunFolderError
from advx.jobs.runner import Job, JobOutput, batch_seed, common_results, run_job

__all__ = ["JobConfig", "SCHEMA_VERSION", "capture_argv", "Fingerprint", "fingerprint", "RunFolder",
           "RunFolderError", "Job", "JobOutput", "run_job", "batch_seed", "common_results"]
