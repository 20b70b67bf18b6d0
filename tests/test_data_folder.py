"""User folder datasets (images/ + labels/ + classes.tsv), fold rules, real MSRC-v2 photos."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from sdaanet.data.folds import rule_folds
from sdaanet.data.modules import FolderDataModule
from sdaanet.data.sources import FolderSource
from sdaanet.errors import DataError, DataNotFoundError

S = 64
CLASSES = {1: "cat", 2: "dog", 3: "cow", 4: "sheep", 5: "bird", 6: "boat"}


def write_folder(root: Path, n_per_class: int = 3, classes=CLASSES) -> Path:
    """Image k of class c: class c on the left half, class c%6+1 on a 10x10 patch, void border."""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    rng = np.random.default_rng(0)
    for c in classes:
        for k in range(n_per_class):
            label = np.zeros((S, S), dtype=np.uint8)
            label[:, : S // 2] = c
            label[50:60, 50:60] = c % len(classes) + 1
            label[0, :] = 255
            image = rng.integers(0, 256, size=(S, S, 3), dtype=np.uint8)
            cv2.imwrite(str(root / "images" / f"c{c}_{k}.jpg"), image)
            cv2.imwrite(str(root / "labels" / f"c{c}_{k}.png"), label)
    lines = ["id\tname", *(f"{c}\t{n}" for c, n in classes.items())]
    (root / "classes.tsv").write_text("\n".join(lines) + "\n")
    return root


def module(root, **kw):
    kw.setdefault("num_folds", 3)
    kw.setdefault("source", {"cache": False})
    return FolderDataModule(
        root=root, train_size=33, val_size=33, val_episodes=12, min_area=1000, **kw
    )


def test_fold_rules_contiguous_interleaved_and_explicit():
    ids = range(1, 24)  # MSRC's 23 classes
    contiguous = rule_folds(ids, 4, "contiguous")
    assert [len(f) for f in contiguous] == [6, 6, 6, 5]
    assert contiguous[0] == [1, 2, 3, 4, 5, 6] and contiguous[3] == [19, 20, 21, 22, 23]
    assert rule_folds(range(1, 21), 4, "contiguous")[2] == [11, 12, 13, 14, 15]  # PASCAL-5i
    interleaved = rule_folds(ids, 4, "interleaved")
    assert interleaved[1] == [2, 6, 10, 14, 18, 22]
    assert sorted(sum(interleaved, [])) == list(ids)
    explicit = rule_folds([3, 7, 9], folds=[["dog", 3], ["9"]], names={3: "cat", 7: "dog", 9: "x"})
    assert explicit == [[3, 7], [9]]
    with pytest.raises(ValueError, match="folds\\[0\\] names 'horse'"):
        rule_folds([3, 7], folds=[["horse"]], names={3: "cat", 7: "dog"})
    with pytest.raises(ValueError, match="num_folds must be in 2..3"):
        rule_folds([1, 2, 3], 4)
    with pytest.raises(ValueError, match="fold_rule"):
        rule_folds([1, 2, 3], 2, "random")


def test_folder_episodes_follow_the_fold_and_binarise(tmp_path):
    root = write_folder(tmp_path / "mine")
    dm = module(root, fold=1)
    assert dm.class_names == CLASSES
    assert dm.split_classes("val") == [3, 4] and dm.split_classes("train") == [1, 2, 5, 6]
    assert dm.n_test_classes == 2
    dm.setup("fit")
    batch = next(iter(dm.val_dataloader()))
    assert batch["query_image"].shape == (1, 3, 33, 33)
    for key in range(12):
        item = dm.val_set[key]
        plan = dm.val_set.plan(key)
        assert plan.class_id in (3, 4) and plan.query not in plan.supports[0]
        assert set(item["query_mask"].unique().tolist()) <= {0, 1, 255}
        # the left half is the class; the 10x10 patch of another class is background
        _, label = dm.val_set.source.load(plan.query)
        assert (label == plan.class_id).any()
    train_item = dm.train_set[0]
    assert int(train_item["class_id"]) in (1, 2, 5, 6)


def test_folder_explicit_folds_by_name(tmp_path):
    root = write_folder(tmp_path / "mine")
    dm = module(root, fold=0, folds=[["cat", "boat"], [2, 3, 4, 5]])
    assert dm.split_classes("val") == [1, 6] and dm.split_classes("train") == [2, 3, 4, 5]
    with pytest.raises(ValueError, match="fold must be an integer in 0..1, got 2"):
        module(root, fold=2, folds=[["cat"], ["dog"]]).check()


def test_folder_split_files_and_cache(tmp_path):
    root = write_folder(tmp_path / "mine")
    (root / "splits").mkdir()
    (root / "splits/train.txt").write_text("c1_0\nc2_0\n")
    (root / "splits/val.txt").write_text("c3_0\nc3_1\nc3_2\n")
    train = FolderSource(root, "train")
    assert train.pairs == [
        ("images/c1_0.jpg", "labels/c1_0.png"),
        ("images/c2_0.jpg", "labels/c2_0.png"),
    ]
    assert train.class_areas()[0] == {1: (S - 1) * S // 2, 2: 100}
    assert train.cache_path.is_file() and root not in train.cache_path.parents
    assert len(FolderSource(root, "test")) == 3  # test episodes read splits/val.txt
    (root / "splits/val.txt").write_text("c3_0\nnope_1\nnope_2\nnope_3\nnope_4\n")
    with pytest.raises(
        DataNotFoundError,
        match=r"8 of 10 files named by split file .*val.txt are missing: .*nope_1.jpg",
    ):
        FolderSource(root, "val")


def test_folder_layout_errors(tmp_path):
    with pytest.raises(DataNotFoundError, match=r"images/<name>.jpg \+ labels/<name>.png"):
        module(tmp_path / "absent").check()
    root = write_folder(tmp_path / "mine")
    (root / "labels/c1_0.png").unlink()
    (root / "labels/c2_1.png").unlink()
    with pytest.raises(
        DataNotFoundError, match=r"2 of 18 images .* have no labels/<name>.png: c1_0"
    ):
        FolderSource(root, "train", cache=False)


def test_folder_bad_labels_name_the_file_and_values(tmp_path):
    root = write_folder(tmp_path / "mine")
    label = cv2.imread(str(root / "labels/c2_1.png"), cv2.IMREAD_UNCHANGED)
    label[5, 5] = 9
    label[6, 6] = 17
    cv2.imwrite(str(root / "labels/c2_1.png"), label)
    source = FolderSource(root, "train", cache=False)
    with pytest.raises(DataError, match=r"c2_1.png holds values \[9, 17\]"):
        source.class_areas()
    (root / "classes.tsv").write_text("id\tname\n0\tbackground\n")
    with pytest.raises(DataError, match="class id 0 must be in 1-254"):
        FolderSource(root, "train")


def test_corrupt_image_and_size_mismatch_name_the_file(tmp_path):
    root = write_folder(tmp_path / "mine")
    (root / "images/c1_1.jpg").write_bytes(b"not a jpeg")
    cv2.imwrite(str(root / "labels/c1_2.png"), np.zeros((S, S + 1), dtype=np.uint8))
    source = FolderSource(root, "train", cache=False)
    index = {name: i for i, (name, _) in enumerate(source.pairs)}
    with pytest.raises(DataError, match=r"cannot read image .*c1_1.jpg: corrupt or not an image"):
        source.load(index["images/c1_1.jpg"])
    with pytest.raises(DataError, match=r"c1_2.jpg is 64x64 but its label .*c1_2.png is 65x64"):
        source.load(index["images/c1_2.jpg"])
    (root / "labels/c2_0.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(DataError, match=r"cannot read label .*c2_0.png: corrupt or not an image"):
        source.class_areas()


def test_class_with_too_few_images_is_left_out_with_a_warning(tmp_path):
    root = write_folder(tmp_path / "mine", n_per_class=3)
    dm = module(root, fold=0, shot=3)  # 3 images per class: 3-shot needs 4
    with pytest.warns(
        UserWarning, match=r"fewer than shot\+1 = 4 images .*: class 1 \(cat\): 3 images, class 2"
    ):
        with pytest.raises(ValueError, match="nothing to build episodes from"):
            dm.setup("validate")


def test_msrc_v2_real_photos_as_a_folder_dataset(msrc_root):
    dm = FolderDataModule(
        root=msrc_root, fold=0, shot=5, val_size=65, val_episodes=20, source={"cache": False}
    )
    assert len(dm.class_names) == 23 and dm.class_names[5] == "horse"
    assert dm.split_classes("val") == [1, 2, 3, 4, 5, 6]  # contiguous rule, 4 folds: 6/6/6/5
    with pytest.warns(
        UserWarning, match=r"class 5 \(horse\): [0-3] images"
    ):  # 3 horse images < 5+1
        dm.setup("validate")
    assert 5 in dm.val_set.index.excluded
    batch = next(iter(dm.val_dataloader()))
    assert batch["support_images"].shape == (1, 5, 3, 65, 65)
    drawn = {int(dm.val_set.plan(k).class_id) for k in range(20)}
    assert drawn <= {1, 2, 3, 4, 6} and len(drawn) > 1
    fg = batch["query_mask"][batch["query_mask"] != 255]
    assert (
        0 < fg.float().mean() < 1
        and torch.isin(batch["query_mask"], torch.tensor([0, 1, 255])).all()
    )


def test_train_and_eval_on_a_folder_dataset_from_the_command_line_config(tmp_path):
    from sdaanet import compose_config
    from sdaanet.train import run

    root = write_folder(tmp_path / "mine", n_per_class=4)
    overrides = [
        "debug=tiny", "data=folder", f"data.root={root}", "data.num_folds=3", "data.fold=2",
        "data.min_area=1000", "data.num_workers=0", f"paths.output_dir={tmp_path / 'run'}",
        "test=true",
    ]  # fmt: skip
    metrics = run(compose_config(overrides))
    assert 0 <= metrics["test/class_miou"] <= 1
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
    bad = compose_config([*overrides[:-1], "data.fold=3"])
    with pytest.raises(ValueError, match=r"data config: fold must be an integer in 0..2, got 3"):
        run(bad)
