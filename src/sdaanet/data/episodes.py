"""Few-shot episodes over any source, deterministic per (seed, key).

The authors' rules: docs/paper-vs-code.md, code map: episodes.

Which images can be queries and supports of which class comes from ``index.build_index``.
Episode ``key`` -> ``(query, class, supports, transform seeds)``:

- validation (``train=False``): query = ``queries[key % len(queries)]`` (list order, as the
  authors), randomness from ``np.random.default_rng([seed, key])``.
- training (``train=True``): ``epoch, j = divmod(key, len(dataset))``; query = the j-th entry of a
  permutation of the query list drawn from ``(seed, epoch)`` (several permutations back to back if
  an epoch is longer than the list), randomness from ``np.random.default_rng([seed, epoch, j])``.

From that generator, in order: the target class (uniform over the query's candidates), for
N-way episodes the N-1 other classes (uniform among the usable classes) and a random channel
order, K distinct supports per class from its image list without the query, then one transform
seed for the query and one per support. Nothing depends on the process, worker or call order,
so the same key gives bitwise the same tensors with any ``num_workers``; ``sampler.EpisodeSampler``
yields the keys of one epoch.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from sdaanet.data.index import EpisodeIndex, build_index
from sdaanet.data.sources.base import Source
from sdaanet.errors import DataError

Transform = Callable[[np.ndarray, np.ndarray, int], tuple[np.ndarray, np.ndarray]]
_PERM_TAG = 1  # distinguishes the query-permutation stream from the episode streams


def binarize(label: np.ndarray, class_id: int) -> np.ndarray:
    """class_id -> 1, 255 stays 255, everything else -> 0 (uint8)."""
    return map_classes(label, (class_id,))


def map_classes(label: np.ndarray, class_ids: Sequence[int]) -> np.ndarray:
    """``class_ids[j]`` -> j+1, 255 stays 255, everything else -> 0 (uint8)."""
    out = np.zeros(label.shape, dtype=np.uint8)
    for j, c in enumerate(class_ids, 1):
        out[label == c] = j
    out[label == 255] = 255
    return out


@dataclass(frozen=True)
class EpisodePlan:
    key: int
    query: int  # source index
    class_ids: tuple[int, ...]  # one per way, in channel order
    class_indices: tuple[int, ...]  # positions in the split's class list
    supports: tuple[tuple[int, ...], ...]  # per way, K source indices
    seeds: tuple[int, ...]  # transform seeds: query first, then each support (way-major)

    @property
    def class_id(self) -> int:
        return self.class_ids[0]


def _check_counts(*, shot: int, ways: int, seed: int) -> None:
    """One line naming the first of ``shot >= 1``, ``ways >= 1``, ``seed >= 0`` that fails."""
    if shot < 1:
        raise ValueError(f"shot must be >= 1, got {shot}")
    if ways < 1:
        raise ValueError(f"ways must be >= 1, got {ways}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")


class EpisodeDataset(Dataset):
    """Episodes of one split as dicts of tensors (docs/interfaces.md).

    Args:
        source: the images of this split.
        classes: the split's class list (``folds.fold_classes``).
        shot: supports per class (K).
        transform: ``(image, label, seed) -> (image float32 (3,H,W), label int64 (H,W))``.
        seed: episode seed (training seed or ``val_seed``); must be >= 0.
        train: training keys (fresh query order and draws per epoch) or validation keys.
        episodes: episodes per epoch / validation episodes (None: one per query).
        min_area: minimum class area in pixels at the original resolution.
        return_raw_label: also return ``raw_query_mask``, the query label mapped like
            ``query_mask`` before the transform (original size; ``collate_episodes`` pads it),
            ``raw_size`` (h, w) and ``raw_valid`` (the top-left region of the input that shows
            the image, ``transform.valid_hw``; the rest is padding).
        strict_query_classes: draw the target only among the query's classes >= ``min_area``.
        ways: classes per episode. 1: the binary episodes of the paper. N > 1 (multi-class mode):
            N distinct classes, ``shot`` supports each, the query holds at least one of them; the
            query label maps the n-th class to n (1..N) in support order.
        drop_images_with: leave out every image holding any of these classes (e.g. the novel
            classes when training, for the stricter protocol).
        skip_images: source indices to leave out (e.g. a held-out part of the training images).
        class_names: id -> name, for messages.
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
        ways: int = 1,
        drop_images_with: Collection[int] = (),
        skip_images: Collection[int] = (),
        class_names: Mapping[int, str] | None = None,
        index: EpisodeIndex | None = None,
    ) -> None:
        _check_counts(shot=shot, ways=ways, seed=seed)
        self.source = source
        self.shot = int(shot)
        self.ways = int(ways)
        self.transform = transform
        self.seed = int(seed)
        self.train = bool(train)
        self.return_raw_label = return_raw_label
        if index is None:
            index = build_index(
                source.class_areas(),
                classes,
                min_area,
                min_images=self.shot + 1,
                strict_query_classes=strict_query_classes,
                drop_images_with=drop_images_with,
                skip_images=skip_images,
            )
        self.index = index
        self.classes = self.index.classes
        self._class_pos = {c: i for i, c in enumerate(self.classes)}
        self._warn_excluded(min_area, class_names or {})
        self._usable = self._usable_classes(min_area)
        self._anchors = self._anchor_classes(min_area)
        self.episodes = len(self.index.queries) if episodes is None else int(episodes)
        if self.episodes < 1:
            raise ValueError(f"episodes must be >= 1, got {episodes}")
        self._pools = {c: np.asarray(v, dtype=np.int64) for c, v in self.index.class_images.items()}
        self._perms: dict[tuple[int, int], np.ndarray] = {}

    # -- checking the index -------------------------------------------------------------------
    def _warn_excluded(self, min_area: int, names: Mapping[int, str]) -> None:
        """Warn (at the caller of ``__init__``) about the classes the index left out."""
        if not self.index.excluded:
            return
        detail = ", ".join(
            f"class {c} ({names.get(c, c)}): {n} images" for c, n in self.index.excluded.items()
        )
        warnings.warn(
            f"{self.source.name}: left out of the episodes, having fewer than shot+1 = "
            f"{self.shot + 1} images with >= {min_area} pixels: {detail}",
            stacklevel=3,
        )

    def _usable_classes(self, min_area: int) -> tuple[int, ...]:
        """The index's usable classes, once it is known that they can fill an episode."""
        if not self.index.queries:
            raise DataError(
                f"no {self.source.name} image holds a class of {list(self.classes)} with >= "
                f"{min_area} pixels in >= {self.shot + 1} images; nothing to build episodes from"
            )
        usable = self.index.usable
        if self.ways > len(usable):
            raise ValueError(
                f"ways={self.ways} but only {len(usable)} classes of this split have "
                f">= {self.shot + 1} images: use ways <= {len(usable)} or another fold"
            )
        return usable

    def _anchor_classes(self, min_area: int) -> list[tuple[int, ...]]:
        """Per query, the classes an N-way episode may anchor on (empty list for 1-way).

        N-way: the query's anchor class is one it holds with >= min_area pixels, so that it
        survives the transform (the binary episodes keep the authors' any-area rule)."""
        if self.ways == 1:
            return []
        pools = {c: set(v) for c, v in self.index.class_images.items()}
        anchors: list[tuple[int, ...]] = []
        for q, cands in zip(self.index.queries, self.index.query_classes, strict=True):
            anchors.append(tuple(c for c in cands if q in pools[c]))
            if not anchors[-1]:
                raise ValueError(
                    f"{self.source.describe(q)}: the query holds no class of this split with >= "
                    f"{min_area} pixels; an N-way episode's query must hold a support class"
                )
        return anchors

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

    def _supports(self, rng: np.random.Generator, class_id: int, query: int) -> tuple[int, ...]:
        """K distinct images of ``class_id``, never the query."""
        pool = self._pools[class_id]
        pos_q = int(np.searchsorted(pool, query))
        holds_query = pos_q < len(pool) and pool[pos_q] == query
        picks = rng.choice(len(pool) - int(holds_query), size=self.shot, replace=False)
        if holds_query:
            picks = picks + (picks >= pos_q)
        return tuple(int(pool[p]) for p in picks)

    def describe_episode(self, key: int) -> str:
        """The files of episode ``key``: its class, query and supports (for error messages)."""
        plan = self.plan(key)
        supports = ", ".join(self.source.describe(i) for way in plan.supports for i in way)
        return (
            f"episode {key} (class {plan.class_ids}): query {self.source.describe(plan.query)}, "
            f"supports {supports}"
        )

    def plan(self, key: int) -> EpisodePlan:
        """Which images and classes make episode ``key`` (no pixels are loaded)."""
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
        if self.ways > 1:  # the query's own class must survive the transform: >= min_area
            candidates = self._anchors[q]
        class_ids = (candidates[int(rng.integers(len(candidates)))],)
        if self.ways > 1:
            others = [c for c in self._usable if c != class_ids[0]]
            picked = [others[i] for i in rng.choice(len(others), self.ways - 1, replace=False)]
            chosen = [*class_ids, *picked]
            class_ids = tuple(chosen[i] for i in rng.permutation(self.ways))
        supports = tuple(self._supports(rng, c, query) for c in class_ids)
        n_seeds = 1 + self.ways * self.shot
        seeds = tuple(int(s) for s in rng.integers(0, 2**32, size=n_seeds))
        return EpisodePlan(
            key=key,
            query=query,
            class_ids=class_ids,
            class_indices=tuple(self._class_pos[c] for c in class_ids),
            supports=supports,
            seeds=seeds,
        )

    # -- loading ----------------------------------------------------------------------------
    def _view(
        self, i: int, class_ids: Sequence[int], seed: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        image, label = self.source.load(i)
        raw = map_classes(label, class_ids)
        image_t, mask_t = self.transform(image, raw, seed)
        return image_t, mask_t, raw

    def __getitem__(self, key: int) -> dict[str, torch.Tensor]:
        p = self.plan(key)
        q_img, q_mask, q_raw = self._view(p.query, p.class_ids, p.seeds[0])
        s_imgs, s_masks = [], []
        seeds = iter(p.seeds[1:])
        for class_id, images in zip(p.class_ids, p.supports, strict=True):
            for i in images:
                img, mask, _ = self._view(i, (class_id,), next(seeds))
                s_imgs.append(img)
                s_masks.append(mask)
        support_images = torch.from_numpy(np.stack(s_imgs))
        support_masks = torch.from_numpy(np.stack(s_masks))
        class_id = torch.tensor(p.class_ids, dtype=torch.int64)
        class_index = torch.tensor(p.class_indices, dtype=torch.int64)
        if self.ways == 1:
            class_id, class_index = class_id[0], class_index[0]
        else:
            support_images = support_images.unflatten(0, (self.ways, self.shot))
            support_masks = support_masks.unflatten(0, (self.ways, self.shot))
        item = {
            "query_image": torch.from_numpy(q_img),
            "query_mask": torch.from_numpy(q_mask),
            "support_images": support_images,
            "support_masks": support_masks,
            "class_id": class_id,
            "class_index": class_index,
            "episode_index": torch.tensor(p.key, dtype=torch.int64),
        }
        if self.return_raw_label:
            item["raw_query_mask"] = torch.from_numpy(q_raw.astype(np.int64))
            item["raw_size"] = torch.tensor(q_raw.shape, dtype=torch.int64)
            valid = getattr(self.transform, "valid_hw", lambda h, w: q_mask.shape)(*q_raw.shape)
            item["raw_valid"] = torch.tensor(valid, dtype=torch.int64)
        return item
