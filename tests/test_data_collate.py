import torch

from sdaanet.data.collate import collate_episodes


def test_collate_pads_original_size_labels_with_ignore():
    items = [
        {"x": torch.zeros(2), "raw_query_mask": torch.ones(3, 5, dtype=torch.int64)},
        {"x": torch.ones(2), "raw_query_mask": torch.zeros(4, 2, dtype=torch.int64)},
    ]
    batch = collate_episodes(items)
    raw = batch["raw_query_mask"]
    assert raw.shape == (2, 4, 5) and batch["x"].shape == (2, 2)
    assert (raw[0, :3] == 1).all() and (raw[0, 3] == 255).all()
    assert (raw[1, :, :2] == 0).all() and (raw[1, :, 2:] == 255).all()
