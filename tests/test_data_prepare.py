"""``sdaanet-data``: PASCAL (VOC2012 + SBD) and COCO preparation on tiny fake trees."""

import json
import sys
from importlib.metadata import entry_points

import cv2
import numpy as np
import pytest
import scipy.io
from PIL import Image
from pycocotools import mask as mask_utils
from tests.helpers.cli import exit_code

from sdaanet.data import prepare
from sdaanet.data.prepare.pascal import read_sbd_label

S = 32
TRAIN_LIST = "lists/pascal/voc_sbd_merge_noduplicate.txt"
VAL_LIST = "lists/pascal/val.txt"


def line(i):
    return f"JPEGImages/{i}.jpg SegmentationClassAug/{i}.png"


def run(*argv):
    return exit_code(prepare.main, argv)


def error(capsys):
    """The one error line on stderr (after any warnings)."""
    lines = capsys.readouterr().err.splitlines()
    assert lines and [s for s in lines if s.startswith("error: ")] == lines[-1:]
    return lines[-1]


def read_png(path):
    with Image.open(path) as im:
        assert im.mode == "L"
        return np.array(im)


# -- PASCAL ------------------------------------------------------------------------------------
def label_with(value, border=True):
    """A label: background, a block of ``value``, and (VOC style) a 255 border row."""
    label = np.zeros((S, S), np.uint8)
    label[4:12, 8:20] = value
    if border:
        label[12, 8:20] = 255
    return label


