"""sdaanet.convert: the authors' checkpoints -> ours, strictly (no network, no forward pass)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from tests.helpers.cli import exit_code
from tests.helpers.networks import build

from sdaanet.checkpoint import build_network, load_network_weights, network_from_checkpoint
from sdaanet.convert import convert_authors_checkpoint, eval_command, main
from sdaanet.models import AUTHORS_KEY_PREFIXES

# the shared/ folder beside the checkout (skipped where absent)
KEYS_DIR = Path(__file__).resolve().parents[2] / "shared" / "reference" / "state-dict-keys"
INVERSE = {ours: theirs for theirs, ours in AUTHORS_KEY_PREFIXES.items()}
TINY = {"backbone": "resnet18", "reduce_dim": 16, "ppm_scales": [60, 30, 15, 8]}


def authors_from_txt(name: str) -> dict[str, torch.Tensor]:
    path = KEYS_DIR / f"{name}.txt"
    if not path.exists():
        pytest.skip("authors' key lists not available")
    state = {}
    for i, line in enumerate(path.read_text().splitlines()):
        key, shape = line.split()
        if shape == "scalar":
            state[key] = torch.tensor(i, dtype=torch.int64)
        else:  # a distinct value per key (cheaper than random numbers for R101)
            state[key] = torch.full([int(d) for d in shape.split("x")], i + 0.5)
    return state


def to_authors(net_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our state_dict keys -> the authors' DataParallel names (the inverse rename)."""
    out = {}
    for key, value in net_state.items():
        ours = max((p for p in INVERSE if key.startswith(p)), key=len)
        out["module." + INVERSE[ours] + key[len(ours) :]] = value.clone()
    return out


@pytest.fixture(scope="module")
def tiny_authors():
    torch.manual_seed(0)
    return to_authors(build(TINY).state_dict())


@pytest.mark.parametrize(
    "name, model, backbone",
    [
        ("sdaanet_resnet50", "sdaanet", "resnet50"),
        ("sdaanet_resnet101", "sdaanet", "resnet101"),
        ("pfenet_resnet50", "pfenet", "resnet50_deep"),
    ],
)
def test_released_key_lists_round_trip(name, model, backbone):
    src = authors_from_txt(name)
    ckpt = convert_authors_checkpoint({"state_dict": src, "epoch": 3}, source=model)
    cfg = ckpt["hyper_parameters"]["description"]["network"]
    assert (cfg["_target_"], cfg["backbone"]["name"]) == ("sdaanet.models.SDAANet", backbone)
    assert cfg["reduce_dim"] == 256 and cfg["ppm_scales"] == [60, 30, 15, 8]
    assert (cfg["sdpm"], cfg["saam"]) == ((True, True) if model == "sdaanet" else (False, False))
    assert ckpt["sdaanet_converted_from"] == model
    assert ckpt["hyper_parameters"]["n_test_classes"] == 5
    net = build_network(cfg)
    load_network_weights(net, ckpt)  # strict
    ours = net.state_dict()
    pairs = {
        "module.layer0.0.weight": "backbone.layer0.0.weight",
        "module.init_merge.3.0.weight": "decoder.init_merge.3.0.weight",
        "module.layer3.5.bn2.running_var": "backbone.layer3.5.bn2.running_var",
        "module.layer0.1.num_batches_tracked": "backbone.layer0.1.num_batches_tracked",
    }
    if model == "sdaanet":
        pairs["module.simple_mask.2.stages.0.1.weight"] = "saam.simple_mask.2.stages.0.1.weight"
        pairs["module.se_supp.2.bias"] = "sdpm.se_supp.2.bias"
    for theirs, mine in pairs.items():
        assert torch.equal(ours[mine], src[theirs]), theirs
        assert torch.equal(ckpt["state_dict"]["net." + mine], src[theirs])


def test_tiny_round_trip_is_bitwise(tiny_authors):
    """Independent of the reference folder: our own net, renamed to the authors' keys and back."""
    ckpt = convert_authors_checkpoint({"state_dict": tiny_authors, "epoch": 3, "optimizer": {}})
    cfg = ckpt["hyper_parameters"]["description"]["network"]
    assert (cfg["backbone"]["name"], cfg["reduce_dim"], cfg["sdpm"]) == ("resnet18", 16, True)
    net = build_network(cfg)
    load_network_weights(net, ckpt)
    ours = net.state_dict()
    assert len(ours) == len(tiny_authors)
    theirs = {k.removeprefix("module."): v for k, v in tiny_authors.items()}
    for key, value in ours.items():
        ours_prefix = max((p for p in INVERSE if key.startswith(p)), key=len)
        src = theirs[INVERSE[ours_prefix] + key[len(ours_prefix) :]]
        assert value.dtype == src.dtype and torch.equal(value, src), key


def test_raw_state_dict_without_module_prefix(tiny_authors):
    raw = {k.removeprefix("module."): v for k, v in tiny_authors.items()}
    ckpt = convert_authors_checkpoint(raw, source="sdaanet", ppm_scales=[1.0, 0.5, 0.25, 0.125])
    cfg = ckpt["hyper_parameters"]["description"]["network"]
    assert cfg["ppm_scales"] == [1.0, 0.5, 0.25, 0.125]
    assert eval_command("x.ckpt", cfg) == "sdaanet-eval ckpt_path=x.ckpt data=coco"


