"""`sdaanet-predict`'s files: reading the user's images and masks, writing the prediction PNGs.

Inputs are file paths, numpy arrays or PIL images. Files are read by `sdaanet.io` as the
datasets' images are (PIL, as stored: EXIF orientation is not applied; a truncated or corrupt
file is an error naming it); arrays are taken as RGB (convert OpenCV's BGR first).

Images (`sdaanet.io.to_rgb`): RGBA drops its alpha channel; grayscale (L, (H,W) or (H,W,1)
arrays) is repeated to RGB; 16-bit images (PIL I;16 / I, uint16 arrays) are scaled to 8 bits
(x * 255 / 65535); float arrays must hold values in [0, 1]; palette and other PIL modes are
converted to RGB.

Masks (a support mask must have its image's size and a foreground pixel):
- single channel (L, palette indices, 16-bit, bool or numeric arrays): a mask holding only 0
  and 255 has 255 = foreground; otherwise any non-zero value is foreground except 255, which
  then means "ignore" (e.g. {0, 1, 255} masks, VOC-style borders). A mask with several class
  ids makes them all foreground: pass `mask == id` for one class.
- RGB: any non-zero channel is foreground; RGBA (and LA): any non-zero colour channel of a pixel
  that is not fully transparent.

Bad inputs raise `sdaanet.errors.PredictInputError` (a ValueError) naming the file or value.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

from sdaanet.errors import DataError, DataNotFoundError, PredictInputError
from sdaanet.io import IMAGE_MODES, atomic_write, open_image, pixels, read_image, to_rgb
from sdaanet.viz import RED, label_overlay, legend_image, overlay

IGNORE = 255
MASK_MODES = ("1", "L", "P", "F", "RGB", "RGBA", "LA")  # PIL modes a mask is read in as stored

ImageLike = str | os.PathLike | np.ndarray | Image.Image


# ---------------------------------------------------------------------------------- reading
def describe(src: ImageLike, role: str) -> str:
    """`role path` for files, `role (numpy array)` otherwise: the name used in error messages."""
    if isinstance(src, str | os.PathLike):
        return f"{role} {os.fspath(src)}"
    return f"{role} ({type(src).__module__.split('.')[0]} {type(src).__name__})"


@contextmanager
def _as_input_error() -> Iterator[None]:
    """`sdaanet.io`'s reading errors (files and conversions) as PredictInputError."""
    try:
        yield
    except (DataError, DataNotFoundError) as exc:
        raise PredictInputError(str(exc)) from exc


def _pixels(src: ImageLike, name: str, keep_modes: tuple[str, ...]) -> np.ndarray | Image.Image:
    """An array as it is; a PIL image or an image file (read by `sdaanet.io`) as its pixels."""
    if isinstance(src, np.ndarray):
        return src
    if isinstance(src, Image.Image):
        return pixels(src, keep_modes)
    if not isinstance(src, str | os.PathLike):
        raise PredictInputError(
            f"{name}: expected a file path, numpy array or PIL image, got {type(src).__name__}"
        )
    with _as_input_error():
        return pixels(open_image(src, name), keep_modes)


def mask_labels(mask: np.ndarray) -> np.ndarray:
    """A mask array as uint8 (H,W) with 0 = background, 1 = foreground, 255 = ignore."""
    a = np.asarray(mask)
    if a.ndim == 3 and a.shape[2] in (2, 4):  # LA / RGBA: colour channels of visible pixels
        return (a[..., :-1].any(axis=2) & (a[..., -1] > 0)).astype(np.uint8)
    if a.ndim == 3:
        return a.any(axis=2).astype(np.uint8)
    fg = a != 0
    if not (fg & (a != IGNORE)).any():  # only 0 and 255: 255 is the foreground
        return fg.astype(np.uint8)
    return np.where(a == IGNORE, IGNORE, fg).astype(np.uint8)


def load_image(src: ImageLike, name: str = "image") -> np.ndarray:
    """An image (path, array or PIL image) as (H,W,3) uint8 RGB, by `sdaanet.io`'s rules."""
    name = describe(src, name)
    with _as_input_error():
        if isinstance(src, str | os.PathLike):
            return read_image(src, name)  # as the datasets read theirs
        return to_rgb(_pixels(src, name, IMAGE_MODES), name)


