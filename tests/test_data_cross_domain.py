"""PATNet's cross-domain test sets (Deepglobe, ISIC, Chest X-ray, FSS-1000) on tiny trees written
in exactly PATNet's layouts: name rule, labels, episode draws, the check, sdaanet-eval, report."""

import math
import shutil
import warnings
from pathlib import Path

import cv2
import hydra
import numpy as np
import pytest
from omegaconf import OmegaConf
from tests.helpers.cli import exit_code

from sdaanet import compose_config
from sdaanet.config import CONF_DIR
from sdaanet.data import prepare
from sdaanet.data.modules import ISICDataModule
from sdaanet.data.sources.crossdomain import kept, listing
from sdaanet.errors import DataConfigError, DataNotFoundError
from sdaanet.eval import run as run_eval
from sdaanet.reporting.collect import load_records
from sdaanet.reporting.rows import build_table

SIZE = 24
FSS_CLASSES = ("bee", "cup")
N_CLASSES = {"deepglobe": 6, "isic": 3, "chest_xray": 1, "fss1000_patnet": 2}
N_IMAGES = {"deepglobe": 18, "isic": 9, "chest_xray": 4, "fss1000_patnet": 21}
GREY_MASK = "Deepglobe/2/test/groundtruth/0_2.png"  # 127 | 128 | 255 columns, a 3-channel PNG


def write_pair(root: Path, image: str, mask: str, k: int, grey: bool = False) -> None:
    """A random image and a mask whose 0/255 foreground block depends on ``k``."""
    rng = np.random.default_rng(k)
    for rel in (image, mask):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
    pixels = rng.integers(0, 256, size=(SIZE, SIZE) if grey else (SIZE, SIZE, 3), dtype=np.uint8)
    cv2.imwrite(str(root / image), pixels)
    m = np.zeros((SIZE, SIZE), dtype=np.uint8)
    m[2 : 10 + k % 8, 3:15] = 255
    cv2.imwrite(str(root / mask), m)


def write_tree(root: Path) -> Path:
    """The four datasets under one PATNet --datapath, in PATNet's layouts."""
    k = 0
    for c in range(1, 7):
        for i in range(3):
            k += 1
            write_pair(root, f"Deepglobe/{c}/test/origin/{i}_{c}.jpg",
                       f"Deepglobe/{c}/test/groundtruth/{i}_{c}.png", k)  # fmt: skip
    for c in range(1, 4):
        for i in range(3):
            k += 1
            write_pair(root, f"ISIC/ISIC2018_Task1-2_Training_Input/{c}/ISIC_{c}{i:03d}.jpg",
                       f"ISIC/ISIC2018_Task1_Training_GroundTruth/ISIC_{c}{i:03d}_segmentation.png",
                       k)  # fmt: skip
    for i in range(4):
        k += 1
        write_pair(root, f"LungSegmentation/CXR_png/CHNCXR_{i:04d}_0.png",
                   f"LungSegmentation/masks/CHNCXR_{i:04d}_0_mask.png", k, grey=True)  # fmt: skip
    for name in FSS_CLASSES:
        for n in range(1, 11):
            k += 1
            write_pair(root, f"FSS-1000/{name}/{n}.jpg", f"FSS-1000/{name}/{n}.png", k)
    write_pair(root, "FSS-1000/bee/extra.jpg", "FSS-1000/bee/extra.png", 99)  # a query only
    (root / "FSS-1000/splits").mkdir()
    (root / "FSS-1000/splits/test.txt").write_text("cup\nbee\n")
    # PATNet's name rule drops these: name.split('.')[1] is 'b' / 'v2', not 'jpg'
    write_pair(root, "Deepglobe/1/test/origin/a.b.jpg", "Deepglobe/1/test/groundtruth/a.png", 0)
    write_pair(root, "FSS-1000/cup/img.v2.jpg", "FSS-1000/cup/img.png", 0)
    grey = np.zeros((SIZE, SIZE, 3), dtype=np.uint8)
    grey[:, 0:4], grey[:, 4:9], grey[:, 9:12] = 127, 128, 255
    cv2.imwrite(str(root / GREY_MASK), grey)
    return root


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return write_tree(tmp_path_factory.mktemp("cross-domain") / "datapath")


def datamodule(name, root, shot=1, **data):
    cfg = compose_config([f"data={name}", f"paths.data_dir={root}", "data.num_workers=0"]).data
    for key, value in data.items():
        OmegaConf.update(cfg, key, value)
    return hydra.utils.instantiate(cfg, shot=shot, seed=0, _recursive_=False)


def test_name_rule_is_patnets_split_dot_1():
    assert kept("a.jpg", "jpg") and kept("a.jpg.bak", "jpg")  # PATNet keeps the latter too
    assert not kept("a.b.jpg", "jpg") and not kept("img.v2.jpg", "jpg")
    assert not kept("a.JPG", "jpg") and not kept("noext", "jpg") and not kept("a.png", "jpg")


