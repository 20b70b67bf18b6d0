import time
import warnings

import hydra
import pytest
import torch
from omegaconf import OmegaConf

from sdaanet.config import CONF_DIR, compose_config
from sdaanet.data.datamodule import EpisodicDataModule
from sdaanet.data.modules import CocoDataModule, PascalDataModule, SyntheticDataModule
from sdaanet.errors import DataNotFoundError

CONF = CONF_DIR / "data"
REQUIRED = {
    "_target_", "fold", "ways", "train_size", "val_size", "batch_size",
    "val_batch_size", "num_workers", "val_episodes", "val_seed", "train_episodes", "pin_memory",
    "min_area", "train_transform", "val_transform", "strict_query_classes", "drop_novel_images",
    "return_raw_label", "selection", "holdout_fraction", "holdout_seed", "source",
}  # fmt: skip
N_TEST = {"synthetic": 5, "pascal": 5, "coco": 20}


def load(name, tmp_path, **overrides):
    cfg = OmegaConf.create({"paths": {"data_dir": str(tmp_path)}, "shot": 1, "seed": 7})
    cfg.data = compose_config([f"data={name}"]).data  # with the shared data/base/default.yaml
    for key, value in overrides.items():
        OmegaConf.update(cfg, f"data.{key}", value)
    return cfg


@pytest.mark.parametrize("name", ["synthetic", "pascal", "coco", "fss1000", "folder"])
def test_configs_have_the_shared_keys_and_instantiate(name, tmp_path):
    cfg = load(name, tmp_path)
    assert REQUIRED <= set(cfg.data.keys())
    base = OmegaConf.load(CONF / "base" / "default.yaml")
    own = OmegaConf.load(CONF / f"{name}.yaml")
    assert [k for k in own if k in base and own[k] == base[k]] == []  # only what differs
    dm = hydra.utils.instantiate(cfg.data, shot=cfg.shot, seed=cfg.seed)
    assert isinstance(dm, EpisodicDataModule) and dm.name == name
    assert dm.shot == 1 and dm.seed == 7
    if name in N_TEST:  # the others read their classes from the files
        assert dm.n_test_classes == N_TEST[name]
    if name != "synthetic":
        assert dm.root == tmp_path / name


@pytest.mark.parametrize("name", ["pascal", "coco", "fss1000", "folder"])
def test_missing_data_fails_fast_with_one_line(name, tmp_path):
    cfg = load(name, tmp_path)
    dm = hydra.utils.instantiate(cfg.data, shot=1, seed=0)
    t = time.perf_counter()
    with pytest.raises(DataNotFoundError) as err:
        dm.check()
    assert time.perf_counter() - t < 0.5
    msg = str(err.value)
    assert "\n" not in msg and str(tmp_path / name) in msg
    if name != "fss1000":  # FSS-1000 needs no preparation: the message names its layout
        assert f"sdaanet-data {name}" in msg
    with pytest.raises(DataNotFoundError):
        dm.setup("fit")


def test_synthetic_datamodule_end_to_end(tmp_path):
    small = {
        "num_workers": 0,
        "train_size": 33,
        "val_size": 25,
        "batch_size": 4,
        "val_batch_size": 3,
        "val_episodes": 7,
        "train_episodes": 10,
        "min_area": 64,
        "source.num_train": 150,
        "source.num_val": 100,
        "source.image_size": 64,
    }
    cfg = load("synthetic", tmp_path, **small)
    dm = hydra.utils.instantiate(cfg.data, shot=2, seed=3, _recursive_=False)  # as train.py
    dm.check()
    dm.setup("fit")
    train = dm.train_dataloader()
    batches = list(train)
    assert len(batches) == 2  # 10 episodes, batch 4, drop_last
    b = batches[0]
    assert b["query_image"].shape == (4, 3, 33, 33)
    assert b["support_images"].shape == (4, 2, 3, 33, 33)
    assert b["support_masks"].shape == (4, 2, 33, 33) and b["query_mask"].dtype == torch.int64
    assert set(b["class_id"].tolist()) <= set(dm.split_classes("train"))
    train.sampler.set_epoch(1)
    assert next(iter(train))["episode_index"].tolist() == [10, 11, 12, 13]
    val = list(dm.val_dataloader())
    assert [len(v["class_id"]) for v in val] == [3, 3, 1]
    assert set(torch.cat([v["class_id"] for v in val]).tolist()) <= set(dm.split_classes("val"))
    test = list(dm.test_dataloader())
    for v, t in zip(val, test, strict=True):
        assert torch.equal(v["query_image"], t["query_image"])
    assert dm.class_names[1] == "striped-disc"


