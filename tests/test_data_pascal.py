import json
import os

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from tests.helpers.cli import exit_code

from sdaanet.data import prepare
from sdaanet.data.episodes import EpisodeDataset
from sdaanet.data.folds import fold_classes
from sdaanet.data.index import build_index
from sdaanet.data.modules import PascalDataModule
from sdaanet.data.sources import PascalSource
from sdaanet.data.sources.listfile import PairSource
from sdaanet.data.transforms import build_transform
from sdaanet.errors import DataError, DataNotFoundError

S = 64
BIG = (slice(0, S), slice(0, S // 2))  # 2048 px: exactly the min area, kept
RIGHT = (slice(0, S), slice(S // 2, S))  # 2048 px
SMALL = (slice(40, 50), slice(40, 50))  # 100 px: too small

# id -> list of (region, class); later entries overwrite earlier ones
TREE = {
    "2008_000000": [(BIG, 6), (SMALL, 8)],
    "2008_000001": [(BIG, 6), (SMALL, 9)],
    "2008_000002": [(BIG, 6)],
    "2008_000003": [(BIG, 9), (SMALL, 1)],  # novel class 1 is background in training
    "2008_000004": [(BIG, 9)],
    "2008_000005": [(BIG, 7), ((slice(0, 1), slice(0, 1)), 0)],  # 2047 px: dropped
    "2008_000006": [(BIG, 9), (SMALL, 6)],
    "2008_000007": [(BIG, 1)],  # only a novel class: no training query
    "2007_000008": [(BIG, 1)],
    "2007_000009": [(BIG, 1), (RIGHT, 2)],
    "2007_000010": [(BIG, 2)],
    "2007_000011": [(SMALL, 3)],
}
TRAIN_IDS = [i for i in TREE if i.startswith("2008")]
VAL_IDS = [i for i in TREE if i.startswith("2007")]


def write_tree(root, with_imagesets=True):
    """A prepared-looking VOC2012 root: JPEGs, SegmentationClassAug PNGs, ImageSets lists."""
    (root / "JPEGImages").mkdir(parents=True)
    (root / "SegmentationClassAug").mkdir()
    rng = np.random.default_rng(0)
    for k, (name, regions) in enumerate(TREE.items()):
        label = np.zeros((S, S), dtype=np.uint8)
        for region, c in regions:
            label[region] = c
        if name not in ("2007_000009",):
            label[S - 1, S // 2 :] = 255  # a void border that touches no class region
        image = rng.integers(0, 256, size=(S, S, 3), dtype=np.uint8)
        cv2.imwrite(str(root / "JPEGImages" / f"{name}.jpg"), image)
        im = Image.fromarray(label)
        if k == 1:  # palette PNGs (VOC style) must give ids, not colours
            im = im.convert("P")
            im.putpalette([v for i in range(256) for v in (i, 255 - i, (7 * i) % 256)])
        im.save(root / "SegmentationClassAug" / f"{name}.png")
    if with_imagesets:
        (root / "ImageSets" / "Segmentation").mkdir(parents=True)
        for split, ids in (("train", TRAIN_IDS), ("val", VAL_IDS)):
            (root / f"ImageSets/Segmentation/{split}.txt").write_text("\n".join(ids) + "\n")


@pytest.fixture
def tree(tmp_path):
    """Lists written by ``sdaanet-data pascal`` (no --sbd: VOC train only)."""
    root = tmp_path / "pascal"
    write_tree(root)
    assert prepare.main(["pascal", "--root", str(root)]) == 0
    return root


def test_prepare_writes_lists(tree, capsys):
    train = (tree / "lists/pascal/voc_sbd_merge_noduplicate.txt").read_text().splitlines()
    val = (tree / "lists/pascal/val.txt").read_text().splitlines()
    assert val == [f"JPEGImages/{i}.jpg SegmentationClassAug/{i}.png" for i in VAL_IDS]
    assert train == [f"JPEGImages/{i}.jpg SegmentationClassAug/{i}.png" for i in TRAIN_IDS]
    # existing lists and labels are kept
    assert prepare.main(["pascal", "--root", str(tree)]) == 0
    out = capsys.readouterr().out
    assert "kept" in out and "12 kept, 0 built" in out


def test_prepare_errors_are_one_line(tmp_path, capsys):
    assert exit_code(prepare.main, ["pascal", "--root", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "nope" in err
    root = tmp_path / "p"
    write_tree(root, with_imagesets=False)
    assert exit_code(prepare.main, ["pascal", "--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ImageSets/Segmentation/val.txt" in err
    (root / "SegmentationClassAug").rename(root / "labels")
    assert exit_code(prepare.main, ["pascal", "--root", str(root)]) == 2
    assert "SegmentationClassAug" in capsys.readouterr().err


def test_filtering_by_split_and_min_area(tree):
    src = PascalSource(tree, "train")
    assert len(src) == 8
    areas = src.class_areas()
    assert areas[0] == {6: 2048, 8: 100}
    assert areas[1] == {6: 2048, 9: 100}  # palette PNG read as ids
    assert areas[5] == {7: 2047}
    index = build_index(areas, fold_classes("pascal", 0, "train"), 2048)
    assert index.queries == (0, 1, 2, 3, 4, 6)
    assert index.class_images == {c: () for c in range(6, 21) if c not in (6, 9)} | {
        6: (0, 1, 2),
        9: (3, 4, 6),
    }
    # any-area candidates (authors' rule), minus classes with too few images (8: none)
    assert index.query_classes == ((6,), (6, 9), (6,), (9,), (9,), (6, 9))
    val = build_index(
        PascalSource(tree, "val").class_areas(), fold_classes("pascal", 0, "val"), 2048
    )
    assert val.queries == (0, 1, 2)
    assert val.class_images[1] == (0, 1) and val.class_images[2] == (1, 2)


def test_pascal_episodes_load(tree):
    ds = EpisodeDataset(
        PascalSource(tree, "val"),
        fold_classes("pascal", 0, "val"),
        1,
        build_transform("val", 41),
        seed=321,
        min_area=2048,
        episodes=6,
    )
    for key in range(6):
        item = ds[key]
        assert item["query_image"].shape == (3, 41, 41)
        assert item["support_masks"].shape == (1, 41, 41)
        assert set(torch.unique(item["query_mask"]).tolist()) <= {0, 1, 255}
        assert int(item["class_id"]) in (1, 2)
        p = ds.plan(key)
        assert p.supports[0] != p.query
    train = EpisodeDataset(
        PascalSource(tree, "train"),
        fold_classes("pascal", 0, "train"),
        2,
        build_transform("train", 41),
        seed=1,
        train=True,
        min_area=2048,
    )
    item = train[4]
    assert int(item["class_id"]) in (6, 9)
    assert item["support_images"].shape == (2, 3, 41, 41)


def test_class_cache_written_and_reused(tree, monkeypatch):
    src = PascalSource(tree, "train")
    areas = src.class_areas()
    cache = tree / "lists/pascal/voc_sbd_merge_noduplicate.classes.json"
    assert src.cache_path == cache and cache.is_file()
    assert len(json.loads(cache.read_text())["areas"]) == 8

    def boom(self):
        raise AssertionError("labels were read again")

    monkeypatch.setattr(PairSource, "_compute_areas", boom)
    assert PascalSource(tree, "train").class_areas() == areas
    # a changed list file or a relabelled image invalidates the cache
    list_file = tree / "lists/pascal/voc_sbd_merge_noduplicate.txt"
    lines = list_file.read_text().splitlines()
    list_file.write_text("\n".join(lines[:3]) + "\n")
    with pytest.raises(AssertionError, match="read again"):
        PascalSource(tree, "train").class_areas()
    monkeypatch.undo()
    assert PascalSource(tree, "train").class_areas() == areas[:3]
    label = tree / "SegmentationClassAug/2008_000000.png"
    Image.fromarray(np.full((S, S), 7, dtype=np.uint8)).save(label)
    os.utime(label, ns=(1, 1))
    assert PascalSource(tree, "train").class_areas()[0] == {7: S * S}


def test_missing_root_or_list_is_a_one_line_error(tmp_path):
    root = tmp_path / "no_pascal"
    for call in (
        lambda: PascalSource(root, "train"),
        lambda: PascalDataModule(root=root).check(),
    ):
        with pytest.raises(DataNotFoundError) as err:
            call()
        msg = str(err.value)
        assert "\n" not in msg and str(root) in msg
        assert f"sdaanet-data pascal --root {root}" in msg
    assert issubclass(DataNotFoundError, FileNotFoundError)
    root.mkdir()
    with pytest.raises(DataNotFoundError, match="lists/pascal/val.txt"):
        PascalDataModule(root=root).check("validate")


def test_list_lines_pointing_at_missing_files_are_counted_and_named(tree):
    for name in ("2008_000001", "2008_000004"):
        (tree / f"JPEGImages/{name}.jpg").unlink()
    (tree / "SegmentationClassAug/2008_000006.png").unlink()
    with pytest.raises(DataNotFoundError) as err:
        PascalSource(tree, "train")
    msg = str(err.value)
    assert msg.startswith("3 of 16 files named by list ") and "\n" not in msg
    assert "JPEGImages/2008_000001.jpg, " in msg and "2008_000006.png" in msg


def test_label_values_outside_the_classes_name_the_file(tree):
    label = tree / "SegmentationClassAug/2007_000010.png"
    array = np.array(Image.open(label))
    array[3, 3], array[4, 4] = 21, 200
    Image.fromarray(array).save(label)
    with pytest.raises(DataError, match=r"2007_000010.png holds values \[21, 200\]"):
        PascalSource(tree, "val", cache=False).class_areas()