def write_voc_png(path, label):
    """A VOC SegmentationClass palette PNG whose indices are ``label``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.frombytes("P", (S, S), label.tobytes())
    im.putpalette([v for i in range(256) for v in (i, (3 * i) % 256, 255 - i)])
    im.save(path)


def write_mat(path, label):
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, {"GTcls": {"Segmentation": label, "CategoriesPresent": 1}})


def write_voc(root, train, val, voc_labels, others):
    """VOC2012: a JPEG per id (``others`` too, as SBD's images are in VOC2012), palette labels
    for ``voc_labels`` (id -> value), ImageSets."""
    (root / "JPEGImages").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in dict.fromkeys(train + val + others):
        image = rng.integers(0, 256, (S, S, 3), dtype=np.uint8)
        cv2.imwrite(str(root / "JPEGImages" / f"{i}.jpg"), image)
    for i, value in voc_labels.items():
        write_voc_png(root / "SegmentationClass" / f"{i}.png", label_with(value))
    sets = root / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True)
    (sets / "train.txt").write_text("".join(f"{i}\n" for i in train))
    (sets / "val.txt").write_text("".join(f"{i}\n" for i in val))


def write_sbd(sbd, mat_labels, train_noval=None, train=None):
    """SBD benchmark_RELEASE/dataset: cls/<id>.mat (id -> value) and its id lists."""
    sbd.mkdir(parents=True)
    for i, value in mat_labels.items():
        write_mat(sbd / "cls" / f"{i}.mat", label_with(value, border=False))
    for name, ids in (("train_noval.txt", train_noval), ("train.txt", train)):
        if ids is not None:
            (sbd / name).write_text("".join(f"{i}\n" for i in ids))


VOC_TRAIN = ["2007_000032", "2007_000039", "2007_000063"]
VOC_VAL = ["2007_000033", "2007_000042"]
SBD_NOVAL = ["2008_000002", "2007_000039", "2008_000003"]  # 2007_000039 is also VOC train


@pytest.fixture
def voc_sbd(tmp_path):
    """VOC (labels for its own ids) + SBD (.mat for its train_noval ids, a different one for
    2007_000039 so the VOC-first rule is visible); no SegmentationClassAug/."""
    root, sbd = tmp_path / "VOC2012", tmp_path / "SBD"
    voc_labels = {i: k + 1 for k, i in enumerate(VOC_TRAIN + VOC_VAL)}
    write_voc(root, VOC_TRAIN, VOC_VAL, voc_labels, SBD_NOVAL)
    write_sbd(sbd, {"2008_000002": 15, "2007_000039": 7, "2008_000003": 20}, SBD_NOVAL)
    return root, sbd


def test_entry_point_and_subcommands(capsys):
    (script,) = entry_points(group="console_scripts", name="sdaanet-data")
    assert script.value == "sdaanet.data.prepare:main" and script.load() is prepare.main
    assert list(prepare.COMMANDS) == [
        "pascal", "coco", "fss1000", "folder", "msrc", "deepglobe", "isic", "chest_xray",
        "fss1000_patnet",
    ]  # fmt: skip
    with pytest.raises(SystemExit) as exit_:
        prepare.main(["--help"])
    assert exit_.value.code == 0 and "pascal" in capsys.readouterr().out


def test_savemat_reads_back_like_sbd(tmp_path):
    label = label_with(9, border=False)
    write_mat(tmp_path / "x.mat", label)
    m = scipy.io.loadmat(tmp_path / "x.mat", struct_as_record=False, squeeze_me=True)
    assert m["GTcls"].Segmentation.dtype == np.uint8
    assert np.array_equal(read_sbd_label(tmp_path / "x.mat"), label)


def test_pascal_merges_sbd_then_voc_and_builds_labels(voc_sbd, capsys):
    root, sbd = voc_sbd
    assert run("pascal", "--root", root, "--sbd", sbd) == 0
    train = (root / TRAIN_LIST).read_text()
    # SBD train_noval in file order, then VOC train; the duplicate keeps its first (SBD) place
    expected = ["2008_000002", "2007_000039", "2008_000003", "2007_000032", "2007_000063"]
    assert train == "".join(line(i) + "\n" for i in expected)
    assert (root / VAL_LIST).read_text() == "".join(line(i) + "\n" for i in VOC_VAL)
    assert not set(VOC_VAL) & {s.split()[0][11:22] for s in train.splitlines()}
    aug = root / "SegmentationClassAug"
    assert np.array_equal(read_png(aug / "2008_000002.png"), label_with(15, border=False))
    assert np.array_equal(read_png(aug / "2008_000003.png"), label_with(20, border=False))
    # VOC palette indices (incl. the 255 border) win over SBD for an id both have
    assert np.array_equal(read_png(aug / "2007_000039.png"), label_with(2))
    assert np.array_equal(read_png(aug / "2007_000042.png"), label_with(5))
    assert sorted(p.name for p in aug.iterdir()) == sorted(f"{i}.png" for i in expected + VOC_VAL)
    out = capsys.readouterr().out
    assert "0 kept, 5 built from VOC SegmentationClass, 2 built from SBD cls" in out
    assert f"wrote {root / TRAIN_LIST} (5 images)" in out


def test_pascal_keeps_existing_unless_force(voc_sbd, capsys):
    root, sbd = voc_sbd
    assert run("pascal", "--root", root, "--sbd", sbd) == 0
    built = root / "SegmentationClassAug/2008_000002.png"
    Image.fromarray(np.zeros((S, S), np.uint8)).save(built)
    (root / VAL_LIST).write_text(line(VOC_VAL[0]) + "\n")
    capsys.readouterr()
    assert run("pascal", "--root", root, "--sbd", sbd) == 0
    out = capsys.readouterr().out
    assert "6 kept, 0 built" in out  # 5 train + the 1 val label still listed
    assert f"kept {root / VAL_LIST} (1 images)" in out
    assert not read_png(built).any()
    assert run("pascal", "--root", root, "--sbd", sbd, "--force") == 0
    assert "0 kept, 5 built from VOC SegmentationClass, 2 built from SBD cls" in (
        capsys.readouterr().out
    )
    assert np.array_equal(read_png(built), label_with(15, border=False))
    assert len((root / VAL_LIST).read_text().splitlines()) == 2


def test_pascal_derives_train_noval_with_a_warning(voc_sbd, capsys):
    root, sbd = voc_sbd
    (sbd / "train_noval.txt").unlink()
    (sbd / "train.txt").write_text("2008_000002\n2007_000033\n2008_000003\n")  # a val id
    assert run("pascal", "--root", root, "--sbd", sbd) == 0
    assert "train_noval.txt is missing" in capsys.readouterr().err
    ids = [s.split()[0][11:22] for s in (root / TRAIN_LIST).read_text().splitlines()]
    assert ids == ["2008_000002", "2008_000003"] + VOC_TRAIN


def test_pascal_without_sbd_is_voc_train_only(voc_sbd, capsys):
    root, _ = voc_sbd
    (root / "SegmentationClassAug").mkdir()
    assert run("pascal", "--root", root) == 0
    assert "no --sbd" in capsys.readouterr().err
    assert (root / TRAIN_LIST).read_text() == "".join(line(i) + "\n" for i in VOC_TRAIN)


def test_pascal_copies_given_lists(voc_sbd, tmp_path, capsys):
    root, sbd = voc_sbd
    given_train, given_val = tmp_path / "train.txt", tmp_path / "val.txt"
    given_train.write_text(f"{line('2008_000002')}\n{line('2007_000032')}\n")
    given_val.write_text(f"/{line('2007_000033')}\n")  # a leading '/' is tolerated
    args = ["pascal", "--root", root, "--sbd", sbd, "--train-list", given_train]
    assert run(*args, "--val-list", given_val) == 0
    assert (root / TRAIN_LIST).read_bytes() == given_train.read_bytes()
    assert (root / VAL_LIST).read_bytes() == given_val.read_bytes()
    assert "copied" in capsys.readouterr().out
    assert (root / "SegmentationClassAug/2007_000033.png").is_file()
    # an existing, different list is only replaced with --force
    given_train.write_text(f"{line('2007_000032')}\n")
    assert run(*args) == 2
    assert "differs" in error(capsys) and (root / TRAIN_LIST).read_text().count("\n") == 2
    assert run(*args, "--force") == 0
    assert (root / TRAIN_LIST).read_bytes() == given_train.read_bytes()


def test_pascal_list_errors(voc_sbd, tmp_path, capsys):
    root, sbd = voc_sbd
    bad = tmp_path / "bad.txt"
    bad.write_text("".join(line(f"2009_00000{k}") + "\n" for k in range(4)) + line(VOC_TRAIN[0]))
    assert run("pascal", "--root", root, "--sbd", sbd, "--train-list", bad) == 2
    err = error(capsys)
    assert "4 of 5 files named by" in err and str(bad) in err
    assert str(root / "JPEGImages/2009_000002.jpg") in err and "2009_000003" not in err
    bad.write_text(line(VOC_TRAIN[0]) + "\n" + line(VOC_VAL[1]) + "\n")
    assert run("pascal", "--root", root, "--sbd", sbd, "--train-list", bad) == 2
    assert "1 val images are in the train list" in error(capsys)
    assert not (root / TRAIN_LIST).exists()
    # a VOC val id without a JPEG: no silent skipping
    (root / "ImageSets/Segmentation/val.txt").write_text("2007_000033\n2012_999999\n")
    assert run("pascal", "--root", root, "--sbd", sbd) == 2
    err = error(capsys)
    assert "1 of 2 files named by" in err and "2012_999999.jpg" in err


def test_pascal_layout_errors(voc_sbd, tmp_path, capsys):
    root, sbd = voc_sbd
    assert run("pascal", "--root", tmp_path / "nope") == 2
    err = error(capsys)
    assert "nope does not exist" in err and "JPEGImages/ and ImageSets/Segmentation/" in err
    assert run("pascal", "--root", root) == 2
    assert "SegmentationClassAug is missing and no --sbd" in error(capsys)
    assert run("pascal", "--root", root, "--sbd", tmp_path / "nosbd") == 2
    assert "benchmark_RELEASE/dataset" in error(capsys)
    (sbd / "train_noval.txt").unlink()
    assert run("pascal", "--root", root, "--sbd", sbd) == 2
    assert "neither train_noval.txt nor train.txt" in error(capsys)
    (root / "ImageSets/Segmentation/val.txt").unlink()
    assert run("pascal", "--root", root, "--sbd", sbd) == 2
    assert "ImageSets/Segmentation/val.txt is missing" in error(capsys)
    (root / "JPEGImages").rename(root / "images")
    assert run("pascal", "--root", root, "--sbd", sbd) == 2
    assert "JPEGImages is missing" in error(capsys)


def test_pascal_label_errors(voc_sbd, capsys):
    root, sbd = voc_sbd
    args = ("pascal", "--root", root, "--sbd", sbd)
    mat = sbd / "cls/2008_000003.mat"
    mat.write_bytes(b"MATLAB 5.0 but not really" * 8)
    assert run(*args) == 2
    assert f"cannot read GTcls.Segmentation from {mat}" in error(capsys)
    write_mat(mat, label_with(30, border=False))
    assert run(*args) == 2
    assert f"{mat} holds label values [30] outside 0-20 and 255" in error(capsys)
    mat.unlink()
    assert run(*args) == 2
    err = error(capsys)
    assert "1 labels are missing" in err and "2008_000003" in err
    write_mat(mat, label_with(20, border=False))
    png = root / "SegmentationClass/2007_000063.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    assert run(*args) == 2
    assert f"cannot read label {png}" in error(capsys)
    write_voc_png(png, label_with(21))
    assert run(*args) == 2
    assert f"{png} holds label values [21]" in error(capsys)
    Image.new("RGB", (S, S)).save(png)
    assert run(*args) == 2
    assert f"{png} is not a class-id map" in error(capsys)


# -- COCO --------------------------------------------------------------------------------------
H, W = 10, 12
CATEGORIES = [
    {"id": 90, "name": "toothbrush"},
    {"id": 1, "name": "person"},
    {"id": 3, "name": "car"},
]
# the JSON's categories sorted by id: 1 -> 1, 3 -> 2, 90 -> 3


def rect(x0, y0, x1, y1):
    """A polygon covering columns x0..x1-1 and rows y0..y1-1."""
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


def rle_counts(mask):
    """Uncompressed COCO RLE counts: column-major runs, starting with a run of zeros."""
    flat, counts, value, run_ = mask.T.ravel(), [], 0, 0
    for v in flat:
        if v != value:
            counts.append(run_)
            value, run_ = v, 0
        run_ += 1
    return [*counts, run_]


def compressed_rle(mask):
    rle = mask_utils.encode(np.asfortranarray(mask))
    return {"size": rle["size"], "counts": rle["counts"].decode()}


CROWD = np.zeros((H, W), np.uint8)
CROWD[4:10, 6:8] = 1
SECOND = np.zeros((H, W), np.uint8)
SECOND[8:, 9:] = 1


def coco_json(split, images, annotations, categories):
    images = [
        {"id": k, "file_name": f"COCO_{split}2014_{k:012d}.jpg", "height": H, "width": W}
        for k in images
    ]
    anns = [
        {"id": n, "image_id": im, "category_id": c, "iscrowd": int(crowd), "segmentation": seg}
        for n, (im, c, crowd, seg) in enumerate(annotations, 100)
    ]
    return {"images": images, "annotations": anns, "categories": categories}


TRAIN_ANNS = [  # (image, category, crowd, segmentation); annotation ids 100, 101, ...
    (1, 90, False, rect(2, 2, 5, 4)),  # small, listed first: still on top of the big one
    (1, 1, False, rect(0, 0, 8, 6)),
    (1, 3, True, {"size": [H, W], "counts": rle_counts(CROWD)}),  # crowd: 255, painted last
    (2, 3, False, compressed_rle(SECOND)),
    (3, 1, True, rect(0, 0, 2, 2)),  # crowd only: no label, no list line
]  # image 4 has no annotation


def write_coco(root, train_anns=TRAIN_ANNS, train_cats=CATEGORIES, val_cats=CATEGORIES):
    """COCO 2014: train images 1-4, val image 7, their JPEGs and instances JSONs."""
    specs = {
        "train": coco_json("train", [1, 2, 3, 4], train_anns, train_cats),
        "val": coco_json("val", [7], [(7, 90, False, rect(1, 1, 3, 3))], val_cats),
    }
    (root / "annotations").mkdir(parents=True)
    for split, data in specs.items():
        (root / f"{split}2014").mkdir()
        for im in data["images"]:
            cv2.imwrite(str(root / f"{split}2014" / im["file_name"]), np.zeros((H, W, 3), np.uint8))
        (root / f"annotations/instances_{split}2014.json").write_text(json.dumps(data))


def coco_label(root, split, k):
    return root / f"annotations/{split}2014/COCO_{split}2014_{k:012d}.png"


def expected_train_label():
    label = np.zeros((H, W), np.uint8)
    label[0:6, 0:8] = 1
    label[2:4, 2:5] = 3
    label[CROWD.astype(bool)] = 255
    return label


def test_coco_labels_and_lists(tmp_path, capsys):
    root = tmp_path / "coco"
    write_coco(root)
    assert run("coco", "--root", root) == 0
    assert np.array_equal(read_png(coco_label(root, "train", 1)), expected_train_label())
    assert np.array_equal(read_png(coco_label(root, "train", 2)), SECOND * 2)  # car (3) -> 2
    val = np.zeros((H, W), np.uint8)
    val[1:3, 1:3] = 3
    assert np.array_equal(read_png(coco_label(root, "val", 7)), val)
    assert sorted(p.name for p in (root / "annotations/train2014").iterdir()) == [
        "COCO_train2014_000000000001.png",
        "COCO_train2014_000000000002.png",
    ]
    assert (root / "lists/coco/train_data_list.txt").read_text() == "".join(
        f"train2014/COCO_train2014_{k:012d}.jpg annotations/train2014/COCO_train2014_{k:012d}.png\n"
        for k in (1, 2)
    )
    assert (root / "lists/coco/val_data_list.txt").read_text() == (
        "val2014/COCO_val2014_000000000007.jpg annotations/val2014/COCO_val2014_000000000007.png\n"
    )
    captured = capsys.readouterr()
    assert "has 3 categories, not COCO's 80 classes" in captured.err
    assert "train: 2 annotated images in instances_train2014.json: 2 labels written" in (
        captured.out
    )


def test_coco_pngs_are_a_cache(tmp_path, capsys):
    root = tmp_path / "coco"
    write_coco(root)
    assert run("coco", "--root", root) == 0
    label = coco_label(root, "train", 1)
    Image.fromarray(np.zeros((H, W), np.uint8)).save(label)
    capsys.readouterr()
    assert run("coco", "--root", root) == 0
    assert "0 labels written, 2 kept" in capsys.readouterr().out
    assert not read_png(label).any()
    assert run("coco", "--root", root, "--force", "--workers", "2") == 0
    assert "2 labels written, 0 kept" in capsys.readouterr().out
    assert np.array_equal(read_png(label), expected_train_label())


def test_coco_without_json_lists_present_pngs(tmp_path, capsys):
    root = tmp_path / "coco"
    write_coco(root)
    assert run("coco", "--root", root) == 0
    for split in ("train", "val"):
        (root / f"annotations/instances_{split}2014.json").unlink()
        (root / f"lists/coco/{split}_data_list.txt").unlink()
    assert run("coco", "--root", root) == 0
    lines = (root / "lists/coco/train_data_list.txt").read_text().splitlines()
    assert (
        lines[0].split()
        == [
            "train2014/COCO_train2014_000000000001.jpg",
            "annotations/train2014/COCO_train2014_000000000001.png",
        ]
        and len(lines) == 2
    )
    (root / "train2014/COCO_train2014_000000000002.jpg").unlink()
    assert run("coco", "--root", root, "--force") == 2
    assert "1 of 4 files named by" in error(capsys)


def test_coco_layout_errors(tmp_path, capsys):
    root = tmp_path / "coco"
    assert run("coco", "--root", root) == 2
    assert "needs train2014/ and val2014/ (COCO 2014 images) and" in error(capsys)
    write_coco(root)
    for k in (1, 2, 3, 4):
        (root / f"train2014/COCO_train2014_{k:012d}.jpg").unlink()
    assert run("coco", "--root", root) == 2
    train_json = root / "annotations/instances_train2014.json"
    # images 3 (crowd only) and 4 (no annotation) are not needed
    assert f"2 of 2 files named by {train_json} are missing" in error(capsys)
    train_json.unlink()
    assert run("coco", "--root", root) == 2
    assert "instances_train2014.json and" in error(capsys)
    (root / "annotations/train2014").mkdir()
    assert run("coco", "--root", root) == 2
    assert "holds no label PNG" in error(capsys)
    (root / "val2014").rename(root / "images")
    assert run("coco", "--root", root) == 2
    assert f"{root / 'val2014'} is missing" in error(capsys)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda text: text[:50], "cannot read {json}: "),
        (lambda text: text.replace('"category_id": 1,', '"category_id": 2,'), "annotation 101"),
        (lambda text: text.replace('"categories"', '"cats"'), "not a COCO instances file"),
        (lambda text: text.replace("[[0, 0, 8, 0, 8, 6, 0, 6]]", "[[0, 0, 8]]"), "annotation 101"),
    ],
)
def test_coco_bad_json_names_the_file(tmp_path, capsys, edit, message):
    root = tmp_path / "coco"
    write_coco(root)
    train_json = root / "annotations/instances_train2014.json"
    train_json.write_text(edit(train_json.read_text()))
    assert run("coco", "--root", root) == 2
    err = error(capsys)
    assert message.format(json=train_json) in err and str(train_json) in err


def test_coco_splits_must_share_categories(tmp_path, capsys):
    root = tmp_path / "coco"
    write_coco(root, val_cats=CATEGORIES[:2])  # val JSON lacks "car"
    assert run("coco", "--root", root) == 2
    assert "list different categories" in error(capsys)


def test_coco_without_pycocotools(tmp_path, monkeypatch, capsys):
    root = tmp_path / "coco"
    write_coco(root)
    monkeypatch.setitem(sys.modules, "pycocotools.mask", None)
    assert run("coco", "--root", root) == 2
    assert error(capsys).endswith("pip install pycocotools")


COCO_IDS = [*range(1, 12), *range(13, 26), 27, 28, *range(31, 45), *range(46, 66), 67, 70]
COCO_IDS += [*range(72, 83), *range(84, 91)]


def test_coco_real_category_ids_map_to_1_to_80(tmp_path, capsys):
    from sdaanet.data.folds import COCO_CLASS_NAMES

    assert len(COCO_IDS) == 80 and COCO_IDS[-1] == 90
    categories = [{"id": i, "name": n} for i, n in zip(COCO_IDS, COCO_CLASS_NAMES, strict=True)]
    root = tmp_path / "coco"
    anns = [(1, 90, False, rect(0, 0, 4, 4)), (1, 13, False, rect(6, 0, 8, 2))]
    write_coco(root, anns, categories[::-1], categories)
    assert run("coco", "--root", root) == 0
    label = read_png(coco_label(root, "train", 1))
    assert np.unique(label).tolist() == [0, 12, 80]  # stop sign (13) -> 12, toothbrush -> 80
    assert label[0, 0] == 80 and label[0, 6] == 12
    assert "warning" not in capsys.readouterr().err


def test_folder_check_reports_folds_and_class_counts(tmp_path, capsys):
    from test_data_folder import write_folder

    root = write_folder(tmp_path / "mine")
    assert run("folder", "--root", root, "--num-folds", "3", "--min-area", "1000") == 0
    out = capsys.readouterr().out
    assert "fold 1 novel classes: cow, sheep" in out
    assert "images with >= 1000 px per class: cat 3, dog 3, cow 3, sheep 3" in out
    assert run("folder", "--root", root, "--num-folds", "3") == 0  # halves of 2016 px: none
    assert "no 1-shot episode): 1 (cat): 0, 2 (dog): 0" in capsys.readouterr().err
    (root / "labels/c1_0.png").unlink()
    assert run("folder", "--root", root) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "1 of 18 images" in err and "c1_0" in err
