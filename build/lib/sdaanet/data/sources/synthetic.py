"""The built-in synthetic dataset: procedurally drawn objects of 20 classes, no files needed.

Every class is a distinct (shape, texture, colour pair) triple; each of the 10 shapes, each of
the 10 textures and each of the 10 colour pairs is used by exactly two classes, and two classes
share at most one of the three cues, so no single cue names the class (as in real categories,
colour is a hint, not the answer) and the novel classes of a fold are new combinations of cues
seen in training. Colours are jittered per instance and which colour of the pair draws the
pattern is random. Backgrounds are smooth colour noise with a faint brick pattern no class uses.

Image ``n`` of a split is a pure function of ``(seed, split, n)``: the *plan* (which objects,
where, how big, how rotated, which colours) is drawn from ``default_rng([seed, split, n])`` and the
pixel-level randomness (background, speckle) from ``default_rng([seed, split, n, 1])``. Labels are
rendered from the plan alone, which is cheap (no textures), so the per-image class areas the
episode index needs cost about a tenth of a millisecond per image. Train, val and test use
different split codes in the seed, hence disjoint images.

Each image holds one main object (drawn last, never occluded) and 0-2 distractors of other
classes behind it. Optionally (``void_width > 0``), object boundaries are marked 255 (void) like
the VOC annotation borders.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from sdaanet.data.sources.base import Source, label_areas

SHAPES = (
    "disc", "square", "triangle", "star", "cross",
    "ring", "hexagon", "crescent", "ellipse", "diamond",
)  # fmt: skip
TEXTURES = (
    "striped", "pinstriped", "checkered", "dotted", "gridded",
    "wavy", "ringed", "speckled", "zigzag", "spoked",
)  # fmt: skip
NUM_SYNTHETIC_CLASSES = 20
# area of each unit shape (radius 1); instance radii are scaled so that every shape of a given
# nominal size covers the same area (2 r^2), so no class is systematically smaller than another
SHAPE_AREAS = (3.142, 2.434, 1.299, 1.672, 1.92, 2.292, 2.622, 1.508, 1.571, 1.24)


def class_shape_texture(class_id: int) -> tuple[int, int]:
    """(shape index, texture index) of a 1-based synthetic class id.

    Classes 1-10 pair shape k with texture k; classes 11-20 pair shape k with texture k+3 (mod 10).
    """
    if not 1 <= class_id <= NUM_SYNTHETIC_CLASSES:
        raise ValueError(f"synthetic class ids are 1..{NUM_SYNTHETIC_CLASSES}, got {class_id}")
    k = class_id - 1
    shape = k % 10
    texture = k % 10 if k < 10 else (k + 3) % 10
    return shape, texture


def class_colours(class_id: int) -> tuple[int, int]:
    """The palette indices of a class's colour pair: pair k = (k, k+4 mod 10), used by class k+1
    and class ((k+4) mod 10) + 11, whose shape and texture both differ from class k+1's."""
    k = class_id - 1
    pair = k % 10 if k < 10 else (k + 6) % 10
    return pair, (pair + 4) % 10


SYNTHETIC_CLASS_NAMES = tuple(
    f"{TEXTURES[t]}-{SHAPES[s]}"
    for s, t in (class_shape_texture(c) for c in range(1, NUM_SYNTHETIC_CLASSES + 1))
)

# the palette (RGB); a class owns a pair of entries (`class_colours`), jittered per instance
PALETTE = np.array(
    [
        [220, 60, 50],
        [60, 170, 75],
        [50, 90, 210],
        [235, 200, 40],
        [160, 70, 190],
        [40, 190, 200],
        [240, 130, 40],
        [235, 235, 235],
        [45, 45, 50],
        [150, 100, 60],
    ],
    dtype=np.float32,
)

SPLIT_CODES = {"train": 0, "val": 1, "test": 2}
DEFAULT_NUM_IMAGES = {"train": 2000, "val": 500, "test": 500}
REF = 128.0  # geometry and texture periods are defined at 128 px and scaled with the image size
_SPECKLE = 32  # side of an instance's random speckle table


