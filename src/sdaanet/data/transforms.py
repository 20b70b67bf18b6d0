"""Pixel recipes: albumentations pipelines that turn (image, label) into network-ready arrays.

``EpisodeTransform(image, label, seed)`` returns ``image`` float32 (3,H,W) normalised with the
ImageNet mean/std on 0-255 RGB and ``label`` int64 (H,W). All randomness comes from ``seed``:
the same seed gives bitwise the same output, in any process.

Recipes (digest §4.4):
- ``train`` (the authors' code): warp Resize to ``size`` (bilinear image, nearest label, aspect not
  kept) -> Rotate ±10° p=0.5 (image border = ImageNet mean, label border 255) -> GaussianBlur 5x5
  p=0.5 -> HorizontalFlip p=0.5 -> Normalize.
- ``val`` (``resized_val: True``): warp Resize to ``size`` -> Normalize.
- ``val_pad`` (``resized_val: False``, the authors' ``test_Resize``): an image whose longer side
  exceeds ``size`` is scaled (aspect kept) so that side equals ``size``, then both sides are floored
  to multiples of 8; smaller images keep their size. It is pasted top-left into a size x size
  canvas of raw 0 (image) / 255 (label), then normalised.

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

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RECIPES = ("train", "val", "val_pad")


def _size_hw(size: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


def build_pipeline(recipe: str, size: int | tuple[int, int]) -> A.Compose:
    """The albumentations ``Compose`` of a recipe (without the final HWC->CHW step)."""
    h, w = _size_hw(size)
    resize = A.Resize(
        h, w, interpolation=cv2.INTER_LINEAR, mask_interpolation=cv2.INTER_NEAREST, p=1.0
    )
    normalize = A.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD, max_pixel_value=1.0, p=1.0)
    if recipe == "train":
        steps = [
            resize,
            A.Rotate(
                limit=(-10, 10),
                interpolation=cv2.INTER_LINEAR,
                mask_interpolation=cv2.INTER_NEAREST,
                border_mode=cv2.BORDER_CONSTANT,
                fill=IMAGENET_MEAN,
                fill_mask=255,
                crop_border=False,
                p=0.5,
            ),
            A.GaussianBlur(blur_limit=(5, 5), sigma_limit=(1.1, 1.1), p=0.5),
            A.HorizontalFlip(p=0.5),
            normalize,
        ]
    elif recipe == "val":
        steps = [resize, normalize]
    elif recipe == "val_pad":
        steps = [normalize]  # the aspect-keeping resize and the padding are done by hand
    else:
        raise ValueError(f"unknown transform recipe {recipe!r}; expected one of {RECIPES}")
    return A.Compose(steps, seed=0)


class EpisodeTransform:
    """A recipe applied as ``(image uint8 HxWx3, label uint8 HxW, seed) -> (image, label)``."""

    def __init__(self, recipe: str, size: int | tuple[int, int]) -> None:
        self.recipe = recipe
        self.size = _size_hw(size)
        if recipe == "val_pad" and self.size[0] != self.size[1]:
            raise ValueError(f"val_pad needs a square size, got {size}")
        self.pipeline = build_pipeline(recipe, size)

    def __call__(
        self, image: np.ndarray, label: np.ndarray, seed: int = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        # One shared generator for all steps; Compose.set_random_seed would give every step an
        # identically seeded generator, so e.g. rotate and flip would always fire together.
        self.pipeline.set_random_state(np.random.default_rng(seed), random.Random(seed))
        image = np.ascontiguousarray(image, dtype=np.float32) * np.float32(1.0 / 255.0)
        if self.recipe == "val_pad":
            image, label = pad_resize(image, label, self.size[0])
        out = self.pipeline(image=image, mask=label)
        img = np.ascontiguousarray(out["image"].transpose(2, 0, 1), dtype=np.float32)
        return img, np.ascontiguousarray(out["mask"], dtype=np.int64)

    def __repr__(self) -> str:
        return f"EpisodeTransform({self.recipe!r}, size={self.size})"


def _padded_hw(h: int, w: int, size: int) -> tuple[int, int]:
    if max(h, w) <= size:
        return h, w
    if h >= w:
        new_h, new_w = size, int(w * (size / h))
    else:
        new_h, new_w = int(h * (size / w)), size
    return new_h // 8 * 8, new_w // 8 * 8


def pad_resize(image: np.ndarray, label: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The authors' ``test_Resize``: shrink (aspect kept, sides floored to x8), paste top-left."""
    h, w = label.shape
    new_h, new_w = _padded_hw(h, w, size)
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