def test_pfenet_ablation_variants_are_inferred():
    torch.manual_seed(0)
    state = to_authors(build({**TINY, "sdpm": False, "saam": False}).state_dict())
    cfg = convert_authors_checkpoint(state)["hyper_parameters"]["description"]["network"]
    assert (cfg["sdpm"], cfg["saam"]) == (False, False)
    state = to_authors(build({**TINY, "sdpm": True, "saam": False}).state_dict())
    cfg = convert_authors_checkpoint(state, "sdaanet")["hyper_parameters"]["description"]["network"]
    assert (cfg["sdpm"], cfg["saam"]) == (True, False)
    assert eval_command("x.ckpt", cfg) == "sdaanet-eval ckpt_path=x.ckpt data=pascal"


def test_unknown_key_is_named(tiny_authors):
    state = {**tiny_authors, "module.aux_head.weight": torch.zeros(2)}
    with pytest.raises(ValueError, match=r"unknown key.*aux_head\.weight"):
        convert_authors_checkpoint(state)


def test_wrong_shape_is_named(tiny_authors):
    state = dict(tiny_authors)
    state["module.cls.3.weight"] = torch.zeros(3, 16, 1, 1)
    with pytest.raises(ValueError, match=r"cls\.3\.weight.*\(3, 16, 1, 1\).*\(2, 16, 1, 1\)"):
        convert_authors_checkpoint(state)


def test_missing_key_is_named(tiny_authors):
    state = {k: v for k, v in tiny_authors.items() if k != "module.res2.2.weight"}
    with pytest.raises(ValueError, match=r"missing.*decoder\.res2\.2\.weight"):
        convert_authors_checkpoint(state)


def test_source_must_agree_with_keys(tiny_authors):
    with pytest.raises(ValueError, match=r"source='pfenet'.*'sdaanet'.*se_supp.*present.*34 input"):
        convert_authors_checkpoint(tiny_authors, source="pfenet")


def test_ppm_scales_count_must_match(tiny_authors):
    with pytest.raises(ValueError, match="4 decoder bins"):
        convert_authors_checkpoint(tiny_authors, ppm_scales=[60, 30])


def test_cli_writes_checkpoint(tiny_authors, tmp_path, capsys):
    src, out = tmp_path / "final.pth", tmp_path / "out" / "sdaanet.ckpt"
    torch.save({"epoch": 3, "state_dict": tiny_authors}, src)
    assert exit_code(main, [src, out, "--source", "sdaanet"]) == 0
    line = capsys.readouterr().out.strip()
    assert "\n" not in line and line.endswith(
        f"evaluate with: sdaanet-eval ckpt_path={out} data=pascal"
    )
    assert sorted(p.name for p in out.parent.iterdir()) == ["sdaanet.ckpt"]  # no .tmp left
    ckpt = torch.load(out, map_location="cpu", weights_only=True)
    net, info = network_from_checkpoint(out)  # the converted file describes its network
    assert info["network"] == ckpt["hyper_parameters"]["description"]["network"]


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"not a torch file", "is not a torch checkpoint"),
        (b"hello world\n", r"is not a torch checkpoint, or is truncated \(KeyError: 101\)"),
        (None, "not found"),
    ],
)
def test_cli_bad_input_exits_2(tmp_path, capsys, content, says):
    src, out = tmp_path / "bad.pth", tmp_path / "out.ckpt"
    if content is not None:
        src.write_bytes(content)
    assert exit_code(main, [src, out]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert re.search(f"input checkpoint {re.escape(str(src))} {says}", err) and not out.exists()


def test_cli_pickled_objects_need_trust_pickle(tiny_authors, tmp_path, capsys):
    """The authors' files may pickle extra objects: refused unless --trust-pickle is given."""
    import argparse

    src, out = tmp_path / "final.pth", tmp_path / "out.ckpt"
    torch.save({"state_dict": tiny_authors, "args": argparse.Namespace(layers=18)}, src)
    assert exit_code(main, [src, out]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and not out.exists()
    assert re.match(
        rf"error: input checkpoint {re.escape(str(src))} holds pickled Python objects "
        r"\(argparse\.Namespace\).*arbitrary code.*pass --trust-pickle",
        err,
    )
    assert exit_code(main, [src, out, "--trust-pickle"]) == 0
    assert out.is_file()


def test_trust_pickle_help_names_the_risk(capsys):
    assert exit_code(main, ["--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--trust-pickle" in help_text and "arbitrary code" in help_text


def test_cli_unknown_keys_exit_2(tmp_path, capsys):
    src, out = tmp_path / "other.pth", tmp_path / "out.ckpt"
    torch.save({"module.fc.weight": torch.zeros(2, 2)}, src)
    assert exit_code(main, [src, out]) == 2
    err = capsys.readouterr().err
    assert "fc.weight" in err and err.count("\n") == 1 and not out.exists()
