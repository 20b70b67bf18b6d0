"""Segment one query image with a trained checkpoint: `sdaanet-predict` and `predict()`.

    sdaanet-predict --ckpt CKPT --support IMG MASK [--support IMG MASK ...] --query IMG \\
        --out OUT_DIR [--device cpu|cuda] [--size N] [--names NAME ...]

With a binary checkpoint it writes `<query stem>_mask.png` (single channel, 0 = background,
255 = foreground) and `<query stem>_overlay.png` (the query with the prediction blended in red),
both at the query's size, into OUT_DIR. In a notebook, load the checkpoint once and call it per
query:

    predictor = load_predictor("last.ckpt", device="cpu")
    mask = predictor.predict([("support.jpg", "support_mask.png")], "query.jpg")  # (H,W) 0/1
    prob = predictor.predict_proba(...)  # same arguments: foreground probability (H,W)

`predict(ckpt, supports, query)` does both steps, as the CLI does, so both give the same mask.
A K-shot checkpoint takes exactly K (image, mask) support pairs.

A multi-class (N-way, K-shot) checkpoint (`MultiClassSDAANet`) takes N*K pairs grouped by class
in class order: class 1's K shots, then class 2's, ... (for 1-shot, one pair per class). Its
prediction is a label map, uint8 (H,W): 0 = background, n = the n-th class; `predict_proba`
gives the (N+1,H,W) class probabilities. The CLI writes `<stem>_labels.png` (that label map,
mode L), `<stem>_overlay.png` (class n blended in `class_colours(N)[n - 1]`) and
`<stem>_legend.png` (each colour's label and name), and prints the legend; `--names` names the
classes (default `class 1` ... `class N`). Error messages name a support by its position
(`support 3 mask ...`: the third pair, i.e. class 2's first shot in a 2-way 2-shot episode).

Every image is warped (aspect not kept) to `size` x `size` (bilinear images, nearest masks), as
the authors' test transform; the logits are resized bilinearly to the query's size before the
argmax. `size` defaults to the checkpoint's `input_size` if it records one, else 473; it must be
a size the network accepts (SD-AANet: >= 65 with (size - 1) % 8 == 0, e.g. 65, 321, 417, 473).

Inputs are file paths, numpy arrays or PIL images. Files are read by `sdaanet.io` as the
datasets' images are (PIL, as stored: EXIF orientation is not applied; a truncated or corrupt
file is an error naming it); arrays are taken as RGB (convert OpenCV's BGR first).

Images (`sdaanet.io.to_rgb`): RGBA drops its alpha channel; grayscale (L, (H,W) or (H,W,1)
arrays) is repeated to RGB; 16-bit images (PIL I;16 / I, uint16 arrays) are scaled to 8 bits
(x * 255 / 65535); float arrays must hold values in [0, 1]; palette and other PIL modes are
converted to RGB.

Masks (a support mask must have its image's size and a foreground that survives the resize):
- single channel (L, palette indices, 16-bit, bool or numeric arrays): a mask holding only 0
  and 255 has 255 = foreground; otherwise any non-zero value is foreground except 255, which
  then means "ignore" (e.g. {0, 1, 255} masks, VOC-style borders). A mask with several class
  ids makes them all foreground: pass `mask == id` for one class.
- RGB: any non-zero channel is foreground; RGBA (and LA): any non-zero colour channel of a pixel
  that is not fully transparent.

Bad inputs raise `sdaanet.errors.PredictInputError` (a ValueError) naming the file or value; an
unusable checkpoint raises `sdaanet.errors.CheckpointError`. The CLI prints `error: <message>`
and exits with status 2 (`sdaanet.cli`).
"""

from __future__ import annotations

import argparse
import colorsys
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import Tensor, nn

from sdaanet.checkpoint import network_from_checkpoint, read_checkpoint
from sdaanet.cli import entry_point
from sdaanet.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from sdaanet.errors import DataError, DataNotFoundError, PredictInputError
from sdaanet.io import IMAGE_MODES, atomic_write, open_image, pixels, to_rgb
from sdaanet.models.inference import Network, inference
from sdaanet.models.network import size_problem
from sdaanet.viz import RED, overlay

DEFAULT_SIZE = 473
IGNORE = 255

ImageLike = str | os.PathLike | np.ndarray | Image.Image
SupportPair = tuple[ImageLike, ImageLike]
Colour = tuple[int, int, int]


MASK_MODES = ("1", "L", "P", "F", "RGB", "RGBA", "LA")  # PIL modes a mask is read in as stored


# ---------------------------------------------------------------------------------- reading
def _describe(src: ImageLike, role: str) -> str:
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
    name = _describe(src, name)
    image = _pixels(src, name, IMAGE_MODES)
    with _as_input_error():
        return to_rgb(image, name)


