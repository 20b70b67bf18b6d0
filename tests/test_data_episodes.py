import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from sdaanet.data.episodes import EpisodeDataset, binarize, map_classes
from sdaanet.data.folds import fold_classes
from sdaanet.data.sampler import EpisodeSampler
from sdaanet.data.sources.synthetic import SyntheticSource
from sdaanet.data.transforms import build_transform

MIN_AREA = 64  # pixels at 64x64
TRAIN = fold_classes("synthetic", 0, "train")
NOVEL = fold_classes("synthetic", 0, "val")


@pytest.fixture(scope="module")
def train_src():
    return SyntheticSource("train", seed=0, num_images=200, image_size=64)


@pytest.fixture(scope="module")
def val_src():
    return SyntheticSource("val", seed=0, num_images=160, image_size=64)


def make(src, train, shot=2, size=33, **kw):
    classes = TRAIN if train else NOVEL
    transform = build_transform("train" if train else "val", size)
    kw.setdefault("seed", 5 if train else 321)
    return EpisodeDataset(src, classes, shot, transform, train=train, min_area=MIN_AREA, **kw)


def test_binarize():
    label = np.array([[0, 3, 5], [255, 3, 7]], dtype=np.uint8)
    np.testing.assert_array_equal(binarize(label, 3), [[0, 1, 0], [255, 1, 0]])


def test_episode_item_matches_the_interface(train_src):
    ds = make(train_src, train=True, shot=2)
    item = ds[3]
    assert item["query_image"].shape == (3, 33, 33) and item["query_image"].dtype == torch.float32
    assert item["query_mask"].shape == (33, 33) and item["query_mask"].dtype == torch.int64
    assert item["support_images"].shape == (2, 3, 33, 33)
    assert item["support_images"].dtype == torch.float32
    assert item["support_masks"].shape == (2, 33, 33)
    assert item["support_masks"].dtype == torch.int64
    for key in ("class_id", "class_index", "episode_index"):
        assert item[key].shape == () and item[key].dtype == torch.int64
    assert int(item["episode_index"]) == 3
    assert TRAIN[int(item["class_index"])] == int(item["class_id"])
    for k in range(10):
        item = ds[k]
        for m in (item["query_mask"], item["support_masks"]):
            assert set(torch.unique(m).tolist()) <= {0, 1, 255}
        assert (item["support_masks"] == 1).flatten(1).any(1).all()  # supports show the class


def test_episode_rules(train_src, val_src):
    for train, src, classes in ((True, train_src, TRAIN), (False, val_src, NOVEL)):
        ds = make(src, train=train, shot=3)
        areas = src.class_areas()
        seen = set()
        for key in range(3 * len(ds)):
            p = ds.plan(key)
            assert p.class_id in classes and classes[p.class_indices[0]] == p.class_id
            assert p.class_id in areas[p.query]  # the query holds the class
            (supports,) = p.supports
            assert len(set(supports)) == 3 and p.query not in supports
            for s in supports:
                assert areas[s].get(p.class_id, 0) >= MIN_AREA
            seen.add(p.class_id)
            if not train:
                assert p.query == ds.index.queries[key % len(ds.index.queries)]
        assert seen == set(classes)  # all classes get drawn
    # the training split never targets a novel class, validation only novel ones
    assert not set(TRAIN) & set(NOVEL)


def test_train_epoch_permutes_queries(train_src):
    ds = make(train_src, train=True)
    n = len(ds)
    epoch0 = [ds.plan(k).query for k in range(n)]
    epoch1 = [ds.plan(n + k).query for k in range(n)]
    assert sorted(epoch0) == sorted(ds.index.queries) == sorted(epoch1)  # one pass each
    assert epoch0 != epoch1
    longer = make(train_src, train=True, episodes=2 * n + 3)
    queries = [longer.plan(k).query for k in range(2 * n)]
    assert sorted(queries) == sorted(2 * list(ds.index.queries))


def test_same_key_same_tensors(train_src):
    a = make(train_src, train=True)[11]
    b = make(train_src, train=True)[11]
    c = make(train_src, train=True, seed=6)[11]
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_workers_do_not_change_episodes(train_src):
    ds = make(train_src, train=True, shot=1, size=25, episodes=12)
    sampler = EpisodeSampler(len(ds), shuffle=True)
    sampler.set_epoch(3)
    batches = {}
    for workers in (0, 2):
        loader = DataLoader(ds, batch_size=4, sampler=sampler, num_workers=workers)
        batches[workers] = list(loader)
    assert len(batches[0]) == 3
    for b0, b2 in zip(batches[0], batches[2], strict=True):
        for k in b0:
            assert torch.equal(b0[k], b2[k]), k
    assert batches[0][0]["episode_index"].tolist() == [36, 37, 38, 39]


