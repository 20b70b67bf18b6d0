import torch

from sdaanet.data.sampler import EpisodeSampler


def test_sampler_epochs_and_val_sharding():
    train = EpisodeSampler(10, shuffle=True)
    assert list(train) == list(range(10))
    train.set_epoch(2)
    assert list(train) == list(range(20, 30))
    val = EpisodeSampler(10, shuffle=False)
    val.set_epoch(5)
    assert list(val) == list(range(10))
    shards = [list(EpisodeSampler(11, shuffle=False, rank=r, world_size=2)) for r in range(2)]
    assert sorted(shards[0] + shards[1]) == list(range(11))  # each episode exactly once
    assert [len(EpisodeSampler(11, shuffle=False, rank=r, world_size=2)) for r in range(2)] == [
        6,
        5,
    ]


def test_sampler_pads_training_shards_evenly():
    samplers = [EpisodeSampler(11, shuffle=True, rank=r, world_size=3) for r in range(3)]
    for s in samplers:
        s.set_epoch(1)
    shards = [list(s) for s in samplers]
    assert [len(s) for s in shards] == [4, 4, 4] == [len(s) for s in samplers]
    flat = sum(shards, [])
    assert set(flat) == set(range(11, 22)) and len(flat) == 12


def test_sampler_reads_torch_distributed_at_iteration(monkeypatch):
    sampler = EpisodeSampler(7, shuffle=False)
    assert list(sampler) == list(range(7))
    monkeypatch.setattr(torch.distributed, "is_available", lambda: True)
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda: 1)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 2)
    assert list(sampler) == [1, 3, 5] and len(sampler) == 3