def load_mask(src: ImageLike, name: str = "mask") -> np.ndarray:
    """A mask (path, array or PIL image) as uint8 (H,W) labels 0 / 1 / 255 (ignore)."""
    name = _describe(src, name)
    m = np.asarray(_pixels(src, name, MASK_MODES))
    if m.ndim not in (2, 3) or (m.ndim == 3 and m.shape[2] not in (1, 2, 3, 4)):
        raise PredictInputError(f"{name} has shape {m.shape}; expected (H,W) or (H,W,C<=4)")
    return mask_labels(m)


# -------------------------------------------------------------------------------- the network
def check_size(size: int, net: nn.Module) -> int:
    """`size` if `net` accepts it (its `size_problem` rule, `sdaanet.models.network`), else
    PredictInputError."""
    if isinstance(size, bool) or not isinstance(size, int | np.integer):
        raise PredictInputError(f"size must be an integer, got {size!r}")
    problem = size_problem(type(net), int(size))
    if problem:
        raise PredictInputError(problem)
    return int(size)


def _device(device: str | torch.device) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise PredictInputError(f"device {device!r} is not a device (use cpu or cuda)") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise PredictInputError(f"device {device!r} requested but CUDA is not available; use cpu")
    if dev.type == "cuda" and (dev.index or 0) >= torch.cuda.device_count():
        raise PredictInputError(
            f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) are visible"
        )
    if dev.type not in ("cpu", "cuda"):
        raise PredictInputError(f"device {device!r} is not supported; use cpu or cuda")
    return dev


def _normalise(rgb: np.ndarray, size: int) -> Tensor:
    """(3,size,size) float tensor: warp-resized (bilinear) on x / 255, ImageNet-normalised."""
    x = cv2.resize(rgb.astype(np.float32) / 255, (size, size), interpolation=cv2.INTER_LINEAR)
    x = (x - np.array(IMAGENET_MEAN, np.float32)) / np.array(IMAGENET_STD, np.float32)
    return torch.from_numpy(x).permute(2, 0, 1)


def _support_tensors(image: ImageLike, mask: ImageLike, k: int, size: int) -> tuple[Tensor, Tensor]:
    """Support `k` (1-based) at `size`: normalised image and labels 0/1/255; the mask must have
    its image's size and a foreground pixel that survives the resize."""
    rgb = load_image(image, f"support {k} image")
    labels = load_mask(mask, f"support {k} mask")
    mask_name = _describe(mask, f"support {k} mask")
    if labels.shape != rgb.shape[:2]:
        (h, w), (mh, mw) = rgb.shape[:2], labels.shape
        raise PredictInputError(
            f"{mask_name} is {mw}x{mh} (WxH) but {_describe(image, f'support {k} image')} is "
            f"{w}x{h}; a mask must have its image's size"
        )
    if not (labels == 1).any():
        raise PredictInputError(
            f"{mask_name} has no foreground pixel (mask rules: 0 = background; 255 in a 0/255 "
            "mask, else any non-zero value but 255 = foreground)"
        )
    small = cv2.resize(labels, (size, size), interpolation=cv2.INTER_NEAREST)
    if not (small == 1).any():
        raise PredictInputError(
            f"{mask_name}: its {int((labels == 1).sum())}-pixel foreground vanishes when the "
            f"mask is resized to {size}x{size}; use a larger --size or a larger foreground"
        )
    return _normalise(rgb, size), torch.from_numpy(small.astype(np.int64))


def _class_major(net: nn.Module, ways: int) -> Network:
    """`net` taking supports as (B,N*K,...) in class-major order: binary networks take them so;
    an N-way one gets them as (B,N,K,...). Flat supports let `MultiScale` resize them."""
    if ways == 1:
        return net

    def grouped(query: Tensor, images: Tensor, masks: Tensor) -> Tensor:
        return net(query, images.unflatten(1, (ways, -1)), masks.unflatten(1, (ways, -1)))

    return grouped