def test_too_few_images_for_the_shot_is_a_clear_error(val_src):
    with pytest.raises(ValueError, match=r"in >= 31 images; nothing to build episodes from"):
        with pytest.warns(UserWarning, match=r"fewer than shot\+1 = 31 images"):
            make(val_src, train=False, shot=30)


def test_raw_label_option(val_src):
    ds = make(val_src, train=False, return_raw_label=True)
    item = ds[0]
    raw = item["raw_query_mask"]
    assert raw.shape == (64, 64) and raw.dtype == torch.int64
    p = ds.plan(0)
    _, label = val_src.load(p.query)
    np.testing.assert_array_equal(raw.numpy(), binarize(label, p.class_id))


def test_n_way_episodes_map_classes_to_channels_in_support_order(val_src):
    ds = make(val_src, train=False, shot=1, ways=3, return_raw_label=True)
    areas = val_src.class_areas()
    for key in range(30):
        p = ds.plan(key)
        assert len(set(p.class_ids)) == 3 and set(p.class_ids) <= set(NOVEL)
        assert any(c in areas[p.query] for c in p.class_ids)  # the query holds >= 1 of them
        assert all(p.query not in s for s in p.supports)
        for c, (s,) in zip(p.class_ids, p.supports, strict=True):
            assert areas[s].get(c, 0) >= MIN_AREA
    item = ds[4]
    p = ds.plan(4)
    assert item["support_images"].shape == (3, 1, 3, 33, 33)
    assert item["support_masks"].shape == (3, 1, 33, 33)
    assert item["class_id"].tolist() == list(p.class_ids)
    assert item["class_index"].tolist() == [NOVEL.index(c) for c in p.class_ids]
    _, label = val_src.load(p.query)
    expected = np.zeros_like(label)
    for channel, c in enumerate(p.class_ids, 1):
        expected[label == c] = channel
    expected[label == 255] = 255
    np.testing.assert_array_equal(item["raw_query_mask"].numpy(), expected)
    # the channel order is drawn too: the query's own class is not always channel 1
    firsts = {ds.plan(k).class_ids[0] == ds.plan(k).class_id for k in range(30)}
    assert len({ds.plan(k).class_ids for k in range(30)}) > 5 and firsts == {True}
    owners = [
        next(j for j, c in enumerate(ds.plan(k).class_ids) if c in areas[ds.plan(k).query])
        for k in range(30)
    ]
    assert len(set(owners)) > 1
    with pytest.raises(ValueError, match=r"ways=6 but only 5 classes"):
        make(val_src, train=False, ways=6)


def test_map_classes():
    label = np.array([[0, 3, 5], [255, 3, 7]], dtype=np.uint8)
    np.testing.assert_array_equal(map_classes(label, (7, 3)), [[0, 2, 0], [255, 2, 1]])


def test_drop_novel_images_removes_every_image_with_a_novel_pixel(train_src):
    areas = train_src.class_areas()
    kept = make(train_src, train=True)
    strict = make(train_src, train=True, drop_images_with=NOVEL)
    with_novel = {i for i, a in enumerate(areas) if set(a) & set(NOVEL)}
    assert with_novel & set(kept.index.queries)  # by default they stay (novel pixels -> bg)
    assert not with_novel & set(strict.index.queries)
    for pool in strict.index.class_images.values():
        assert not with_novel & set(pool)
    assert set(strict.index.queries) == set(kept.index.queries) - with_novel


def test_evaluation_episodes_are_the_same_for_any_world_size_and_workers(val_src):
    ds = make(val_src, train=False, shot=1, size=25, episodes=9)

    def episodes(world: int, workers: int) -> dict[int, dict]:
        out = {}
        for rank in range(world):
            sampler = EpisodeSampler(len(ds), shuffle=False, rank=rank, world_size=world)
            loader = DataLoader(ds, batch_size=2, sampler=sampler, num_workers=workers)
            for batch in loader:
                for b, key in enumerate(batch["episode_index"].tolist()):
                    assert key not in out  # disjoint slices
                    out[key] = {k: v[b] for k, v in batch.items()}
        return out

    reference = episodes(1, 0)
    assert sorted(reference) == list(range(9))
    for world, workers in ((2, 0), (3, 2)):
        other = episodes(world, workers)
        assert sorted(other) == list(range(9))
        for key, item in reference.items():
            for k, v in item.items():
                assert torch.equal(v, other[key][k]), (world, key, k)


def test_classes_left_out_are_one_warning_pointing_at_the_caller(val_src):
    transform = build_transform("val", 33)
    with pytest.warns(UserWarning, match="left out of the episodes") as caught:
        EpisodeDataset(val_src, NOVEL, 5, transform, seed=3, min_area=600)
    assert len(caught) == 1 and caught[0].filename == __file__
    assert str(caught[0].message) == (
        "synthetic: left out of the episodes, having fewer than shot+1 = 6 images with >= 600 "
        "pixels: class 1 (1): 5 images, class 3 (3): 4 images, class 4 (4): 4 images, "
        "class 5 (5): 4 images"
    )
