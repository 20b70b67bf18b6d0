"""The episode keys of one epoch, sharded over DDP ranks (any worker count gives the same keys)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler


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
        self.start = 0  # the next iteration begins at this position of the shard (resume)

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
        start, self.start = self.start, 0
        return (int(k) for k in self._shard()[start:])

    def __len__(self) -> int:
        return len(self._shard())