@dataclass(frozen=True)
class Predictor:
    """A loaded checkpoint: `ways` classes (1: binary) of `shot` supports each per query, default
    input `size`; `multiscale` sides run Table V's multi-scale inference
    (`sdaanet.models.inference`); `synthetic`: trained on the built-in synthetic shapes."""

    net: nn.Module = field(repr=False)
    shot: int
    size: int
    device: torch.device
    ckpt: Path
    multiscale: tuple[int, ...] = ()
    ways: int = 1
    synthetic: bool = False

    def _check_supports(self, supports: Sequence[SupportPair]) -> None:
        if (
            isinstance(supports, str)
            or not isinstance(supports, Sequence)
            or not all(isinstance(p, tuple | list) and len(p) == 2 for p in supports)
        ):
            raise PredictInputError("supports must be a list of (image, mask) pairs")
        n = len(supports)
        got = f"got {n} support{'s' if n != 1 else ''}"
        if self.ways == 1 and n != self.shot:
            raise PredictInputError(
                f"checkpoint is {self.shot}-shot, {got}: "
                f"pass exactly {self.shot} (image, mask) pair(s) (--support IMG MASK), "
                f"or use a {n}-shot checkpoint"
            )
        if n != self.ways * self.shot:
            raise PredictInputError(
                f"checkpoint is {self.ways}-way {self.shot}-shot, {got}: pass exactly "
                f"{self.ways * self.shot} (image, mask) pairs (--support IMG MASK), "
                f"{self.shot} per class in class order"
            )

    def logits(
        self, supports: Sequence[SupportPair], query: ImageLike, size: int | None = None
    ) -> Tensor:
        """Scores (N+1,H,W) (binary: N = 1) on the CPU at the query's original size H x W: the
        logits, or with `multiscale` the sum of the scales' softmax outputs."""
        self._check_supports(supports)
        size = check_size(self.size if size is None else size, self.net)
        q = load_image(query, "query image")
        tensors = [_support_tensors(img, m, k, size) for k, (img, m) in enumerate(supports, 1)]
        images = torch.stack([image for image, _ in tensors])
        masks = torch.stack([labels for _, labels in tensors])
        with torch.inference_mode():
            out = inference(_class_major(self.net, self.ways), self.multiscale)(
                _normalise(q, size)[None].to(self.device),
                images[None].to(self.device),
                masks[None].to(self.device),
            )
            out = torch.nn.functional.interpolate(
                out, q.shape[:2], mode="bilinear", align_corners=True
            )
        return out[0].float().cpu()

    def predict(
        self, supports: Sequence[SupportPair], query: ImageLike, size: int | None = None
    ) -> np.ndarray:
        """The prediction at the query's size, uint8 (H,W): the mask in {0, 1} (binary), or
        the label map 0..N (0 = background, n = the n-th class)."""
        return self.logits(supports, query, size).argmax(0).numpy().astype(np.uint8)

    def predict_proba(
        self, supports: Sequence[SupportPair], query: ImageLike, size: int | None = None
    ) -> np.ndarray:
        """At the query's size, float32 in [0, 1]: the foreground probability (H,W) (binary),
        or the probabilities of background and the N classes (N+1,H,W)."""
        scores = self.logits(supports, query, size)
        probs = scores / len(self.multiscale) if self.multiscale else scores.softmax(0)
        return (probs[1] if self.ways == 1 else probs).numpy()


def load_predictor(
    ckpt: str | os.PathLike,
    device: str | torch.device = "cpu",
    multiscale: Sequence[int] | None = None,
) -> Predictor:
    """Build the network a checkpoint records and load its weights (once per notebook)."""
    dev = _device(device)
    path = Path(ckpt)
    checkpoint = read_checkpoint(path, hint="pass --ckpt <file>.ckpt")
    net, info = network_from_checkpoint(path, checkpoint)
    size = int(info["input_size"] or DEFAULT_SIZE)
    sides = tuple(int(s) for s in multiscale or ())
    ways = int(info["network"].get("ways") or 1)
    data = str((info["data"] or {}).get("_target_", ""))  # the name only: nothing imported
    synthetic = data.rsplit(".", 1)[-1] == "SyntheticDataModule"
    return Predictor(net.to(dev), int(info["shot"]), size, dev, path, sides, ways, synthetic)


def predict(
    ckpt: str | os.PathLike,
    supports: Sequence[SupportPair],
    query: ImageLike,
    device: str | torch.device = "cpu",
    size: int | None = None,
    multiscale: Sequence[int] | None = None,
) -> np.ndarray:
    """Segment `query` given K (image, mask) `supports` (N-way: N*K, class-major): uint8 (H,W),
    the mask in {0, 1} or the label map 0..N (`Predictor.predict`)."""
    return load_predictor(ckpt, device, multiscale).predict(supports, query, size)


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


def class_colours(ways: int) -> list[Colour]:
    """The overlay colour of labels 1..`ways`: hues evenly spaced from red."""
    hues = (colorsys.hsv_to_rgb(n / ways, 0.85, 0.95) for n in range(ways))
    return [(round(r * 255), round(g * 255), round(b * 255)) for r, g, b in hues]


def legend(names: Sequence[str]) -> str:
    """`0 = background, 1 = cat (#f22424), ...`: what each label and overlay colour means."""
    pairs = enumerate(zip(names, class_colours(len(names)), strict=True), 1)
    keys = [f"{n} = {name} (#{r:02x}{g:02x}{b:02x})" for n, (name, (r, g, b)) in pairs]
    return ", ".join(["0 = background", *keys])


