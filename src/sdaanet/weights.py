"""Download the ImageNet backbone checkpoints into a local cache.

``sdaanet-weights NAME [--cache DIR]`` fetches the standard torchvision file for a backbone
(the authors' legacy ResNet URLs, code map: backbone) into ``~/.cache/sdaanet/weights`` (or
``$SDAANET_WEIGHTS_CACHE``, or ``--cache``) and prints the ``backbone.weights=<path>`` override.
PFENet's deep-stem ``resnet*_v2.pth`` have no public direct URL: the command says where to get
them. Downloads go to a temporary file in the cache that is renamed only once it is complete,
loads with ``torch.load(weights_only=True)`` and matches the SHA-256 prefix in its name.
D-numbers (D1-D22) and "code map" parts cite docs/paper-vs-code.md.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import torch

from sdaanet.cli import entry_point
from sdaanet.errors import WeightsError
from sdaanet.io import atomic_open

ENV_CACHE = "SDAANET_WEIGHTS_CACHE"
TIMEOUT_S = 30.0
_BASE = "https://download.pytorch.org/models/"

URLS: dict[str, str] = {
    "resnet18": _BASE + "resnet18-f37072fd.pth",
    "resnet34": _BASE + "resnet34-b627a593.pth",
    "resnet50": _BASE + "resnet50-19c8e357.pth",  # the authors' (legacy torchvision) URL
    "resnet101": _BASE + "resnet101-5d3b4d8f.pth",  # the authors' (legacy torchvision) URL
    "vgg16_bn": _BASE + "vgg16_bn-6c64b313.pth",
}
# deep-stem backbones: PSPNet "v2" ImageNet weights, distributed by PFENet via Google Drive
MANUAL: dict[str, str] = {
    "resnet50_deep": "resnet50_v2.pth",
    "resnet101_deep": "resnet101_v2.pth",
}
NAMES = tuple(URLS) + tuple(MANUAL)
_HASH = re.compile(r"-([a-f0-9]{6,})\.")


def cache_dir(cache: str | Path | None = None) -> Path:
    """``cache``, else ``$SDAANET_WEIGHTS_CACHE``, else ``~/.cache/sdaanet/weights``."""
    if cache is not None:
        return Path(cache).expanduser()
    env = os.environ.get(ENV_CACHE)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "sdaanet" / "weights"


def _check_name(name: str) -> None:
    if name not in NAMES:
        raise WeightsError(f"unknown backbone {name!r}; expected one of {', '.join(NAMES)}")


def _manual_hint(name: str) -> str:
    return (
        f"{MANUAL[name]} (PSPNet ImageNet weights for {name}) has no public direct URL: download "
        "it from the Google Drive link in PFENet's README (github.com/dvlab-research/PFENet, "
        f"'initmodel' folder), then pass backbone={name} backbone.weights=<path/to/{MANUAL[name]}>"
    )


def weights_path(name: str, cache: str | Path | None = None) -> Path:
    """Where ``name``'s checkpoint lives (or will live) in the cache."""
    _check_name(name)
    file = MANUAL.get(name) or URLS[name].rsplit("/", 1)[1]
    return cache_dir(cache) / file


def expected_hash(name: str) -> str | None:
    """torchvision's convention: the hex chars after the last dash start the file's SHA-256."""
    match = _HASH.search(URLS[name].rsplit("/", 1)[1]) if name in URLS else None
    return match.group(1) if match else None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _verify(name: str, path: Path, url: str) -> None:
    prefix = expected_hash(name)
    if prefix is not None:
        sha256 = _sha256(path)
        if not sha256.startswith(prefix):
            raise WeightsError(
                f"downloaded {url} has SHA-256 {sha256[:16]}..., expected it to start with "
                f"{prefix}: the file is corrupt or was replaced; it was deleted"
            )
    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise WeightsError(f"downloaded {url} is not a loadable checkpoint ({first})") from exc


def download(name: str, cache: str | Path | None = None) -> Path:
    """Return the cached checkpoint of ``name``, downloading it first if needed.

    Raises WeightsError (nothing left behind in the cache) when offline, on an HTTP error, on a
    hash mismatch, or for the deep-stem backbones, whose files must be fetched by hand.
    """
    path = weights_path(name, cache)
    if path.is_file():
        return path
    if name in MANUAL:
        raise WeightsError(_manual_hint(name) + f" (or place it at {path})")
    url = URLS[name]
    try:
        with atomic_open(path) as f:  # renamed onto `path` only once complete and verified
            try:
                with urllib.request.urlopen(url, timeout=TIMEOUT_S) as r:
                    shutil.copyfileobj(r, f, 1 << 20)
            except (urllib.error.URLError, OSError, ValueError) as exc:
                plain = isinstance(exc, urllib.error.HTTPError) or not hasattr(exc, "reason")
                reason = exc if plain else exc.reason  # "HTTP Error 404: Not Found" / DNS failure
                raise WeightsError(
                    f"cannot download {url} ({reason}); download it on a machine with internet "
                    f"access and pass backbone.weights=<file> instead"
                ) from exc
            f.flush()
            _verify(name, Path(f.name), url)
    except OSError as exc:  # the cache folder cannot be written
        raise WeightsError(f"cannot write {path}: {exc}") from exc
    return path


@entry_point
def main(argv: Sequence[str] | None = None) -> int:
    """``sdaanet-weights NAME [--cache DIR]``: print the cached path and the override to use."""
    parser = argparse.ArgumentParser(
        prog="sdaanet-weights",
        description="Download a backbone's ImageNet checkpoint into the local cache.",
    )
    parser.add_argument("name", choices=NAMES, help="backbone name (conf/backbone/*.yaml)")
    parser.add_argument(
        "--cache", type=Path, default=None, help=f"cache folder (default ${ENV_CACHE} or ~/.cache)"
    )
    args = parser.parse_args(argv)
    cached = weights_path(args.name, args.cache).is_file()
    path = download(args.name, args.cache)
    state = "already cached" if cached else "downloaded"
    print(f"{state}: {path}; use backbone={args.name} backbone.weights={path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
