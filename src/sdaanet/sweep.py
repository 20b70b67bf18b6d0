"""Multiruns that survive a failed job (docs/configuration.md, "Multirun sweeps").

In a multirun (`-m`) a job that fails writes `failed.json` into its folder (`failure_record`:
the one-line reason, the error's type, the fold, the job's overrides, when), prints its
`error:` line and lets the sweep go on: Hydra's basic sweeper runs every other job, and a
sweeper that counts failures (hydra-optuna-sweeper's `max_failure_rate`) sees a failed trial.
The command then ends with `sweep: K of N jobs failed: <job dirs>` and exit status K (at most
100). A single run keeps `sdaanet.cli.entry_point`'s one line and exit status 2.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from sdaanet.cli import entry_point
from sdaanet.errors import SdaanetError, one_line
from sdaanet.io import atomic_write

log = logging.getLogger(__name__)

FAILURE_FILE = "failed.json"
FAILURE_FORMAT = 1
MAX_STATUS = 100  # the exit status of a sweep: its number of failed jobs, at most this
MULTIRUN_FLAGS = ("-m", "--multirun")
_started: dict[str, Any] = {}  # this process's multirun: its sweep dir and start time


class JobFailedError(Exception):
    """A multirun job failed (its `failed.json` says why). An ordinary exception: Hydra marks
    the job FAILED and a sweeper that counts failures counts it."""


class SweepStart(Callback):
    """Hydra callback (conf/hydra/default.yaml): remembers where and when the multirun started,
    for `finish_sweep`."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _started.update(dir=Path(str(config.hydra.sweep.dir)), time=time.time())


def is_multirun() -> bool:
    """Whether Hydra runs this job as part of a multirun."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def failure_record(exc: BaseException, cfg: DictConfig, output_dir: Path) -> dict[str, Any]:
    """The failure record of a job (`failed.json`), in the shape of an evaluation record's
    `configuration` and time stamp so that `sdaanet-report` places it in its cell."""
    from sdaanet.config import job_configuration

    return {
        "format": FAILURE_FORMAT,
        "failed_at": datetime.now(timezone.utc).isoformat(),
        "reason": one_line(exc),
        "error": type(exc).__name__,
        "fold": OmegaConf.select(cfg, "data.fold", default=None),
        "run_dir": str(output_dir),
        "configuration": job_configuration(),
    }


def sweeper_target() -> str:
    """The `_target_` of the running Hydra app's sweeper ("" outside Hydra)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return ""
    return str(OmegaConf.select(HydraConfig.get(), "sweeper._target_", default="") or "")


def task(func: Callable[[DictConfig], Any]) -> Callable[[DictConfig], Any]:
    """Wrap a Hydra task function. A single run: `entry_point`. A multirun job: any exception
    is written to the job's `failed.json` and printed as one `error:` line; then Hydra's basic
    sweeper gets None and runs on, any other sweeper gets `JobFailedError` (a failed job)."""
    single = entry_point(func)

    @functools.wraps(func)
    def wrapper(cfg: DictConfig) -> Any:
        if not is_multirun():
            return single(cfg)
        from hydra.core.hydra_config import HydraConfig

        output_dir = Path(HydraConfig.get().runtime.output_dir)
        (output_dir / FAILURE_FILE).unlink(missing_ok=True)  # a rerun starts without it
        try:
            return func(cfg)
        except Exception as exc:
            if not isinstance(exc, SdaanetError):  # a bug: its traceback goes to the job's log
                log.exception("job %s failed", output_dir)
            record = failure_record(exc, cfg, output_dir)
            atomic_write(output_dir / FAILURE_FILE, json.dumps(record, indent=2) + "\n")
            print(f"error: {record['reason']}", file=sys.stderr, flush=True)
            if sweeper_target().endswith(".BasicSweeper"):
                return None
            raise JobFailedError(f"{output_dir}: {record['reason']}") from None

    return wrapper


def _jobs() -> tuple[list[Path], list[Path]]:
    """The job folders this process's multirun ran (written since it started), and those of them
    that hold a failure record."""
    if not _started:
        return [], []
    since = _started["time"] - 1  # file times have a coarser clock on some file systems
    marks = _started["dir"].rglob(".hydra/overrides.yaml")
    jobs = sorted(m.parent.parent for m in marks if m.stat().st_mtime >= since)
    return jobs, [job for job in jobs if (job / FAILURE_FILE).is_file()]


def finish_sweep() -> int:
    """After a multirun: print `sweep: K of N jobs failed: <dirs>` where jobs failed; returns K
    capped at `MAX_STATUS` (0 when none failed or no multirun ran)."""
    jobs, failed = _jobs()
    if failed:
        print(
            f"sweep: {len(failed)} of {len(jobs)} jobs failed: {', '.join(map(str, failed))} "
            f"(each holds {FAILURE_FILE})",
            file=sys.stderr,
            flush=True,
        )
    return min(len(failed), MAX_STATUS)


def run_app(hydra_main: Callable[[], Any], argv: Sequence[str]) -> None:
    """Run a `@hydra.main` app; a multirun ends with `finish_sweep`'s line and exit status, also
    when its sweeper stopped on failed jobs (optuna: `max_failure_rate`, or no trial left)."""
    if not any(arg in MULTIRUN_FLAGS for arg in argv):
        hydra_main()
        return
    previous = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"  # the sweeper's error reaches us, not Hydra's traceback
    try:
        hydra_main()
    except Exception:
        if not _jobs()[1]:
            raise  # not a failed job's doing: a bug, with its traceback
    finally:
        if previous is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = previous
    if status := finish_sweep():
        raise SystemExit(status)
