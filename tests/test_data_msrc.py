"""MSRC-v2 as `data=msrc`: folds of object classes, stuff classes as background, no test photo in
training, `sdaanet-data msrc`; and the real tree where it is present."""

from pathlib import Path

import cv2
import numpy as np
import pytest
from tests.helpers.cli import exit_code

from sdaanet import compose_config
from sdaanet.data.folds import MSRC_FOLDS, MSRC_STUFF
from sdaanet.data.modules import FolderDataModule, MSRCDataModule
from sdaanet.data.prepare import main as data_main
from sdaanet.errors import DataConfigError
from sdaanet.train import build_datamodule

MSRC_CLASSES = (
    "building grass tree cow horse sheep sky mountain aeroplane water face car bicycle flower "
    "sign bird book chair road cat dog body boat"
).split()


def write_msrc_tree(root: Path, photos: dict[str, tuple[str, ...]], side: int = 48) -> Path:
    """An MSRC-shaped tree: each photo's label holds its classes in equal vertical bands."""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    ids = {name: i for i, name in enumerate(MSRC_CLASSES, 1)}
    rng = np.random.default_rng(0)
    for stem, classes in photos.items():
        label = np.full((side, side), 255, np.uint8)
        band = side // len(classes)
        for k, name in enumerate(classes):
            label[2:, k * band : (k + 1) * band] = ids[name]
        image = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
        cv2.imwrite(str(root / "images" / f"{stem}.jpg"), image)
        cv2.imwrite(str(root / "labels" / f"{stem}.png"), label)
    lines = ["id\tname", *(f"{i}\t{n}" for i, n in enumerate(MSRC_CLASSES, 1))]
    (root / "classes.tsv").write_text("\n".join(lines) + "\n")
    return root


def tiny_msrc(root: Path) -> Path:
    """Two photos of every object class over grass or sky, plus two cow+dog photos."""
    objects = [c for fold in MSRC_FOLDS for c in fold] + ["horse"]
    photos = {f"{c}_{k}": (c, "grass" if k else "sky") for c in objects for k in range(2)}
    photos |= {"cowdog_0": ("cow", "dog"), "cowdog_1": ("dog", "cow")}
    return write_msrc_tree(root, photos)


def test_folds_are_object_classes_and_stuff_is_never_a_target(tmp_path):
    root = tiny_msrc(tmp_path / "msrc")
    folds = [MSRCDataModule(root=root, fold=f, min_area=1) for f in range(3)]
    names = folds[0].class_names
    assert [[names[c] for c in dm.split_classes("test")] for dm in folds] == [
        ["cow", "sheep", "aeroplane", "face", "body"],  # id order, body beside face
        ["car", "bicycle", "flower", "sign", "bird"],
        ["book", "chair", "cat", "dog", "boat"],
    ]
    train = [names[c] for c in folds[0].split_classes("train")]
    assert train == ["horse", "car", "bicycle", "flower", "sign", "bird", "book", "chair",
                     "cat", "dog", "boat"]  # fmt: skip
    assert not set(train) & set(MSRC_STUFF)
    assert [names[c] for c in folds[0].background_ids] == [
        "building", "grass", "tree", "sky", "mountain", "water", "road"
    ]  # fmt: skip


def test_training_never_sees_a_test_photo_and_stuff_pixels_are_background(tmp_path):
    cfg = compose_config(["data=msrc", f"data.root={tiny_msrc(tmp_path / 'msrc')}",
                          "data.min_area=1", "data.train_size=33", "data.val_size=33",
                          "data.val_episodes=8", "data.source.cache=false"])  # fmt: skip
    dm = build_datamodule(cfg)
    dm.setup("fit")
    train, test = dm.datasets["train"], dm.datasets["val"]
    used = set(train.index.queries).union(*train.index.class_images.values())
    train_stems = {Path(train.source.describe(i)).stem for i in used}
    assert "cowdog_0" not in train_stems and "cow_0" not in train_stems  # cow is novel in fold 0
    assert "dog_0" in train_stems
    assert set(train.index.class_images) == set(dm.split_classes("train"))
    for k in range(8):  # a test episode's mask: its object 1, grass/sky/dog 0, void 255
        item = test[k]
        values = set(np.unique(item["query_mask"].numpy()).tolist())
        assert values <= {0, 1, 255} and 1 in values and 0 in values


def test_a_class_both_in_a_fold_and_background_is_refused_in_one_line(tmp_path):
    root = tiny_msrc(tmp_path / "msrc")
    dm = FolderDataModule(
        root=root, folds=[["cow", "grass"], ["dog"]], background_classes=["grass"]
    )
    with pytest.raises(DataConfigError, match="'grass' is both in a fold and in background") as e:
        dm.folds()
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="background_classes names 'lava'"):
        FolderDataModule(root=root, background_classes=["lava"]).folds()


def test_sdaanet_data_msrc_prints_the_folds_and_the_background(tmp_path, capsys):
    root = tiny_msrc(tmp_path / "msrc")
    assert exit_code(data_main, ["msrc", "--root", str(root), "--min-area", "1"]) == 0
    out = capsys.readouterr()
    text = out.out + out.err
    assert "fold 2 novel classes: book, chair, cat, dog, boat" in text
    assert "background (never a target): building, grass, tree, sky" in text
    assert f"ok: train with data=msrc data.root={root}" in text
    assert exit_code(data_main, ["msrc", "--root", str(tmp_path / "nowhere")]) == 2


def test_the_real_msrc_tree_gives_every_novel_class_test_photos(msrc_root):
    for fold in range(3):
        dm = MSRCDataModule(root=msrc_root, fold=fold, min_area=1024, val_episodes=10)
        dm.setup("fit")
        test_index, train_index = dm.datasets["val"].index, dm.datasets["train"].index
        sizes = {dm.class_names[c]: len(v) for c, v in test_index.class_images.items()}
        assert set(sizes) == set(MSRC_FOLDS[fold]) and min(sizes.values()) >= 24, sizes
        novel_photos = {i for c in dm.split_classes("test") for i in test_index.class_images[c]}
        assert novel_photos.isdisjoint(train_index.queries)  # drop_novel_images
        assert novel_photos.isdisjoint(set().union(*train_index.class_images.values()))