def load_mask(src: ImageLike, name: str = "mask") -> np.ndarray:
    """A mask (path, array or PIL image) as uint8 (H,W) labels 0 / 1 / 255 (ignore)."""
    name = describe(src, name)
    m = np.asarray(_pixels(src, name, MASK_MODES))
    if m.ndim not in (2, 3) or (m.ndim == 3 and m.shape[2] not in (1, 2, 3, 4)):
        raise PredictInputError(f"{name} has shape {m.shape}; expected (H,W) or (H,W,C<=4)")
    return mask_labels(m)


def load_support(image: ImageLike, mask: ImageLike, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Support `k` (1-based): its RGB image and its labels 0/1/255, which must have the image's
    size and a foreground pixel."""
    rgb = load_image(image, f"support {k} image")
    labels = load_mask(mask, f"support {k} mask")
    mask_name = describe(mask, f"support {k} mask")
    if labels.shape != rgb.shape[:2]:
        (h, w), (mh, mw) = rgb.shape[:2], labels.shape
        raise PredictInputError(
            f"{mask_name} is {mw}x{mh} (WxH) but {describe(image, f'support {k} image')} is "
            f"{w}x{h}; a mask must have its image's size"
        )
    if not (labels == 1).any():
        raise PredictInputError(
            f"{mask_name} has no foreground pixel (mask rules: 0 = background; 255 in a 0/255 "
            "mask, else any non-zero value but 255 = foreground)"
        )
    return rgb, labels


# ------------------------------------------------------------------------------------ outputs
def _save_png(array: np.ndarray, path: Path) -> None:
    image = Image.fromarray(array)
    try:
        atomic_write(path, lambda f: image.save(f, format="PNG"))
    except OSError as exc:
        raise PredictInputError(f"cannot write {path}: {exc}") from exc


def _query_rgb(query: ImageLike, result: np.ndarray, stem: str) -> tuple[np.ndarray, str]:
    """The query's RGB pixels, which must have `result`'s size, and its stem (a path's own)."""
    rgb = load_image(query, "query image")
    if rgb.shape[:2] != result.shape:
        raise PredictInputError(f"mask is {result.shape} but the query image is {rgb.shape[:2]}")
    return rgb, Path(query).stem if isinstance(query, str | os.PathLike) else stem


def save_outputs(
    query: ImageLike, mask: np.ndarray, out_dir: str | os.PathLike, stem: str = "query"
) -> tuple[Path, Path]:
    """Write `<stem>_mask.png` (0/255) and `<stem>_overlay.png` into `out_dir` (created);
    a query path gives its own stem. Returns both paths."""
    rgb, stem = _query_rgb(query, mask, stem)
    out = Path(out_dir)
    paths = out / f"{stem}_mask.png", out / f"{stem}_overlay.png"
    _save_png((mask == 1).astype(np.uint8) * 255, paths[0])
    _save_png(overlay(rgb, mask, RED), paths[1])
    return paths


def class_names(ways: int, names: Sequence[str] | None = None) -> list[str]:
    """The names of labels 1..`ways`: `names` (exactly `ways` of them), else `class 1` ..."""
    if names is None:
        return [f"class {n}" for n in range(1, ways + 1)]
    if ways == 1:
        raise PredictInputError("--names is for multi-class checkpoints; this one is binary")
    if len(names) != ways:
        raise PredictInputError(
            f"checkpoint is {ways}-way, got {len(names)} name{'s' if len(names) != 1 else ''}: "
            f"pass one per class (--names {' '.join(f'NAME{n}' for n in range(1, ways + 1))})"
        )
    return list(names)


def save_label_outputs(
    query: ImageLike,
    labels: np.ndarray,
    out_dir: str | os.PathLike,
    names: Sequence[str],
    stem: str = "query",
) -> tuple[Path, Path, Path]:
    """Write a multi-class prediction into `out_dir` (created): `<stem>_labels.png` (the label
    map, mode L), `<stem>_overlay.png` (label n blended in `viz.class_colours`' n-th colour) and
    `<stem>_legend.png` (`viz.legend_image(names)`); a query path gives its own stem."""
    rgb, stem = _query_rgb(query, labels, stem)
    if labels.max(initial=0) > len(names):
        raise PredictInputError(f"labels reach {labels.max()} but {len(names)} names are given")
    out = Path(out_dir)
    paths = out / f"{stem}_labels.png", out / f"{stem}_overlay.png", out / f"{stem}_legend.png"
    _save_png(labels.astype(np.uint8), paths[0])
    _save_png(label_overlay(rgb, labels, len(names)), paths[1])
    _save_png(legend_image(names), paths[2])
    return paths
