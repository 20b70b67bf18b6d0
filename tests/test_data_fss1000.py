"""FSS-1000: class folders of <n>.jpg + <n>.png, standard split files or a seeded split."""

import cv2
import numpy as np
import pytest

from sdaanet.data.modules import FSS1000DataModule
from sdaanet.data.sources import FSS1000Source
from sdaanet.data.sources.fss1000 import seeded_split
from sdaanet.errors import DataNotFoundError

NAMES = [f"class{i:02d}" for i in range(10)]


def write_fss(root, names=NAMES, n=3):
    rng = np.random.default_rng(0)
    for name in names:
        (root / name).mkdir(parents=True)
        for k in range(1, n + 1):
            image = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
            mask = np.zeros((32, 32), dtype=np.uint8)
            mask[4 : 4 + 8 * k, :16] = 255
            cv2.imwrite(str(root / name / f"{k}.jpg"), image)
            if name == names[1] and k == 1:  # some FSS-1000 masks are 3-channel
                mask = np.dstack([mask] * 3)
            cv2.imwrite(str(root / name / f"{k}.png"), mask)
    return root


def test_labels_are_the_folder_class_id(tmp_path):
    root = write_fss(tmp_path / "fss")
    (root / "splits").mkdir()
    (root / "splits/trn.txt").write_text("\n".join(NAMES[:6]) + "\n")
    (root / "splits/val.txt").write_text("\n".join(NAMES[6:8]) + "\n")
    (root / "splits/test.txt").write_text("\n".join(NAMES[8:]) + "\n")
    src = FSS1000Source(root, "train", cache=False)
    assert src.split_origin == str(root / "splits") and src.split_classes == [1, 2, 3, 4, 5, 6]
    assert len(src) == 18 and src.pairs[3] == ("class01/1.jpg", "class01/1.png")
    image, label = src.load(3)  # class01 (id 2), the RGB mask
    assert image.shape == (32, 32, 3) and set(np.unique(label).tolist()) == {0, 2}
    assert int((label == 2).sum()) == 8 * 16
    assert src.class_areas()[:3] == [{1: 128}, {1: 256}, {1: 384}]
    dm = FSS1000DataModule(root=root, val_size=33, val_episodes=5, source={"cache": False})
    assert dm.split_classes("val") == [7, 8] and dm.split_classes("test") == [9, 10]
    assert dm.class_names[9] == "class08" and dm.n_test_classes == 2
    test_ids = {int(b["class_id"]) for b in dm.test_dataloader()}
    val_ids = {int(b["class_id"]) for b in dm.val_dataloader()}
    assert test_ids <= {9, 10} and val_ids <= {7, 8}


def test_seeded_split_without_split_files(tmp_path):
    names = [f"c{i}" for i in range(100)]
    split = seeded_split(names, seed=0)
    assert [len(split[s]) for s in ("train", "val", "test")] == [52, 24, 24]
    assert sorted(sum(split.values(), [])) == sorted(names)
    assert seeded_split(names, 0) == split and seeded_split(names, 1) != split
    root = write_fss(tmp_path / "fss")
    src = FSS1000Source(root, "val", split_seed=3, cache=False)
    assert src.split_origin == "seed 3" and len(src.split_classes) == 2


def test_fss_errors(tmp_path):
    with pytest.raises(DataNotFoundError, match="<class>/<n>.jpg"):
        FSS1000DataModule(root=tmp_path / "absent").check()
    root = write_fss(tmp_path / "fss")
    (root / "splits").mkdir()
    for f in ("trn.txt", "val.txt"):
        (root / "splits" / f).write_text("class00\n")
    (root / "splits/test.txt").write_text("class01\nmissing_a\nmissing_b\n")
    with pytest.raises(DataNotFoundError, match="2 classes named by .*test.txt have no folder"):
        FSS1000Source(root, "test")
    with pytest.raises(ValueError, match="fold must be an integer in 0..0"):
        FSS1000DataModule(root=root, fold=1)
