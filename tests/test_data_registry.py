"""One registry knows the datasets: every data config, datamodule, fold count and protocol map
agrees with `sdaanet.data.registry`."""

import pytest
from omegaconf import OmegaConf

import sdaanet.data
from sdaanet.config import CONF_DIR
from sdaanet.data import modules
from sdaanet.data.folds import MSRC_FOLDS, NUM_CLASSES, class_names
from sdaanet.data.modules.cross_domain import _CrossDomainDataModule
from sdaanet.data.prepare import crossdomain
from sdaanet.data.registry import DATASETS, dataset_of, names

CONFIGS = {p.stem: p for p in (CONF_DIR / "data").glob("*.yaml")}


def test_every_data_config_is_a_registry_entry_and_names_its_datamodule():
    assert sorted(CONFIGS) == sorted(DATASETS)
    for name, path in CONFIGS.items():
        assert OmegaConf.load(path)._target_ == DATASETS[name].target, name


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_each_datamodule_class_agrees_with_its_entry(name):
    entry = DATASETS[name]
    cls = getattr(modules, entry.datamodule)
    assert cls is getattr(sdaanet.data, entry.datamodule)
    assert cls.name == name and dataset_of(entry.target) is entry
    assert issubclass(cls, _CrossDomainDataModule) == (entry.kind == "cross-domain")
    if name == "msrc":  # its folds are fixed lists, given to the folder datamodule
        assert entry.num_folds == len(MSRC_FOLDS)
    elif entry.num_folds is not None:
        assert cls.num_folds == entry.num_folds
    if entry.num_classes is not None:
        assert NUM_CLASSES[name] == len(class_names(name)) == entry.num_classes


def test_the_data_package_lists_every_datamodule():
    assert set(sdaanet.data.DATAMODULES) == {"EpisodicDataModule"} | {
        d.datamodule for d in DATASETS.values()
    }
    assert set(names("cross-domain")) == set(crossdomain.DATASETS) == {
        "deepglobe", "isic", "chest_xray", "fss1000_patnet"
    }  # fmt: skip


def test_protocol_maps_name_registry_datasets():
    for path in (CONF_DIR / "eval" / "protocol").glob("*.yaml"):
        preset = OmegaConf.to_container(OmegaConf.load(path))
        for key in ("episodes", "size", "ignore_boundary"):
            if isinstance(preset[key], dict):
                assert set(preset[key]) - {"default"} <= set(DATASETS), (path.name, key)


def test_cross_domain_configs_differ_only_in_their_dataset():
    for name in ("deepglobe", "isic", "chest_xray"):
        node = OmegaConf.to_container(OmegaConf.load(CONFIGS[name]))
        assert node == {
            "defaults": ["base/cross_domain@_here_", "_self_"],
            "_target_": DATASETS[name].target,
        }


def test_unknown_names_and_targets():
    assert dataset_of("mypackage.MyDataModule") is None and dataset_of(None) is None
    with pytest.raises(ValueError, match="kind must be one of"):
        names("test-only")