def test_pin_memory_only_with_cuda(tmp_path, monkeypatch):
    small = {"num_workers": 0, "train_size": 33, "val_size": 33, "val_episodes": 2,
             "train_episodes": 2, "batch_size": 2, "min_area": 64, "source.num_train": 150,
             "source.num_val": 100, "source.image_size": 64, "pin_memory": True}  # fmt: skip
    dm = hydra.utils.instantiate(load("synthetic", tmp_path, **small).data, shot=1, seed=0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert dm.train_dataloader().pin_memory and dm.val_dataloader().pin_memory
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*pin_memory")
        for loader in (dm.train_dataloader(), dm.val_dataloader(), dm.test_dataloader()):
            assert loader.pin_memory is False
            next(iter(loader))


def test_bad_config_values():
    with pytest.raises(ValueError, match=r"fold must be an integer in 0\.\.3, got 4"):
        SyntheticDataModule(fold=4)
    with pytest.raises(ValueError, match="fold_style"):
        CocoDataModule(root="x", fold_style="random")
    with pytest.raises(ValueError, match=r"val_transform must be one of \['val', 'val_pad'"):
        SyntheticDataModule(val_transform="train")
    with pytest.raises(ValueError, match="data.root must be set for pascal"):
        PascalDataModule(root=None)


def test_coco_fold_styles_select_the_digest_classes():
    interleaved = CocoDataModule(root="x", fold=1)
    assert interleaved.split_classes("val") == list(range(2, 81, 4))
    contiguous = CocoDataModule(root="x", fold=1, fold_style="contiguous")
    assert contiguous.split_classes("test") == list(range(21, 41))
    assert len(contiguous.split_classes("train")) == 60


def test_selection_on_held_out_base_classes_never_touches_novel_classes(tmp_path):
    small = {"num_workers": 0, "train_size": 33, "val_size": 33, "val_episodes": 20,
             "min_area": 64, "source.num_train": 200, "source.num_val": 60,
             "source.image_size": 64, "selection": "base", "holdout_fraction": 0.25}  # fmt: skip
    cfg = load("synthetic", tmp_path, **small)
    dm = hydra.utils.instantiate(cfg.data, shot=1, seed=3, _recursive_=False)
    dm.setup("fit")
    novel, base = set(dm.split_classes("val")), set(dm.split_classes("train"))
    assert dm.n_val_classes == 15 and dm.n_test_classes == 5
    held_out = set(dm.holdout(200))
    assert len(held_out) == 50 and held_out == set(dm.holdout(200))  # deterministic
    val, train = dm.datasets["val"], dm.datasets["train"]
    assert set(val.index.queries) <= held_out and not held_out & set(train.index.queries)
    for pool in train.index.class_images.values():
        assert not held_out & set(pool)
    for k in range(20):
        plan = val.plan(k)
        assert plan.class_id in base and set(plan.supports[0]) <= held_out
    dm.setup("test")  # the test episodes are the novel-class ones, as with selection=novel
    test_ids = {int(c) for batch in dm.test_dataloader() for c in batch["class_id"]}
    assert test_ids <= novel and test_ids