def test_listings_follow_patnets_layouts(tree):
    deepglobe = listing("deepglobe", tree)
    assert deepglobe.left_out == ("Deepglobe/1/test/origin/a.b.jpg",)
    assert deepglobe.pairs[0] == ("Deepglobe/1/test/origin/0_1.jpg",
                                  "Deepglobe/1/test/groundtruth/0_1.png")  # fmt: skip
    assert deepglobe.counts() == dict.fromkeys(range(1, 7), 3)
    isic = listing("isic", tree)
    assert isic.pairs[3] == (
        "ISIC/ISIC2018_Task1-2_Training_Input/2/ISIC_2000.jpg",
        "ISIC/ISIC2018_Task1_Training_GroundTruth/ISIC_2000_segmentation.png",
    )
    chest = listing("chest_xray", tree)  # the masks are listed; the image is mask name[:-9]
    assert chest.pairs[1] == ("LungSegmentation/CXR_png/CHNCXR_0001_0.png",
                              "LungSegmentation/masks/CHNCXR_0001_0_mask.png")  # fmt: skip
    fss = listing("fss1000_patnet", tree)
    assert fss.class_names == {1: "bee", 2: "cup"}  # sorted, whatever the file's order
    assert fss.left_out == ("FSS-1000/cup/img.v2.jpg",)
    images = [image for image, _ in fss.pairs]
    assert images[:3] == ["FSS-1000/bee/1.jpg", "FSS-1000/bee/10.jpg", "FSS-1000/bee/2.jpg"]
    assert "FSS-1000/bee/extra.jpg" in images
    supports = {Path(images[i]).name for i in fss.supports}
    assert supports == {f"{n}.jpg" for n in range(1, 11)} and len(fss.supports) == 20
    assert {name: len(listing(name, tree).pairs) for name in N_IMAGES} == N_IMAGES


def test_masks_are_grey_at_least_128(tree):
    dm = datamodule("deepglobe", tree)
    source = dm.make_source("test")
    i = next(i for i, (_, m) in enumerate(source.pairs) if m == GREY_MASK)
    image, label = source.load(i)
    assert image.shape == (SIZE, SIZE, 3) and set(np.unique(label).tolist()) == {0, 2}
    assert (label[:, :4] == 0).all() and (label[:, 4:12] == 2).all() and (label[:, 12:] == 0).all()
    assert source.class_areas()[i] == {2: 8 * SIZE}


@pytest.mark.parametrize("name", list(N_CLASSES))
def test_configs_set_patnets_protocol(name, tree):
    cfg = compose_config([f"data={name}"]).data
    episodes = 2400 if name == "fss1000_patnet" else 600
    assert (cfg.val_size, cfg.val_transform, cfg.val_episodes, cfg.min_area) == (
        400, "val", episodes, 1)  # fmt: skip
    base = OmegaConf.load(CONF_DIR / "data/base/default.yaml")
    own = OmegaConf.load(CONF_DIR / f"data/{name}.yaml")
    assert [k for k in own if k in base and own[k] == base[k]] == []  # only what differs
    dm = datamodule(name, tree)
    assert dm.name == name and dm.root == tree and dm.num_folds == 1
    assert dm.n_test_classes == N_CLASSES[name]
    assert dm.split_classes("test") == sorted(dm.class_names)


@pytest.mark.parametrize("name", ["deepglobe", "isic", "chest_xray"])
@pytest.mark.parametrize("shot", [1, 2])
def test_600_episodes_cycle_the_classes(name, shot, tree):
    dm = datamodule(name, tree, shot=shot, val_size=33)
    dm.setup("test")
    episodes = dm.val_set
    classes = dm.split_classes("test")
    assert len(episodes) == 600 and len(dm.test_dataloader()) == 600
    plans = [episodes.plan(k) for k in range(600)]
    assert [p.class_id for p in plans] == [classes[k % len(classes)] for k in range(600)]
    labels = dm.listing().classes
    for p in plans:
        (supports,) = p.supports
        assert p.query not in supports and len(set(supports)) == shot
        assert {labels[i] for i in (p.query, *supports)} == {p.class_id}
    for c in classes:  # the query is drawn among all the class's images
        assert {p.query for p in plans if p.class_id == c} == {
            i for i, label in enumerate(labels) if label == c
        }
    again = datamodule(name, tree, shot=shot, val_size=33)
    again.setup("test")
    assert [again.val_set.plan(k) for k in range(20)] == plans[:20]  # f(val_seed, key)
    other = datamodule(name, tree, shot=shot, val_size=33, val_seed=7)
    other.setup("test")
    assert [other.val_set.plan(k) for k in range(20)] != plans[:20]
    item = episodes[0]
    assert set(np.unique(item["query_mask"].numpy()).tolist()) <= {0, 1}  # no ignore label
    assert item["support_images"].shape == (shot, 3, 33, 33)


