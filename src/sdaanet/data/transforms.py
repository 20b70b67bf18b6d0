"""Pixel recipes: albumentations pipelines that turn (image, label) into network-ready arrays.

``EpisodeTransform(image, label, seed)`` returns ``image`` float32 (3,H,W) normalised with the
ImageNet mean/std on 0-255 RGB and ``label`` int64 (H,W). All randomness comes from ``seed``:
the same seed gives bitwise the same output, in any process.

Recipes (docs/paper-vs-code.md, code map: transforms; D15, D16):
- ``train`` (the authors' code): warp Resize to ``size`` (bilinear image, nearest label, aspect not
  kept) -> Rotate ±10° p=0.5 (image border = ImageNet mean, label border 255) -> GaussianBlur 5x5
  p=0.5 -> HorizontalFlip p=0.5 -> Normalize.
- ``val`` (``resized_val: True``): warp Resize to ``size`` -> Normalize.
- ``train_paper`` (the paper's Sec. IV-B, PFENet's pipeline without the blur): RandomScale
  0.9-1.1 -> Rotate ±10° p=0.5 -> HorizontalFlip p=0.5 -> pad (centred) to at least ``size`` with
  the mean / 255 -> random ``size`` crop, re-drawn up to 30 times until it keeps >= 85% of the
  foreground (PFENet's ``Crop``); if none does, the padded image is warped to ``size`` instead.
- ``val`` (the authors' ``resized_val: True``): warp Resize to ``size`` -> Normalize.
- ``val_pad`` (the authors' ``resized_val: False``, ``test_Resize``): an image whose longer side
  exceeds ``size`` is scaled (aspect kept) so that side equals ``size``, then both sides are floored
  to multiples of 8; smaller images keep their size. It is pasted top-left into a size x size
  canvas of raw 0 (image) / 255 (label), then normalised.
- ``val_paper`` (the paper's evaluation): scaled, aspect kept, so that the longer side equals
  ``size`` (up or down), pasted top-left into a size x size canvas of raw 0 ("pad zero") / 255.
- ``val_floor8`` (PFENet's and BAM's test, ``docs/protocols.md``): scaled, aspect kept, so that
  the longer side equals ``size`` (up or down), both sides floored to multiples of 8, pasted
  top-left into a size x size canvas of raw 0 / 255.

Evaluation scores against the label at the original size come from the episode's
``raw_query_mask`` (``return_raw_label``), not from the transformed label.

The pipeline runs on float32 images scaled to [0,1] (albumentations clips float images to [0,1],
so 0-255 floats would be destroyed); normalising ``x/255`` with mean/std equals the authors'
normalisation of 0-255 values with mean*255 and std*255, and no uint8 rounding happens between
steps, as in the authors' float pipeline. The authors' blur is ``cv2.GaussianBlur(img, (5,5), 0)``,
whose 5-tap kernel is the fixed binomial [1,4,6,4,1]/16; albumentations draws a true Gaussian, so
sigma=1.1 (the value OpenCV's formula gives for a 5x5 kernel) is used here: taps differ by <0.01.
"""

from __future__ import annotations

import random

import albumentations as A
import cv2
import numpy as np

from sdaanet.imagenet import IMAGENET_MEAN, IMAGENET_STD

RECIPES = ("train", "train_paper", "val", "val_pad", "val_paper", "val_floor8")
PADDED = ("val_pad", "val_paper", "val_floor8")
CROP_TRIES = 30
CROP_KEEP = 0.85


