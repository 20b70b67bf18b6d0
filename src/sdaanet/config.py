"""Hydra/OmegaConf glue: the config directory, resolvers and `compose_config`."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

CONF_DIR = Path(os.environ.get("SDAANET_CONF", Path(__file__).resolve().parent / "conf"))
# what every printout of a plumbing-only run's numbers says (`plumbing_only: true`, set by
# debug=tiny: a run too short to mean anything; the checkpoint and its records carry the flag)
PLUMBING_ONLY = "plumbing-only run: not a result"


def plain_name(text: str, limit: int = 80, keep: str = "._-") -> str:
    """`text` as a folder name that a shell and Hydra's override grammar take unquoted: every
    character but letters, digits and `keep` becomes `_`; a name over `limit` characters is cut
    and ends with a hash of the whole."""
    name = re.sub(f"[^A-Za-z0-9{re.escape(keep)}]", "_", text)
    if len(name) > limit:
        name = f"{name[: limit - 20]}-{hashlib.sha1(name.encode()).hexdigest()[:10]}"
    return name


def hydra_quoted(value: str) -> str:
    """`value` quoted for Hydra's override grammar (`key='<value>'`), which takes any path so."""
    return "'" + value.replace("'", "\\'") + "'"


def _job_dirname(overrides: str) -> str:
    """A multirun job's folder name from `hydra.job.override_dirname` (`data.fold-0+model.alpha-10`,
    `+` between the overrides, `-` after each key): `plain_name`, `+` kept."""
    return plain_name(overrides, limit=160, keep="._+-")


def _root_dir() -> Path:
    """Where `data/` and `logs/` live: $SDAANET_ROOT, else the source checkout of an editable
    install (the folder holding pyproject.toml), else the current directory (a wheel install)."""
    if os.environ.get("SDAANET_ROOT"):
        return Path(os.environ["SDAANET_ROOT"]).resolve()
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file() and (checkout / "src" / "sdaanet").is_dir():
        return checkout
    return Path.cwd()


ROOT_DIR = _root_dir()


def _output_dir(fallback: str) -> str:
    """The Hydra run dir when Hydra launched us (each multirun job has its own), else `fallback`."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():  # `--cfg job --resolve` runs no job: no output dir yet
        return OmegaConf.select(HydraConfig.get(), "runtime.output_dir", default=None) or fallback
    return fallback


def job_configuration() -> dict[str, Any]:
    """The Hydra job's experiment choice and command-line overrides (empty outside Hydra)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return {"experiment": None, "overrides": []}
    hydra = HydraConfig.get()
    return {
        "experiment": hydra.runtime.choices.get("experiment"),
        "overrides": list(hydra.overrides.task),
    }


def _launcher(key: str, default: Any = None) -> Any:
    """`hydra.launcher.<key>` when Hydra runs us with a launcher that sets it (submitit's
    `nodes`, `gpus_per_node`), else `default`: the Trainer follows the SLURM allocation."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        value = OmegaConf.select(HydraConfig.get(), f"launcher.{key}", default=None)
        if value is not None:
            return value
    return default


def register_resolvers() -> None:
    """Register `${sdaanet.root:}`, `${sdaanet.output_dir:fallback}` and `${sdaanet.pid:}` (the
    process id: two runs started in the same second get their own run directories) once,
    `${sdaanet.launcher:key,default}` (`hydra.launcher.<key>` if set, else `default`) and
    `${sdaanet.job_dirname:overrides}` (a multirun job's folder name, `_job_dirname`)."""
    if not OmegaConf.has_resolver("sdaanet.root"):
        OmegaConf.register_new_resolver("sdaanet.root", lambda: str(ROOT_DIR))
    if not OmegaConf.has_resolver("sdaanet.pid"):
        OmegaConf.register_new_resolver(
            "sdaanet.pid", lambda: str(os.getpid()), use_cache=True
        )  # cached: a submitit job resolves the launcher's sweep dir, not its own
    if not OmegaConf.has_resolver("sdaanet.output_dir"):
        OmegaConf.register_new_resolver("sdaanet.output_dir", _output_dir)
    if not OmegaConf.has_resolver("sdaanet.launcher"):
        OmegaConf.register_new_resolver("sdaanet.launcher", _launcher)
    if not OmegaConf.has_resolver("sdaanet.job_dirname"):
        OmegaConf.register_new_resolver("sdaanet.job_dirname", _job_dirname)


def compose_config(
    overrides: list[str] | None = None, config_name: str = "train", with_hydra: bool = False
) -> DictConfig:
    """Compose `conf/<config_name>.yaml` with command-line style overrides, outside Hydra's main
    (`with_hydra`: keep Hydra's own node, e.g. the sweeper).

    Example: `compose_config(["data=pascal", "shot=5", "model.kshot_strategy=separate"])`.
    `paths.output_dir` is resolved once, so every later access sees the same directory.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name, list(overrides or []), return_hydra_config=with_hydra)
    cfg.paths.output_dir = str(cfg.paths.output_dir)
    return cfg