@pytest.mark.parametrize("shot", [1, 5])
def test_fss_every_test_image_once_supports_from_1_to_10(shot, tree):
    dm = datamodule("fss1000_patnet", tree, shot=shot, val_size=33, val_episodes=21)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 21 = the test images: no warning
        dm.setup("test")
    episodes = dm.val_set
    assert len(episodes) == 21
    plans = [episodes.plan(k) for k in range(21)]
    assert sorted(p.query for p in plans) == list(range(21))  # each image a query once
    pairs, labels = dm.listing().pairs, dm.listing().classes
    for p in plans:
        (supports,) = p.supports
        assert p.query not in supports and len(set(supports)) == shot
        assert {Path(pairs[i][0]).stem for i in supports} <= {str(n) for n in range(1, 11)}
        assert {labels[i] for i in (p.query, *supports)} == {p.class_id}
    short = datamodule("fss1000_patnet", tree, val_size=33)  # 2400 configured, 21 here
    with pytest.warns(UserWarning, match="val_episodes=21"):
        short.setup("test")


def test_test_only_and_missing_data_errors(tree, tmp_path):
    dm = datamodule("deepglobe", tree)
    with pytest.raises(DataConfigError, match="not for training.*data=deepglobe"):
        dm.check("fit")
    for name in N_CLASSES:
        with pytest.raises(DataNotFoundError) as err:
            datamodule(name, tmp_path / "absent").check("test")
        assert "\n" not in str(err.value) and str(tmp_path / "absent") in str(err.value)
        if name == "deepglobe":
            assert f"sdaanet-data deepglobe --root {tmp_path / 'absent'}" in str(err.value)
    copy = shutil.copytree(tree / "FSS-1000", tmp_path / "fss" / "FSS-1000")
    (copy / "splits/test.txt").unlink()
    with pytest.raises(DataNotFoundError, match="data/splits/fss/test.txt"):
        datamodule("fss1000_patnet", tmp_path / "fss").check("test")
    with pytest.raises(ValueError, match="1-way"):
        ISICDataModule(root=tree, ways=2)


def test_check_command_counts_and_names_a_missing_mask(tree, tmp_path, capsys):
    assert exit_code(prepare.main, ["deepglobe", "--root", tree]) == 0
    captured = capsys.readouterr()
    assert "deepglobe: 18 images in 6 classes: agriculture: 3" in captured.out
    assert "a.b.jpg" in captured.err and "ok: evaluate with sdaanet-eval" in captured.out
    for name in ("isic", "chest_xray", "fss1000_patnet"):
        assert exit_code(prepare.main, [name, "--root", tree]) == 0
    root = shutil.copytree(tree, tmp_path / "datapath")
    mask = root / "ISIC/ISIC2018_Task1_Training_GroundTruth/ISIC_2001_segmentation.png"
    mask.unlink()
    (root / "ISIC/ISIC2018_Task1-2_Training_Input/3/ISIC_3000.jpg").write_bytes(b"not a jpeg")
    capsys.readouterr()
    assert exit_code(prepare.main, ["isic", "--root", root]) == 2
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and str(mask) in errors[0] and "1 malformed" in errors[0]
    assert "missing files: 1" in captured.out and "ISIC_3000.jpg" in captured.out
    with pytest.raises(DataNotFoundError, match="ISIC_2001_segmentation.png"):
        datamodule("isic", root).setup("test")  # the datamodule names it too


def test_eval_on_deepglobe_and_report_rows(tree, tiny_ckpt, tmp_path):
    records = []
    for name in ("deepglobe", "fss1000_patnet"):
        overrides = ["experiment=cross_domain", "debug=tiny", f"data={name}",
                     f"paths.data_dir={tree}", f"paths.output_dir={tmp_path / name}",
                     f"ckpt_path={tiny_ckpt}", "data.val_episodes=6",
                     "data.min_area=1"]  # fmt: skip
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # 6 FSS episodes, not every image
            metrics = run_eval(compose_config(overrides, config_name="eval"), overrides)
        assert math.isfinite(metrics["test/class_miou"]) and math.isfinite(metrics["test/fbiou"])
        records.append(load_records([tmp_path / name / "metrics.json"])[0])
    deepglobe = records[0]
    p = deepglobe["protocol"]
    assert (p["dataset"], p["fold"], p["episodes"], p["seeds"], p["input_size"]) == (
        "deepglobe", 0, 6, [0], 65)  # fmt: skip
    assert deepglobe["classes"][:2] == ["agriculture", "urban"] and len(deepglobe["classes"]) == 6
    assert records[1]["protocol"]["dataset"] == "fss1000_patnet"
    table = build_table(records)
    assert [r.label for r in table.rows] == ["data=deepglobe", "data=fss1000_patnet"]
    assert table.folds == [0] and all(r.mean is not None for r in table.rows)
