"""File IO with one set of rules: atomic writes, and reading images and labels.

Writes go to a temporary file beside the target (``.<name>.<pid>.<random>.tmp``, so concurrent
writers of one path never share it), are fsynced and renamed onto the target: a killed process
never leaves a truncated file under the final name.

Images and labels are decoded with PIL as stored (EXIF orientation is not applied, so an image
and its label always agree). Images become uint8 (H,W,3) RGB: RGBA / LA drop the alpha channel,
grayscale is repeated to RGB, 16-bit data is scaled to 8 bits (x * 255 / 65535, rounded), float
data must lie in [0, 1], palette and other modes are converted to RGB. Labels are single-channel
class-id maps, uint8 (H,W): palette PNGs give their indices, 16-bit ones must hold 0-255. A file
that is missing raises `DataNotFoundError`; one that is corrupt or truncated (including a JPEG
without its end-of-image marker, which decoders would fill in with grey) raises `DataError`.
Every message names the file.

Torch files are read by `load_torch`: tensors and plain containers only, unless the caller opts
in to full unpickling (which can run arbitrary code); errors are `CheckpointError`.
"""

from __future__ import annotations

import io
import os
import pickle
import re
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, BinaryIO

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from sdaanet.errors import CheckpointError, DataError, DataNotFoundError, one_line

IMAGE_MODES = ("RGB", "L", "F")  # PIL modes taken as they are; others are converted to RGB


