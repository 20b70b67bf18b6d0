"""Segment one query image with a trained checkpoint: `sdaanet-predict` and `predict()`.

    sdaanet-predict --ckpt CKPT --support IMG MASK [--support IMG MASK ...] --query IMG \\
        --out OUT_DIR [--device cpu|cuda|auto] [--size N] [--names NAME ...]

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
mode L), `<stem>_overlay.png` (class n blended in `viz.class_colours(N)[n - 1]`) and
`<stem>_legend.png` (each colour's label and name), and prints the legend; `--names` names the
classes (default `class 1` ... `class N`). Error messages name a support by its position
(`support 3 mask ...`: the third pair, i.e. class 2's first shot in a 2-way 2-shot episode).

Every image goes through the evaluation's `val` transform (`sdaanet.data.transforms`): warped
(aspect not kept) to `size` x `size` (bilinear images, nearest masks) and ImageNet-normalised, as
the authors' test transform; the logits are resized bilinearly to the query's size before the
argmax. `size` defaults to the checkpoint's `input_size` if it records one, else 473; it must be
a size the network accepts (SD-AANet: >= 65 with (size - 1) % 8 == 0, e.g. 65, 321, 417, 473).

Inputs are file paths, numpy arrays or PIL images, read and converted by `sdaanet.predict_io`
(its docstring has the image and mask rules); the PNGs are written there too.

Bad inputs raise `sdaanet.errors.PredictInputError` (a ValueError) naming the file or value; an
unusable checkpoint raises `sdaanet.errors.CheckpointError`. The CLI prints `error: <message>`
and exits with status 2 (`sdaanet.cli`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from sdaanet.checkpoint import network_from_checkpoint, read_checkpoint
from sdaanet.cli import entry_point
from sdaanet.data.registry import dataset_of
from sdaanet.data.transforms import EpisodeTransform
from sdaanet.errors import ConfigError, PredictInputError
from sdaanet.models.inference import Network, inference
from sdaanet.models.network import size_problem
from sdaanet.predict_io import (
    ImageLike,
    class_names,
    describe,
    load_image,
    load_support,
    save_label_outputs,
    save_outputs,
)
from sdaanet.runtime import torch_device
from sdaanet.viz import legend

DEFAULT_SIZE = 473

SupportPair = tuple[ImageLike, ImageLike]


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
    """`runtime.torch_device`'s device, its error as PredictInputError."""
    try:
        return torch_device(device)
    except ConfigError as exc:
        raise PredictInputError(str(exc)) from None


def _support_tensors(
    image: ImageLike, mask: ImageLike, k: int, transform: EpisodeTransform
) -> tuple[Tensor, Tensor]:
    """Support `k` (1-based) through the val `transform`: image and labels 0/1/255, whose
    foreground must survive the resize."""
    rgb, labels = load_support(image, mask, k)
    x, small = transform(rgb, labels)
    if not (small == 1).any():
        size = transform.size[0]
        raise PredictInputError(
            f"{describe(mask, f'support {k} mask')}: its {int((labels == 1).sum())}-pixel "
            f"foreground vanishes when the mask is resized to {size}x{size}; use a larger --size "
            "or a larger foreground"
        )
    return torch.from_numpy(x), torch.from_numpy(small)


def _query_tensor(rgb: np.ndarray, transform: EpisodeTransform) -> Tensor:
    """The query image through the val `transform` (its label is not needed: zeros)."""
    return torch.from_numpy(transform(rgb, np.zeros(rgb.shape[:2], np.uint8))[0])


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
        transform = EpisodeTransform("val", size)  # the evaluation's: warp, ImageNet-normalise
        q = load_image(query, "query image")
        pairs = enumerate(supports, 1)
        tensors = [_support_tensors(img, m, k, transform) for k, (img, m) in pairs]
        images = torch.stack([image for image, _ in tensors])
        masks = torch.stack([labels for _, labels in tensors])
        with torch.inference_mode():
            out = inference(_class_major(self.net, self.ways), self.multiscale)(
                _query_tensor(q, transform)[None].to(self.device),
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
    dataset = dataset_of((info["data"] or {}).get("_target_"))  # nothing imported
    synthetic = dataset is not None and dataset.name == "synthetic"
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
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or auto")
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