def _size_hw(size: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


def build_pipeline(recipe: str, size: int | tuple[int, int]) -> A.Compose:
    """The albumentations ``Compose`` of a recipe's steps before any crop/pad and normalisation."""
    h, w = _size_hw(size)
    resize = A.Resize(
        h, w, interpolation=cv2.INTER_LINEAR, mask_interpolation=cv2.INTER_NEAREST, p=1.0
    )
    rotate = A.Rotate(
        limit=(-10, 10),
        interpolation=cv2.INTER_LINEAR,
        mask_interpolation=cv2.INTER_NEAREST,
        border_mode=cv2.BORDER_CONSTANT,
        fill=IMAGENET_MEAN,
        fill_mask=255,
        crop_border=False,
        p=0.5,
    )
    if recipe == "train":
        steps = [
            resize,
            rotate,
            A.GaussianBlur(blur_limit=(5, 5), sigma_limit=(1.1, 1.1), p=0.5),
            A.HorizontalFlip(p=0.5),
        ]
    elif recipe == "train_paper":
        scale = A.RandomScale(
            scale_limit=(-0.1, 0.1),
            interpolation=cv2.INTER_LINEAR,
            mask_interpolation=cv2.INTER_NEAREST,
            p=1.0,
        )
        steps = [scale, rotate, A.HorizontalFlip(p=0.5)]
    elif recipe == "val":
        steps = [resize]
    elif recipe in PADDED:
        steps = []  # the aspect-keeping resize and the padding are done by hand
    else:
        raise ValueError(f"unknown transform recipe {recipe!r}; expected one of {RECIPES}")
    return A.Compose(steps, seed=0)


class EpisodeTransform:
    """A recipe applied as ``(image uint8 HxWx3, label uint8 HxW, seed) -> (image, label)``."""

    def __init__(self, recipe: str, size: int | tuple[int, int]) -> None:
        self.recipe = recipe
        self.size = _size_hw(size)
        if (recipe in PADDED or recipe == "train_paper") and self.size[0] != self.size[1]:
            raise ValueError(f"{recipe} needs a square size, got {size}")
        self.pipeline = build_pipeline(recipe, size)
        self.normalize = A.Normalize(
            mean=IMAGENET_MEAN, std=IMAGENET_STD, max_pixel_value=1.0, p=1.0
        )

    def __call__(
        self, image: np.ndarray, label: np.ndarray, seed: int = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        # One shared generator for all steps; Compose.set_random_seed would give every step an
        # identically seeded generator, so e.g. rotate and flip would always fire together.
        rng = np.random.default_rng(seed)
        self.pipeline.set_random_state(rng, random.Random(seed))
        image = np.ascontiguousarray(image, dtype=np.float32) * np.float32(1.0 / 255.0)
        if self.recipe in PADDED:
            image, label = pad_resize(image, label, self.size[0], self.recipe)
        out = self.pipeline(image=image, mask=label)
        image, label = out["image"], out["mask"]
        if self.recipe == "train_paper":
            image, label = pad_crop(image, label, self.size[0], rng)
        image = self.normalize(image=image)["image"]
        img = np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32)
        return img, np.ascontiguousarray(label, dtype=np.int64)

    def valid_hw(self, h: int, w: int) -> tuple[int, int]:
        """The top-left region of the output that shows an h x w input (the rest is padding)."""
        if self.recipe in PADDED:
            return _padded_hw(h, w, self.size[0], self.recipe)
        return self.size

    def __repr__(self) -> str:
        return f"EpisodeTransform({self.recipe!r}, size={self.size})"


def pad_crop(
    image: np.ndarray, label: np.ndarray, size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """PFENet's ``Crop``: pad (centred, mean / 255) to >= size, then a random size x size crop
    that keeps >= 85% of the foreground (labels other than 0 and 255), else a warp to size."""
    h, w = label.shape
    pad_h, pad_w = max(size - h, 0), max(size - w, 0)
    if pad_h or pad_w:
        top, left = pad_h // 2, pad_w // 2
        border = (top, pad_h - top, left, pad_w - left)
        image = cv2.copyMakeBorder(image, *border, cv2.BORDER_CONSTANT, value=IMAGENET_MEAN)
        label = cv2.copyMakeBorder(label, *border, cv2.BORDER_CONSTANT, value=255)
        h, w = label.shape
    foreground = (label != 0) & (label != 255)
    total = int(foreground.sum())
    for _ in range(CROP_TRIES):
        top = int(rng.integers(h - size + 1))
        left = int(rng.integers(w - size + 1))
        window = (slice(top, top + size), slice(left, left + size))
        if total == 0 or foreground[window].sum() >= CROP_KEEP * total:
            return image[window], label[window]
    image = cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR)
    label = cv2.resize(label, (size, size), interpolation=cv2.INTER_NEAREST)
    return image, label


def _padded_hw(h: int, w: int, size: int, recipe: str) -> tuple[int, int]:
    """The (h, w) an h x w image is resized to before padding, by recipe (see the module doc)."""
    if recipe in ("val_pad", "val_floor8"):
        if recipe == "val_pad" and max(h, w) <= size:
            return h, w
        if h >= w:
            new_h, new_w = size, int(w * (size / h))
        else:
            new_h, new_w = int(h * (size / w)), size
        return max(8, new_h // 8 * 8), max(8, new_w // 8 * 8)
    scale = size / max(h, w)
    return min(size, max(1, round(h * scale))), min(size, max(1, round(w * scale)))


def pad_resize(
    image: np.ndarray, label: np.ndarray, size: int, recipe: str = "val_pad"
) -> tuple[np.ndarray, np.ndarray]:
    """Resize with the aspect kept and paste top-left into a size x size canvas (image 0, label
    255). ``recipe``: ``val_pad``, the authors' ``test_Resize`` (only larger images shrink, sides
    floored to multiples of 8); ``val_paper``, the paper's (the longer side becomes ``size``);
    ``val_floor8``, PFENet's (the longer side becomes ``size``, sides floored to multiples of 8)."""
    h, w = label.shape
    new_h, new_w = _padded_hw(h, w, size, recipe)
    if (new_h, new_w) != (h, w):
        image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
        label = cv2.resize(label, (new_w, new_h), interpolation=cv2.INTER_NEAREST)
    image_out = np.zeros((size, size, image.shape[2]), dtype=image.dtype)
    label_out = np.full((size, size), 255, dtype=label.dtype)
    image_out[:new_h, :new_w] = image
    label_out[:new_h, :new_w] = label
    return image_out, label_out


def build_transform(recipe: str, size: int | tuple[int, int]) -> EpisodeTransform:
    return EpisodeTransform(recipe, size)
