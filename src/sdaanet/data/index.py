"""Which images of a split hold which class: the episode index.

The authors' rules: docs/paper-vs-code.md, code map: filtering.

An image enters the query list if it holds at least one class of the split's class list covering
``>= min_area`` pixels at its original resolution; it enters the image list of every such class.
A query's candidate target classes are all classes of the split's list it holds (any area, as in
the authors' code), unless ``strict_query_classes``. A class with fewer than ``min_images`` such
images (K+1 for K supports besides the query) is ``excluded``.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class EpisodeIndex:
    """Which images can be queries/supports for one split's class list."""

    classes: tuple[int, ...]
    queries: tuple[int, ...]  # source indices, in source (list) order
    query_classes: tuple[tuple[int, ...], ...]  # candidate target classes per query
    class_images: dict[int, tuple[int, ...]]  # class -> source indices (sorted), area >= min_area
    excluded: dict[int, int]  # class -> its number of images, when fewer than min_images

    def __len__(self) -> int:
        return len(self.queries)

    @property
    def usable(self) -> tuple[int, ...]:
        """The classes episodes can target."""
        return tuple(c for c in self.classes if c not in self.excluded)


def build_index(
    areas: Sequence[dict[int, int]],
    classes: Sequence[int],
    min_area: int,
    *,
    min_images: int = 1,
    strict_query_classes: bool = False,
    drop_images_with: Collection[int] = (),
    skip_images: Collection[int] = (),
) -> EpisodeIndex:
    """Filter images (code map: filtering) from per-image class areas (class id -> pixel count).

    A class with fewer than ``min_images`` images (area >= ``min_area``) is ``excluded``: never a
    target, so an image whose only kept classes are excluded is no query. Images holding any pixel
    of a class in ``drop_images_with`` are left out entirely (the stricter PASCAL-5i setting), as
    are the images (source indices) in ``skip_images``.
    """
    classes = tuple(int(c) for c in classes)
    wanted = set(classes)
    dropped = set(drop_images_with)
    skipped = set(skip_images)
    class_images: dict[int, list[int]] = {c: [] for c in classes}
    kept_per_image = []
    for i, image_areas in enumerate(areas):
        if i in skipped or (dropped and not dropped.isdisjoint(image_areas)):
            kept = []
        else:
            kept = sorted(c for c, a in image_areas.items() if c in wanted and a >= min_area)
        kept_per_image.append(kept)
        for c in kept:
            class_images[c].append(i)
    excluded = {c: len(v) for c, v in class_images.items() if len(v) < min_images}
    queries: list[int] = []
    query_classes: list[tuple[int, ...]] = []
    for i, kept in enumerate(kept_per_image):
        kept = [c for c in kept if c not in excluded]
        if not kept:
            continue
        queries.append(i)
        if strict_query_classes:
            query_classes.append(tuple(kept))
        else:
            # any area, but only classes that have enough support images
            held = areas[i]
            query_classes.append(
                tuple(sorted(c for c in held if c in wanted and c not in excluded))
            )
    return EpisodeIndex(
        classes=classes,
        queries=tuple(queries),
        query_classes=tuple(query_classes),
        class_images={c: tuple(v) for c, v in class_images.items()},
        excluded=excluded,
    )
