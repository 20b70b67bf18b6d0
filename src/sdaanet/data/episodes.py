"""Few-shot episodes over any source (digest §4.2-4.3), deterministic per (seed, key).

Index (``build_index``): an image enters the query list if it holds at least one class of the
split's class list covering ``>= min_area`` pixels at its original resolution; it enters the image
list of every such class. A query's candidate target classes are all classes of the split's list it
holds (any area, as in the authors' code; classes with no image >= ``min_area`` at all are left
out since they have no supports), unless ``strict_query_classes``.

Episode ``key`` -> ``(query, class, supports, transform seeds)``:

- validation (``train=False``): query = ``queries[key % len(queries)]`` (list order, as the
  authors), randomness from ``np.random.default_rng([seed, key])``.
- training (``train=True``): ``epoch, j = divmod(key, len(dataset))``; query = the j-th entry of a
  permutation of the query list drawn from ``(seed, epoch)`` (several permutations back to back if
  an epoch is longer than the list), randomness from ``np.random.default_rng([seed, epoch, j])``.

From that generator, in order: the target class (uniform over the query's candidates), K distinct
supports from the class's image list without the query, then one transform seed for the query and
one per support. Nothing depends on the process, worker or call order, so the same key gives
bitwise the same tensors with any ``num_workers``.

``EpisodeSampler`` yields the keys of one epoch (``set_epoch``), sharded over DDP ranks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from sdaanet.data.sources.base import Source

Transform = Callable[[np.ndarray, np.ndarray, int], tuple[np.ndarray, np.ndarray]]
_PERM_TAG = 1  # distinguishes the query-permutation stream from the episode streams


@dataclass(frozen=True)
class EpisodeIndex:
    """Which images can be queries/supports for one split's class list."""

    classes: tuple[int, ...]
    queries: tuple[int, ...]  # source indices, in source (list) order
    query_classes: tuple[tuple[int, ...], ...]  # candidate target classes per query
    class_images: dict[int, tuple[int, ...]]  # class -> source indices (sorted), area >= min_area

    def __len__(self) -> int:
        return len(self.queries)


def build_index(
    areas: Sequence[dict[int, int]],
    classes: Sequence[int],
    min_area: int,
    *,
    strict_query_classes: bool = False,
) -> EpisodeIndex:
    """Filter images per digest §4.2 from per-image class areas (class id -> pixel count)."""
    classes = tuple(int(c) for c in classes)
    wanted = set(classes)
    queries: list[int] = []
    query_classes: list[tuple[int, ...]] = []
    class_images: dict[int, list[int]] = {c: [] for c in classes}
    kept_per_image = []
    for i, image_areas in enumerate(areas):
        kept = sorted(c for c, a in image_areas.items() if c in wanted and a >= min_area)
        kept_per_image.append(kept)
        for c in kept:
            class_images[c].append(i)
    for i, kept in enumerate(kept_per_image):
        if not kept:
            continue
        queries.append(i)
        if strict_query_classes:
            query_classes.append(tuple(kept))
        else:
            # any area, but only classes that have support images at all
            held = areas[i]
            query_classes.append(tuple(sorted(c for c in held if c in wanted and class_images[c])))
    return EpisodeIndex(
        classes=classes,
        queries=tuple(queries),
        query_classes=tuple(query_classes),
        class_images={c: tuple(v) for c, v in class_images.items()},
    )


def binarize(label: np.ndarray, class_id: int) -> np.ndarray:
    """class_id -> 1, 255 stays 255, everything else -> 0 (uint8)."""
    out = (label == class_id).astype(np.uint8)
    out[label == 255] = 255
    return out


@dataclass(frozen=True)
class EpisodePlan:
    key: int
    query: int  # source index
    class_id: int
    class_index: int
    supports: tuple[int, ...]  # source indices
    seeds: tuple[int, ...]  # transform seeds: query first, then each support