def legend_image(names: Sequence[str], row: int = 20, pad: int = 4) -> np.ndarray:
    """(H,W,3) uint8: one row per class, its overlay colour's swatch and `n: name`."""
    texts = [f"{n}: {name}" for n, name in enumerate(names, 1)]
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    width = 3 * pad + row + int(max(probe.textlength(t) for t in texts)) + 1
    canvas = Image.new("RGB", (width, pad + len(texts) * row), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for i, (text, colour) in enumerate(zip(texts, class_colours(len(names)), strict=True)):
        y = pad + i * row
        draw.rectangle((pad, y, pad + row - 1, y + row - pad - 1), fill=colour, outline=(0, 0, 0))
        draw.text((2 * pad + row, y + (row - pad) // 2), text, fill=(0, 0, 0), anchor="lm")
    return np.asarray(canvas)


def save_label_outputs(
    query: ImageLike,
    labels: np.ndarray,
    out_dir: str | os.PathLike,
    names: Sequence[str],
    stem: str = "query",
) -> tuple[Path, Path, Path]:
    """Write a multi-class prediction into `out_dir` (created): `<stem>_labels.png` (the label
    map, mode L), `<stem>_overlay.png` (label n blended in `class_colours`' n-th colour) and
    `<stem>_legend.png` (`legend_image(names)`); a query path gives its own stem."""
    rgb, stem = _query_rgb(query, labels, stem)
    if labels.max(initial=0) > len(names):
        raise PredictInputError(f"labels reach {labels.max()} but {len(names)} names are given")
    blended = rgb
    for n, colour in enumerate(class_colours(len(names)), 1):
        blended = overlay(blended, (labels == n).astype(np.uint8), colour)
    out = Path(out_dir)
    paths = out / f"{stem}_labels.png", out / f"{stem}_overlay.png", out / f"{stem}_legend.png"
    _save_png(labels.astype(np.uint8), paths[0])
    _save_png(blended, paths[1])
    _save_png(legend_image(names), paths[2])
    return paths


# ---------------------------------------------------------------------------------------- CLI
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sdaanet-predict",
        description="Segment a query image given K annotated support images per class "
        "(K-shot checkpoint; N-way multi-class checkpoints take N*K).",
    )
    p.add_argument("--ckpt", required=True, type=Path, help="an sdaanet checkpoint (.ckpt)")
    p.add_argument(
        "--support",
        required=True,
        nargs=2,
        action="append",
        metavar=("IMG", "MASK"),
        help="a support image and its mask; repeat K times for a K-shot checkpoint, N*K times "
        "for an N-way one (class 1's K shots, then class 2's, ...)",
    )
    p.add_argument("--query", required=True, type=Path, help="the image to segment")
    p.add_argument("--out", required=True, type=Path, help="output folder (created)")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument(
        "--size", type=int, default=None, help="network input side (default: 473, or the ckpt's)"
    )
    p.add_argument(
        "--multiscale", type=int, nargs="+", default=None, metavar="SIDE",
        help="Table V multi-scale inference over these sides, e.g. --multiscale 321 473",
    )  # fmt: skip
    p.add_argument(
        "--names", nargs="+", default=None, metavar="NAME",
        help="multi-class: the N classes' names in class order (default: class 1 .. class N)",
    )  # fmt: skip
    return p


@entry_point
def main(argv: Sequence[str] | None = None) -> int:
    """`sdaanet-predict`: write the mask (multi-class: label map) and overlay PNGs (and the
    legend); `error: <message>` and 2 on bad input."""
    args = _parser().parse_args(argv)
    supports = [(img, m) for img, m in args.support]
    predictor = load_predictor(args.ckpt, args.device, args.multiscale)
    names = class_names(predictor.ways, args.names)
    result = predictor.predict(supports, args.query, args.size)
    if predictor.synthetic:  # after the inputs are checked: bad input stays one error line
        print(
            f"warning: {args.ckpt} was trained on the synthetic shapes at {predictor.size} px "
            "(--size defaults to it): a plumbing check, not a model of real photos "
            "(docs/predict.md)",
            file=sys.stderr,
        )
    if predictor.ways == 1:
        mask_path, overlay_path = save_outputs(args.query, result, args.out)
        print(f"wrote {mask_path} and {overlay_path}")
        return 0
    labels_path, overlay_path, legend_path = save_label_outputs(args.query, result, args.out, names)
    print(f"wrote {labels_path}, {overlay_path} and {legend_path}")
    print(f"legend: {legend(names)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
