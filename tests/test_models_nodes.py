"""The network node each experiment and data config resolves to is the one recorded before the
decoder bins moved from `data.ppm_scales` to `model.ppm_scales` (tests/golden/network_nodes.json:
entry config, then its command line), byte for byte: a checkpoint trained before and one trained
after record the same node."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from sdaanet.config import compose_config
from sdaanet.errors import ConfigError
from sdaanet.validate import precheck

NODES = json.loads((Path(__file__).parent / "golden" / "network_nodes.json").read_text())


@pytest.mark.parametrize("command", sorted(NODES))
def test_every_configuration_resolves_the_network_node_it_did(command):
    config_name, *overrides = command.split()
    cfg = compose_config(overrides, config_name=config_name)
    node = json.dumps(OmegaConf.to_container(cfg.model, resolve=True))
    assert node.replace(str(cfg.paths.root_dir), "<root>") == json.dumps(NODES[command])


def test_the_data_config_holds_no_decoder_bins():
    assert "ppm_scales" not in compose_config(["data=pascal"]).data


@pytest.mark.parametrize("key", ["data.ppm_scales", "+data.ppm_scales"])
def test_the_old_data_key_names_its_new_home(key):
    with pytest.raises(ConfigError) as err:
        precheck("train", [f"{key}=[60,30,15,8]"])
    assert str(err.value) == (
        "data.ppm_scales is now model.ppm_scales: pass model.ppm_scales=[60,30,15,8] instead"
    )