# ------------------------------------------------------------------------------------ writing
@contextmanager
def atomic_open(
    path: str | os.PathLike, mode: str = "wb", *, fsync: bool = True, **kwargs: Any
) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` (parents created) for writing (``"w"``/``"wb"``,
    ``kwargs`` go to ``open``); when the block ends it is fsynced (unless ``fsync=False``) and
    renamed onto ``path``; if the block raises it is deleted and ``path`` is left untouched."""
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, mode.replace("w", "x"), **kwargs) as f:
            yield f
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(
    path: str | os.PathLike,
    data: str | bytes | Callable[[BinaryIO], object],
    *,
    fsync: bool = True,
) -> Path:
    """Write ``data`` to ``path`` atomically (see `atomic_open`): text (UTF-8), bytes, or a
    callback that writes into the open binary file (``lambda f: torch.save(obj, f)``,
    ``lambda f: image.save(f, format="PNG")``). Returns ``path``."""
    text = isinstance(data, str)
    options: dict[str, Any] = {"encoding": "utf-8"} if text else {}
    with atomic_open(path, "w" if text else "wb", fsync=fsync, **options) as f:
        if isinstance(data, str | bytes):
            f.write(data)
        else:
            data(f)
    return Path(path)


def unused_path(path: str | os.PathLike) -> Path:
    """`path`, or the first free `stem-2.suffix`, `stem-3.suffix`, ... beside it."""
    path = Path(path)
    candidate, n = path, 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate


# ------------------------------------------------------------------------------------ reading
def open_image(path: str | os.PathLike, name: str | None = None) -> Image.Image:
    """The fully decoded PIL image of the file ``path``; ``name`` (default ``image <path>``) is
    what messages call it. DataNotFoundError if it is missing, DataError if it is unreadable."""
    name = name or f"image {os.fspath(path)}"
    if not Path(path).is_file():
        raise DataNotFoundError(f"{name} not found")
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {name}: {one_line(exc)}") from exc
    if data[:2] == b"\xff\xd8" and b"\xff\xd9" not in data[-64:]:
        raise DataError(
            f"cannot read {name}: truncated JPEG (no end-of-image marker); re-encode or replace it"
        )
    try:
        image = Image.open(io.BytesIO(data))  # holds no file handle: nothing to close
        image.load()
        return image
    except UnidentifiedImageError as exc:
        raise DataError(f"cannot read {name}: corrupt or not an image file") from exc
    except (OSError, SyntaxError, ValueError) as exc:  # truncated, bad chunk, decompression bomb
        raise DataError(f"cannot read {name}: {one_line(exc)}") from exc


def pixels(im: Image.Image, keep_modes: tuple[str, ...] = IMAGE_MODES) -> np.ndarray:
    """The pixels of ``im``: 16/32-bit integer modes as uint16, ``keep_modes`` as they are, any
    other mode converted to RGB first."""
    if im.mode.startswith("I"):  # I;16, I;16B, I: 16-bit data (I as decoded by older Pillows)
        return np.clip(np.asarray(im), 0, 65535).astype(np.uint16)
    if im.mode not in keep_modes:
        im = im.convert("RGB")
    return np.asarray(im)


def to_rgb(image: np.ndarray | Image.Image, name: str = "image") -> np.ndarray:
    """An image (array or PIL image) as uint8 (H,W,3) RGB by the rules of the module;
    DataError naming ``name`` for a shape or value range it cannot convert."""
    a = pixels(image) if isinstance(image, Image.Image) else np.asarray(image)
    if a.ndim == 3 and a.shape[2] in (1, 3, 4):
        a = a[..., :3] if a.shape[2] != 1 else a[..., 0]
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] != 3:
        raise DataError(f"{name} has shape {a.shape}; expected (H,W), (H,W,1), (H,W,3) or (H,W,4)")
    if not a.size:
        raise DataError(f"{name} is empty (shape {a.shape})")
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a)
    if a.dtype == bool:
        return a.astype(np.uint8) * 255
    if a.dtype == np.uint16:
        return ((a.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    if np.issubdtype(a.dtype, np.floating) and 0 <= a.min() and a.max() <= 1:
        return np.round(a * 255).astype(np.uint8)
    if np.issubdtype(a.dtype, np.integer) and 0 <= a.min() and a.max() <= 255:
        return a.astype(np.uint8)
    raise DataError(
        f"{name}: {a.dtype} pixels must be uint8, uint16, 0..255 integers or floats in [0, 1]"
    )


def read_image(path: str | os.PathLike, name: str | None = None) -> np.ndarray:
    """The image file ``path`` as uint8 (H,W,3) RGB; ``name`` (default ``image <path>``) is
    what messages call it."""
    name = name or f"image {os.fspath(path)}"
    return to_rgb(open_image(path, name), name)


def read_label(path: str | os.PathLike, name: str | None = None) -> np.ndarray:
    """The class-id map file ``path`` as uint8 (H,W); palette PNGs give their indices, not their
    colours. ``name`` (default ``label <path>``) is what messages call it."""
    name = name or f"label {os.fspath(path)}"
    label = np.array(open_image(path, name))
    if label.ndim != 2:
        raise DataError(f"{name} must be a single-channel class-id map, got shape {label.shape}")
    if label.dtype != np.uint8:
        if label.size and (label.min() < 0 or label.max() > 255):
            raise DataError(f"{name} holds values outside 0-255 (dtype {label.dtype})")
        label = label.astype(np.uint8)
    return label


def pickled_objects(exc: BaseException) -> str | None:
    """What a ``weights_only`` load refused: ``"objects (argparse.Namespace)"``, ``"objects"``
    if it does not say which, or None when the file is no pickle of objects at all."""
    text = str(exc)
    if not isinstance(exc, pickle.UnpicklingError) or not (
        "unsupported global" in text.lower() or "can still be loaded" in text.lower()
    ):
        return None
    match = re.search(r"GLOBAL (\S+)", text)
    return f"objects ({match.group(1)})" if match else "objects"


def _load_failure(exc: BaseException) -> str:
    """Why `torch.load` failed in a few words (`Unsupported operand 103`, `KeyError: 101`)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if lines and lines[0].lower().startswith("weights only load failed"):
        hits = [line for line in lines if line.lower().startswith("unsupported")]
        return hits[0] if hits else type(exc).__name__
    return f"{type(exc).__name__}: {lines[0].split('. ')[0]}" if lines else type(exc).__name__


def load_torch(
    path: str | os.PathLike,
    name: str | None = None,
    *,
    trust_pickle: bool = False,
    pickle_hint: str = "re-save its state_dict with plain tensors",
) -> Any:
    """``torch.load`` of the file ``path`` on CPU. Only tensors and plain containers are read
    (``weights_only=True``) unless ``trust_pickle``: full unpickling can run arbitrary code, so
    only do it for files you trust. ``name`` (default ``checkpoint <path>``) is what messages
    call the file; ``pickle_hint`` says what to do with a file that holds pickled objects.
    Raises `CheckpointError` if it is missing, not a torch file (or truncated), or needs full
    unpickling without ``trust_pickle``."""
    name = name or f"checkpoint {os.fspath(path)}"
    if not Path(path).is_file():
        raise CheckpointError(f"{name} not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except Exception as exc:
        if not trust_pickle and (what := pickled_objects(exc)) is not None:
            raise CheckpointError(
                f"{name} holds pickled Python {what}, which are not loaded because "
                f"unpickling can run arbitrary code; {pickle_hint}"
            ) from None
        raise CheckpointError(
            f"{name} is not a torch checkpoint, or is truncated ({_load_failure(exc)})"
        ) from None