@dataclass(frozen=True)
class Instance:
    """One object of an image plan (positions in pixels of the rendered image)."""

    class_id: int
    shape: int
    texture: int
    cx: float
    cy: float
    radius: float
    angle: float  # radians
    colors: tuple[int, int]  # palette indices: pattern colour, base colour
    jitter: tuple[tuple[int, int, int], tuple[int, int, int]]
    phase: tuple[float, float]  # texture offset (reference pixels)
    shade: float  # linear lighting gradient strength


def _shape_inside(shape: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Implicit shapes in unit coordinates (everything fits in the unit disc)."""
    r2 = u * u + v * v
    if shape == 0:  # disc
        return r2 < 1.0
    if shape == 1:  # square
        return np.maximum(np.abs(u), np.abs(v)) < 0.78
    if shape == 2:  # equilateral triangle, circumradius 1
        inside = np.ones(u.shape, dtype=bool)
        for a in (math.pi / 2, math.pi / 2 + 2 * math.pi / 3, math.pi / 2 + 4 * math.pi / 3):
            inside &= -(u * math.cos(a) + v * math.sin(a)) < 0.5
        return inside
    if shape == 3:  # five-pointed star
        phi = np.arctan2(v, u) * (5 / (2 * math.pi))
        tri = np.abs((phi - np.floor(phi)) * 2 - 1)  # 1 at the points, 0 between them
        return np.sqrt(r2) < 0.42 + 0.58 * tri
    if shape == 4:  # cross
        au, av = np.abs(u), np.abs(v)
        return ((au < 0.3) & (av < 0.95)) | ((av < 0.3) & (au < 0.95))
    if shape == 5:  # ring
        return (r2 < 1.0) & (r2 > 0.52**2)
    if shape == 6:  # hexagon
        inside = np.ones(u.shape, dtype=bool)
        for a in (0.0, math.pi / 3, 2 * math.pi / 3):
            inside &= np.abs(u * math.cos(a) + v * math.sin(a)) < 0.87
        return inside
    if shape == 7:  # crescent
        return (r2 < 1.0) & ((u - 0.45) ** 2 + v * v > 0.78**2)
    if shape == 8:  # ellipse
        return u * u + (v / 0.5) ** 2 < 1.0
    if shape == 9:  # elongated diamond
        return np.abs(u) / 0.62 + np.abs(v) < 1.0
    raise ValueError(f"unknown shape {shape}")


def _texture(
    texture: int, p0: np.ndarray, q0: np.ndarray, phase: tuple[float, float], speckle: np.ndarray
) -> np.ndarray:
    """Binary pattern in the object's frame (reference pixels); 1 = pattern colour."""
    p, q = p0 + phase[0], q0 + phase[1]
    if texture == 0:  # wide stripes
        return np.sin(p * (2 * math.pi / 14)) > 0
    if texture == 1:  # thin lines
        return np.mod(p, 6.0) < 2.0
    if texture == 2:  # checkerboard
        return (np.floor(p / 7) + np.floor(q / 7)) % 2 == 1
    if texture == 3:  # dots
        return (np.mod(p, 9.0) - 4.5) ** 2 + (np.mod(q, 9.0) - 4.5) ** 2 < 2.6**2
    if texture == 4:  # grid
        return (np.mod(p, 10.0) < 2.0) | (np.mod(q, 10.0) < 2.0)
    if texture == 5:  # wavy stripes
        return np.sin((p + 3.5 * np.sin(q * (2 * math.pi / 18))) * (2 * math.pi / 10)) > 0
    if texture == 6:  # concentric rings about the object's centre
        return np.sin(np.sqrt(p0 * p0 + q0 * q0) * (2 * math.pi / 8) + phase[0]) > 0
    if texture == 7:  # random speckle of 3-px cells
        i = np.floor(p / 3).astype(np.int64) % _SPECKLE
        j = np.floor(q / 3).astype(np.int64) % _SPECKLE
        return speckle[i, j]
    if texture == 8:  # chevrons
        return np.mod(p + 2.0 * np.abs(np.mod(q, 12.0) - 6.0), 12.0) < 6.0
    if texture == 9:  # radial spokes about the object's centre
        return np.sin(np.arctan2(q0, p0) * 8 + phase[1]) > 0
    raise ValueError(f"unknown texture {texture}")


class SyntheticSource(Source):
    """One split of the synthetic dataset (see the module docstring).

    Args:
        split: "train", "val" or "test" (disjoint images).
        seed: dataset seed; image n is a pure function of (seed, split, n).
        num_images: images in the split (default 2000 train, 500 val/test).
        image_size: side of the square images in pixels.
        void_width: pixels within this distance of an object boundary (either side) become 255
            (0: no void band).
        distractor_probs: probabilities of 0, 1, 2, ... distractor objects per image.
    """

    name = "synthetic"
    num_classes = NUM_SYNTHETIC_CLASSES
    class_names = SYNTHETIC_CLASS_NAMES

    def __init__(
        self,
        split: str = "train",
        seed: int = 0,
        num_images: int | None = None,
        image_size: int = 128,
        void_width: int = 1,
        distractor_probs: tuple[float, ...] = (0.3, 0.4, 0.3),
    ) -> None:
        if split not in SPLIT_CODES:
            raise ValueError(f"split must be one of {sorted(SPLIT_CODES)}, got {split!r}")
        if image_size < 16:
            raise ValueError(f"image_size must be >= 16, got {image_size}")
        probs = np.asarray(distractor_probs, dtype=np.float64)
        if probs.ndim != 1 or len(probs) == 0 or (probs < 0).any() or probs.sum() <= 0:
            raise ValueError(f"bad distractor_probs {distractor_probs!r}")
        if len(probs) > NUM_SYNTHETIC_CLASSES:
            raise ValueError("too many distractors for 20 classes")
        self.split = split
        self.seed = int(seed)
        self.num_images = int(DEFAULT_NUM_IMAGES[split] if num_images is None else num_images)
        self.image_size = int(image_size)
        self.void_width = int(void_width)
        self.distractor_probs = probs / probs.sum()
        self._areas: list[dict[int, int]] | None = None

    def __len__(self) -> int:
        return self.num_images

    def describe(self, i: int) -> str:
        return f"synthetic/{self.split}/seed{self.seed}/{i}"

    # -- plan -------------------------------------------------------------------------------
    def _key(self, n: int) -> list[int]:
        if not 0 <= n < self.num_images:
            raise IndexError(f"image {n} out of range for {self.num_images} {self.split} images")
        return [self.seed, SPLIT_CODES[self.split], int(n)]

    def plan(self, n: int) -> list[Instance]:
        """The objects of image ``n`` in drawing order (distractors first, main object last)."""
        rng = np.random.default_rng(self._key(n))
        f = self.image_size / REF
        n_distract = int(rng.choice(len(self.distractor_probs), p=self.distractor_probs))
        classes = rng.choice(NUM_SYNTHETIC_CLASSES, size=1 + n_distract, replace=False) + 1
        instances = []
        for k, class_id in enumerate(classes):
            main = k == 0
            shape, texture = class_shape_texture(int(class_id))
            size = rng.uniform(34.0, 50.0) if main else rng.uniform(22.0, 36.0)
            radius = size * math.sqrt(2.0 / SHAPE_AREAS[shape])
            margin = 0.6 * radius
            cx, cy = rng.uniform(margin, REF - margin, size=2)
            angle = rng.uniform(0.0, 2 * math.pi)
            colors = rng.permutation(class_colours(int(class_id)))
            jitter = rng.integers(-25, 26, size=(2, 3))
            phase = rng.uniform(0.0, 60.0, size=2)
            shade = rng.uniform(-0.25, 0.25)
            instances.append(
                Instance(
                    class_id=int(class_id),
                    shape=shape,
                    texture=texture,
                    cx=float(cx * f),
                    cy=float(cy * f),
                    radius=float(radius * f),
                    angle=float(angle),
                    colors=(int(colors[0]), int(colors[1])),
                    jitter=(tuple(int(x) for x in jitter[0]), tuple(int(x) for x in jitter[1])),
                    phase=(float(phase[0]), float(phase[1])),
                    shade=float(shade),
                )
            )
        return instances[::-1]  # draw distractors first, the main object on top

    # -- rendering --------------------------------------------------------------------------
    def _frame(self, inst: Instance):
        """Bounding box slices and object-frame coordinates (reference pixels) inside it."""
        s = self.image_size
        x0 = max(int(math.floor(inst.cx - inst.radius)) - 1, 0)
        x1 = min(int(math.ceil(inst.cx + inst.radius)) + 2, s)
        y0 = max(int(math.floor(inst.cy - inst.radius)) - 1, 0)
        y1 = min(int(math.ceil(inst.cy + inst.radius)) + 2, s)
        ys = np.arange(y0, y1, dtype=np.float32)[:, None] + (0.5 - inst.cy)
        xs = np.arange(x0, x1, dtype=np.float32)[None, :] + (0.5 - inst.cx)
        c, sn = math.cos(inst.angle), math.sin(inst.angle)
        scale = REF / self.image_size
        p0 = (c * xs + sn * ys) * scale
        q0 = (-sn * xs + c * ys) * scale
        rad = inst.radius * scale
        inside = _shape_inside(inst.shape, p0 / rad, q0 / rad)
        return (slice(y0, y1), slice(x0, x1)), p0, q0, inside

    def instance_mask(self, inst: Instance) -> np.ndarray:
        """Full-image boolean mask of one instance on its own (no occlusion, no void)."""
        mask = np.zeros((self.image_size, self.image_size), dtype=bool)
        box, _, _, inside = self._frame(inst)
        mask[box] = inside
        return mask

    def _label_from_plan(self, plan: list[Instance]) -> np.ndarray:
        s = self.image_size
        label = np.zeros((s, s), dtype=np.uint8)
        for inst in plan:
            box, _, _, inside = self._frame(inst)
            label[box][inside] = inst.class_id
        if self.void_width > 0:
            kernel = np.ones((2 * self.void_width + 1,) * 2, dtype=np.uint8)
            edge = cv2.dilate(label, kernel) != cv2.erode(label, kernel)
            label[edge] = 255
        return label

    def label(self, n: int) -> np.ndarray:
        """The label map of image ``n`` (uint8, class ids, 0 background, 255 void)."""
        return self._label_from_plan(self.plan(n))

    def _background(self, rng: np.random.Generator) -> np.ndarray:
        s = self.image_size
        base = rng.uniform(70.0, 170.0, size=3).astype(np.float32)
        grid = rng.uniform(-45.0, 45.0, size=(5, 5, 3)).astype(np.float32)
        img = cv2.resize(grid, (s, s), interpolation=cv2.INTER_CUBIC) + base
        # faint brick pattern (used by no class), axis-aligned, in reference pixels
        scale = REF / s
        y = (np.arange(s, dtype=np.float32)[:, None] + 0.5) * scale + rng.uniform(0, 16)
        x = (np.arange(s, dtype=np.float32)[None, :] + 0.5) * scale + rng.uniform(0, 32)
        row = np.floor(y / 16.0)
        mortar = (np.mod(y, 16.0) < 1.2 * scale + 0.3) | (
            np.mod(x + 16.0 * np.mod(row, 2), 32.0) < 1.2 * scale + 0.3
        )
        img -= mortar[..., None].astype(np.float32) * rng.uniform(8.0, 16.0)
        return img

    def render(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(image uint8 (S,S,3) RGB, label uint8 (S,S)) of image ``n``."""
        return self.render_plan(self.plan(n), np.random.default_rng([*self._key(n), 1]))

    def render_plan(
        self, plan: list[Instance], rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Draw an explicit plan; ``rng`` supplies the pixel-level randomness."""
        img = self._background(rng)
        for inst in plan:
            speckle = rng.random((_SPECKLE, _SPECKLE)) < 0.5
            box, p0, q0, inside = self._frame(inst)
            pattern = _texture(inst.texture, p0, q0, inst.phase, speckle)
            col_a = PALETTE[inst.colors[0]] + np.asarray(inst.jitter[0], dtype=np.float32)
            col_b = PALETTE[inst.colors[1]] + np.asarray(inst.jitter[1], dtype=np.float32)
            colour = np.where(pattern[..., None], col_a, col_b)
            shading = 1.0 + inst.shade * (p0 + q0) / (inst.radius * REF / self.image_size * 1.5)
            colour = colour * shading[..., None]
            region = img[box]
            region[inside] = colour[inside]
        img += rng.normal(0.0, 4.0, size=img.shape).astype(np.float32)
        image = np.clip(img + 0.5, 0, 255).astype(np.uint8)
        return image, self._label_from_plan(plan)

    def load(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return self.render(i)

    def class_areas(self) -> list[dict[int, int]]:
        if self._areas is None:
            self._areas = [label_areas(self.label(n)) for n in range(self.num_images)]
        return self._areas