class EpisodeDataset(Dataset):
    """Episodes of one split as dicts of tensors (docs/interfaces.md).

    Args:
        source: the images of this split.
        classes: the split's class list (``folds.fold_classes``).
        shot: supports per episode (K).
        transform: ``(image, label, seed) -> (image float32 (3,H,W), label int64 (H,W))``.
        seed: episode seed (training seed or ``val_seed``); must be >= 0.
        train: training keys (fresh query order and draws per epoch) or validation keys.
        episodes: episodes per epoch / validation episodes (None: one per query).
        min_area: minimum class area in pixels at the original resolution.
        return_raw_label: also return ``raw_query_mask``, the binarised query label before the
            transform (original size, so only batchable with batch size 1).
        strict_query_classes: draw the target only among the query's classes >= ``min_area``.
    """

    def __init__(
        self,
        source: Source,
        classes: Sequence[int],
        shot: int,
        transform: Transform,
        *,
        seed: int = 0,
        train: bool = False,
        episodes: int | None = None,
        min_area: int = 2 * 32 * 32,
        return_raw_label: bool = False,
        strict_query_classes: bool = False,
        index: EpisodeIndex | None = None,
    ) -> None:
        if shot < 1:
            raise ValueError(f"shot must be >= 1, got {shot}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.source = source
        self.shot = int(shot)
        self.transform = transform
        self.seed = int(seed)
        self.train = bool(train)
        self.return_raw_label = return_raw_label
        if index is None:
            index = build_index(
                source.class_areas(), classes, min_area, strict_query_classes=strict_query_classes
            )
        self.index = index
        self.classes = self.index.classes
        self._class_pos = {c: i for i, c in enumerate(self.classes)}
        if not self.index.queries:
            raise ValueError(
                f"no {source.name} image holds a class of {list(self.classes)} with >= "
                f"{min_area} pixels; nothing to build episodes from"
            )
        self._check_supports(min_area)
        self.episodes = len(self.index.queries) if episodes is None else int(episodes)
        if self.episodes < 1:
            raise ValueError(f"episodes must be >= 1, got {episodes}")
        self._pools = {c: np.asarray(v, dtype=np.int64) for c, v in self.index.class_images.items()}
        self._perms: dict[tuple[int, int], np.ndarray] = {}

    def _check_supports(self, min_area: int) -> None:
        # a class that can be drawn as a target needs K supports besides the query
        drawable = sorted({c for cs in self.index.query_classes for c in cs})
        short = {
            c: len(self.index.class_images[c])
            for c in drawable
            if len(self.index.class_images[c]) < self.shot + 1
        }
        if short:
            detail = ", ".join(f"class {c}: {n}" for c, n in short.items())
            raise ValueError(
                f"{self.shot}-shot episodes need >= {self.shot + 1} images per class with >= "
                f"{min_area} pixels, but {self.source.name} has fewer ({detail})"
            )

    def __len__(self) -> int:
        return self.episodes

    # -- planning ---------------------------------------------------------------------------
    def _permutation(self, epoch: int, block: int) -> np.ndarray:
        key = (epoch, block)
        perm = self._perms.get(key)
        if perm is None:
            rng = np.random.default_rng([self.seed, _PERM_TAG, epoch, block])
            perm = rng.permutation(len(self.index.queries))
            if len(self._perms) > 4:
                self._perms.clear()
            self._perms[key] = perm
        return perm

    def plan(self, key: int) -> EpisodePlan:
        """Which images and class make episode ``key`` (no pixels are loaded)."""
        key = int(key)
        if key < 0:
            raise IndexError(f"episode keys are >= 0, got {key}")
        n_queries = len(self.index.queries)
        if self.train:
            epoch, j = divmod(key, self.episodes)
            block, pos = divmod(j, n_queries)
            q = int(self._permutation(epoch, block)[pos])
            rng = np.random.default_rng([self.seed, epoch, j])
        else:
            q = key % n_queries
            rng = np.random.default_rng([self.seed, key])
        query = self.index.queries[q]
        candidates = self.index.query_classes[q]
        class_id = candidates[int(rng.integers(len(candidates)))]
        pool = self._pools[class_id]
        pos_q = int(np.searchsorted(pool, query))
        holds_query = pos_q < len(pool) and pool[pos_q] == query
        picks = rng.choice(len(pool) - int(holds_query), size=self.shot, replace=False)
        if holds_query:
            picks = picks + (picks >= pos_q)
        supports = tuple(int(pool[p]) for p in picks)
        seeds = tuple(int(s) for s in rng.integers(0, 2**32, size=self.shot + 1))
        return EpisodePlan(
            key=key,
            query=query,
            class_id=class_id,
            class_index=self._class_pos[class_id],
            supports=supports,
            seeds=seeds,
        )

    # -- loading ----------------------------------------------------------------------------
    def _view(self, i: int, class_id: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        image, label = self.source.load(i)
        raw = binarize(label, class_id)
        image_t, mask_t = self.transform(image, raw, seed)
        return image_t, mask_t, raw

    def __getitem__(self, key: int) -> dict[str, torch.Tensor]:
        p = self.plan(key)
        q_img, q_mask, q_raw = self._view(p.query, p.class_id, p.seeds[0])
        s_imgs, s_masks = [], []
        for i, seed in zip(p.supports, p.seeds[1:], strict=True):
            img, mask, _ = self._view(i, p.class_id, seed)
            s_imgs.append(img)
            s_masks.append(mask)
        item = {
            "query_image": torch.from_numpy(q_img),
            "query_mask": torch.from_numpy(q_mask),
            "support_images": torch.from_numpy(np.stack(s_imgs)),
            "support_masks": torch.from_numpy(np.stack(s_masks)),
            "class_id": torch.tensor(p.class_id, dtype=torch.int64),
            "class_index": torch.tensor(p.class_index, dtype=torch.int64),
            "episode_index": torch.tensor(p.key, dtype=torch.int64),
        }
        if self.return_raw_label:
            item["raw_query_mask"] = torch.from_numpy(q_raw.astype(np.int64))
        return item


def _dist_rank_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class EpisodeSampler(Sampler[int]):
    """Episode keys of one epoch, sharded over DDP ranks.

    ``shuffle=True`` (training): epoch e yields keys ``e*N .. e*N+N-1`` (N = ``num_episodes``), so
    every epoch has new queries order and new draws (the dataset decodes the epoch from the key);
    call ``set_epoch`` (Lightning does). ``shuffle=False`` (validation/test): keys ``0..N-1`` every
    epoch, i.e. the same episodes.

    Rank and world size are read from ``torch.distributed`` at iteration time unless given. Rank r
    gets keys ``r::world``. With ``pad=True`` (default for training) the key list is padded by
    wrapping around so every rank gets ``ceil(N/world)`` keys; with ``pad=False`` (default for
    validation) nothing is repeated and ranks may differ by one key.
    """

    def __init__(
        self,
        num_episodes: int,
        shuffle: bool = True,
        pad: bool | None = None,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        if num_episodes < 1:
            raise ValueError(f"num_episodes must be >= 1, got {num_episodes}")
        self.num_episodes = int(num_episodes)
        self.shuffle = shuffle
        self.pad = shuffle if pad is None else pad
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _rank_world(self) -> tuple[int, int]:
        rank, world = _dist_rank_world()
        rank = rank if self.rank is None else self.rank
        world = world if self.world_size is None else self.world_size
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} outside world size {world}")
        return rank, world

    def _shard(self) -> range | np.ndarray:
        rank, world = self._rank_world()
        n = self.num_episodes
        base = self.epoch * n if self.shuffle else 0
        if not self.pad or n % world == 0:
            return range(base + rank, base + n, world)
        total = math.ceil(n / world) * world
        return base + np.arange(rank, total, world) % n

    def __iter__(self) -> Iterator[int]:
        return (int(k) for k in self._shard())

    def __len__(self) -> int:
        return len(self._shard())
