"""MSRC-v2 as `data=msrc`: folds of object classes, stuff classes as background, no test photo in
training, `sdaanet-data msrc`; and the real tree where it is present."""

from pathlib import Path

import numpy as np
import pytest
from tests.helpers.cli import exit_code
from tests.helpers.msrc import tiny_msrc

from sdaanet import compose_config
from sdaanet.build import build_datamodule
from sdaanet.data.folds import MSRC_FOLDS, MSRC_STUFF
from sdaanet.data.modules import FolderDataModule, MSRCDataModule
from sdaanet.data.prepare import main as data_main
from sdaanet.errors import DataConfigError


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
