import pytest

from sdaanet.data.folds import class_names, fold_classes, novel_classes


@pytest.mark.parametrize("dataset,n", [("pascal", 20), ("synthetic", 20), ("coco", 80)])
@pytest.mark.parametrize("fold", range(4))
def test_train_and_val_partition_the_classes(dataset, n, fold):
    train = fold_classes(dataset, fold, "train")
    val = fold_classes(dataset, fold, "val")
    assert not set(train) & set(val)
    assert sorted(train + val) == list(range(1, n + 1))
    assert len(val) == n // 4
    assert train == sorted(train) and val == sorted(val)


def test_pascal_fold2_tests_11_to_15():
    assert fold_classes("pascal", 2, "val") == [11, 12, 13, 14, 15]
    assert fold_classes("pascal", 2, "train") == [*range(1, 11), *range(16, 21)]


def test_coco_interleaved_and_contiguous():
    val = fold_classes("coco", 1, "val", interleaved=True)
    assert val[:3] == [2, 6, 10] and val[-1] == 78 and len(val) == 20
    assert not set(val) & set(fold_classes("coco", 1, "train", interleaved=True))
    assert fold_classes("coco", 0, "val") == list(range(1, 81, 4))
    assert fold_classes("coco", 1, "val", interleaved=False) == list(range(21, 41))
    assert novel_classes("coco", 3, interleaved=False) == list(range(61, 81))


def test_synthetic_folds_like_pascal():
    assert fold_classes("synthetic", 3, "val") == [16, 17, 18, 19, 20]


@pytest.mark.parametrize("fold", [4, -1, "0", 1.0, True, None])
def test_bad_fold_raises(fold):
    with pytest.raises(ValueError, match="fold"):
        fold_classes("pascal", fold, "val")


def test_bad_split_and_dataset_raise():
    with pytest.raises(ValueError, match="split"):
        fold_classes("pascal", 0, "novel")
    with pytest.raises(ValueError, match="unknown dataset"):
        fold_classes("voc", 0, "val")


def test_class_names():
    assert class_names("pascal")[14] == "person"
    assert class_names("coco")[0] == "person" and len(class_names("coco")) == 80
    names = class_names("synthetic")
    assert len(names) == 20 and len(set(names)) == 20
