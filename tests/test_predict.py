"""`sdaanet-predict` and `predict()`: outputs at the query's size, K-shot, conversions, errors;
multi-class checkpoints: label maps, support order, counts, the label/overlay/legend PNGs."""

import copy
import os
import subprocess
import sys
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from tests.helpers.cli import exit_code

from sdaanet import compose_config
from sdaanet.checkpoint import network_from_checkpoint, read_checkpoint
from sdaanet.data.transforms import IMAGENET_MEAN, IMAGENET_STD, EpisodeTransform
from sdaanet.errors import CheckpointError, PredictInputError
from sdaanet.predict import load_predictor, main, predict
from sdaanet.predict_io import mask_labels
from sdaanet.viz import class_colours

SIZE = 65  # conf/debug/tiny.yaml: data.train_size / val_size


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """65x65 inputs gain nothing from more threads, which crawl on a busy machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def ckpt(tiny_ckpt) -> Path:
    """The shared 1-shot tiny checkpoint (tests/conftest.py)."""
    return tiny_ckpt


@pytest.fixture(scope="module")
def predictor(ckpt):
    return load_predictor(ckpt, "cpu")


def _variant(ckpt: Path, path: Path, **network) -> Path:
    """A copy of `ckpt` with its network node updated (the weights do not depend on the shot)."""
    c = copy.deepcopy(read_checkpoint(ckpt))
    description = c["hyper_parameters"]["description"]
    description["network"].update(network)
    description["shot"] = description["network"]["shot"]
    torch.save(c, path)
    return path


def _write(array: np.ndarray, path: Path) -> Path:
    Image.fromarray(array).save(path)
    return path


@pytest.fixture
def files(tmp_path) -> dict[str, Path]:
    """A 90x50 PNG query and a 40x70 JPEG support with its 0/255 PNG mask (W x H)."""
    rng = np.random.default_rng(0)
    query = rng.integers(0, 256, (50, 90, 3), dtype=np.uint8)
    query[10:40, 20:60] = (200, 60, 40)
    support = rng.integers(0, 256, (70, 40, 3), dtype=np.uint8)
    support[20:50, 10:30] = (200, 60, 40)
    mask = np.zeros((70, 40), np.uint8)
    mask[20:50, 10:30] = 255
    return {
        "query": _write(query, tmp_path / "q.png"),
        "support": _write(support, tmp_path / "s.jpg"),
        "mask": _write(mask, tmp_path / "m.png"),
    }


def _args(ckpt: Path, files: dict[str, Path], out: Path) -> list[str]:
    return [
        "--ckpt", str(ckpt), "--support", str(files["support"]), str(files["mask"]),
        "--query", str(files["query"]), "--out", str(out), "--size", str(SIZE),
    ]  # fmt: skip


def _read(path: Path) -> tuple[str, np.ndarray]:
    with Image.open(path) as im:
        return im.mode, np.asarray(im)


def _rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def _check_outputs(out: Path, stem: str, hw: tuple[int, int]) -> np.ndarray:
    """Both PNGs exist at the query's size H x W and no temp file is left; returns the mask."""
    mode, mask = _read(out / f"{stem}_mask.png")
    overlay_mode, overlay = _read(out / f"{stem}_overlay.png")
    assert (mode, mask.shape) == ("L", hw)
    assert (overlay_mode, overlay.shape) == ("RGB", (*hw, 3))
    assert set(np.unique(mask)) <= {0, 255}
    assert not list(out.glob("*.tmp"))
    return mask


def test_cli_writes_mask_and_overlay_at_query_size_equal_to_the_api(ckpt, files, tmp_path, capsys):
    out = tmp_path / "new" / "out"
    assert main(_args(ckpt, files, out)) == 0
    assert "q_mask.png" in capsys.readouterr().out
    mask = _check_outputs(out, "q", (50, 90))
    assert sorted(p.name for p in out.iterdir()) == ["q_mask.png", "q_overlay.png"]
    api = predict(ckpt, [(files["support"], files["mask"])], files["query"], size=SIZE)
    assert api.dtype == np.uint8 and api.shape == (50, 90) and set(np.unique(api)) <= {0, 1}
    np.testing.assert_array_equal(mask, api * 255)
    # the overlay is the query where the prediction is background, blended where foreground
    _, overlay = _read(out / "q_overlay.png")
    query = _rgb(files["query"])
    np.testing.assert_array_equal(overlay[api == 0], query[api == 0])
    assert (overlay[api == 1] != query[api == 1]).any(axis=1).all()


def test_console_script_in_a_subprocess(ckpt, files, tmp_path):
    script = Path(sys.executable).with_name("sdaanet-predict")
    args = [str(script), *_args(ckpt, files, tmp_path / "out")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(args, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    mask = _check_outputs(tmp_path / "out", "q", (50, 90))
    api = predict(ckpt, [(files["support"], files["mask"])], files["query"], size=SIZE)
    np.testing.assert_array_equal(mask, api * 255)


def test_real_photos_of_msrc(ckpt, tmp_path, msrc_root):
    rows = [line.split("\t") for line in (msrc_root / "classes.tsv").read_text().splitlines()[1:]]
    cow = int(next(i for i, name in rows if name == "cow"))
    label = np.asarray(Image.open(msrc_root / "labels" / "1_11_s.png"))
    mask = _write(np.where(label == 255, 255, label == cow).astype(np.uint8), tmp_path / "c.png")
    query = msrc_root / "images" / "2_17_s.jpg"  # portrait 213x320; the support is 320x213
    support = msrc_root / "images" / "1_11_s.jpg"
    out = tmp_path / "out"
    files = {"query": query, "support": support, "mask": mask}
    assert main(_args(ckpt, files, out)) == 0
    _check_outputs(out, "2_17_s", (320, 213))


def test_k_shot_checkpoint_takes_exactly_k_supports(ckpt, predictor, files, tmp_path, capsys):
    pair = (files["support"], files["mask"])
    with pytest.raises(PredictInputError, match="checkpoint is 1-shot, got 2 supports: pass"):
        predictor.predict([pair, pair], files["query"], size=SIZE)
    second = ["--support", str(files["support"]), str(files["mask"])]
    assert exit_code(main, [*_args(ckpt, files, tmp_path / "out"), *second]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: checkpoint is 1-shot, got 2 supports") and err.count("\n") == 1
    two = load_predictor(_variant(ckpt, tmp_path / "two.ckpt", shot=2))
    flipped = (_rgb(files["support"])[::-1], _read(files["mask"])[1][::-1])
    assert two.predict([pair, flipped], files["query"], size=SIZE).shape == (50, 90)
    with pytest.raises(PredictInputError, match="checkpoint is 2-shot, got 1 support:"):
        two.predict([pair], files["query"], size=SIZE)


def _to16(x: np.ndarray, jitter: np.ndarray) -> np.ndarray:
    """16-bit x * 257 + jitter (|jitter| < 128.5): scaling to 8 bits must give x back."""
    return (x.astype(np.int64) * 257 + jitter).clip(0, 65535).astype(np.uint16)


@pytest.mark.parametrize("kind", ["RGBA", "L", "I;16", "uint16", "float"])
def test_query_conversions_predict_like_their_8bit_rgb(predictor, files, tmp_path, kind):
    rgb = _rgb(files["query"])
    gray = np.asarray(Image.open(files["query"]).convert("L"))
    rng = np.random.default_rng(1)
    alpha = rng.integers(0, 256, rgb.shape[:2], dtype=np.uint8)
    jitter = rng.integers(-128, 128, rgb.shape)
    path = tmp_path / "query.png"
    if kind == "RGBA":
        query, same = _write(np.dstack([rgb, alpha]), path), rgb
    elif kind == "L":
        query, same = _write(gray, path), np.dstack([gray] * 3)
    elif kind == "I;16":
        query, same = _write(_to16(gray, jitter[..., 0]), path), np.dstack([gray] * 3)
    elif kind == "uint16":
        query, same = _to16(rgb, jitter), rgb
    else:
        query, same = rgb / 255, rgb
    if isinstance(query, Path):
        assert Image.open(query).mode == kind
    pair = [(files["support"], files["mask"])]
    got = predictor.predict_proba(pair, query, size=SIZE)
    assert got.shape == (50, 90)
    np.testing.assert_allclose(got, predictor.predict_proba(pair, same, size=SIZE), atol=1e-6)


def test_the_network_sees_what_an_evaluation_episode_feeds_it(ckpt, predictor, files):
    """Predict's inputs are the val transform's (`sdaanet.data.transforms`), bit for bit."""
    transform = EpisodeTransform("val", SIZE)
    query = _rgb(files["query"])
    image, label = transform(_rgb(files["support"]), (_read(files["mask"])[1] > 0).astype(np.uint8))
    net, _ = network_from_checkpoint(ckpt)
    with torch.inference_mode():
        q = torch.from_numpy(transform(query, np.zeros((50, 90), np.uint8))[0])[None]
        logits = net(q, torch.from_numpy(image)[None, None], torch.from_numpy(label)[None, None])
    logits = F.interpolate(logits, (50, 90), mode="bilinear", align_corners=True)[0]
    got = predictor.logits([(files["support"], files["mask"])], files["query"], size=SIZE)
    torch.testing.assert_close(got, logits, rtol=0, atol=0)


def test_mask_rules():
    np.testing.assert_array_equal(mask_labels(np.array([[0, 255]])), [[0, 1]])
    np.testing.assert_array_equal(mask_labels(np.array([[0, 1, 255, 7]])), [[0, 1, 255, 1]])
    np.testing.assert_array_equal(mask_labels(np.array([[[0, 0, 0], [0, 9, 0]]])), [[0, 1]])
    rgba = np.array([[[0, 0, 0, 255], [5, 0, 0, 255], [5, 0, 0, 0]]])
    np.testing.assert_array_equal(mask_labels(rgba), [[0, 1, 0]])
    np.testing.assert_array_equal(mask_labels(np.array([[False, True]])), [[0, 1]])


def test_rgb_palette_and_array_masks_and_pil_images(predictor, files, tmp_path):
    mask = _read(files["mask"])[1]
    red = np.zeros((*mask.shape, 3), np.uint8)
    red[..., 0] = mask
    palette = Image.frombytes("P", mask.shape[::-1], (mask > 0).astype(np.uint8).tobytes())
    palette.putpalette([0, 0, 0, 255, 0, 0])  # VOC style: the indices are the labels
    palette.save(tmp_path / "p.png")
    masks = [_write(red, tmp_path / "red.png"), tmp_path / "p.png", mask > 0, mask // 255]
    expected = predictor.predict_proba([(files["support"], files["mask"])], files["query"], SIZE)
    for m in masks:
        pair = [(_rgb(files["support"]), m)]
        got = predictor.predict_proba(pair, Image.open(files["query"]), SIZE)
        np.testing.assert_allclose(got, expected, atol=1e-6)


def _bad(files: dict[str, Path], tmp_path: Path, case: str) -> tuple[dict[str, Path], str]:
    """`files` with one defect, and a pattern the error message must match."""
    f = dict(files)
    if case == "size mismatch":
        f["mask"] = _write(np.full((40, 70), 255, np.uint8), tmp_path / "wide.png")
        return f, r"mask .*wide\.png is 70x40 \(WxH\) but support 1 image .*s\.jpg is 40x70"
    if case == "empty mask":
        f["mask"] = _write(np.zeros((70, 40), np.uint8), tmp_path / "empty.png")
        return f, r"empty\.png has no foreground pixel"
    if case == "vanishing foreground":  # nearest 200 -> 65 samples rows/columns 0, 3, 6, ...
        dot = np.zeros((200, 200), np.uint8)
        dot[1, 1] = 255
        f["support"] = _write(np.zeros((200, 200, 3), np.uint8), tmp_path / "big.png")
        f["mask"] = _write(dot, tmp_path / "dot.png")
        return f, r"dot\.png: its 1-pixel foreground vanishes .* 65x65; use a larger --size"
    if case == "missing query":
        f["query"] = tmp_path / "nope.png"
        return f, r"query image .*nope\.png not found"
    if case == "missing mask":
        f["mask"] = tmp_path / "gone.png"
        return f, r"support 1 mask .*gone\.png not found"
    if case == "not an image":
        f["support"] = tmp_path / "junk.jpg"
        f["support"].write_bytes(b"not an image at all")
        return f, r"cannot read support 1 image .*junk\.jpg"
    if case == "truncated jpeg":
        data = files["support"].read_bytes()
        f["support"] = tmp_path / "cut.jpg"
        f["support"].write_bytes(data[:-2])  # all but the end-of-image marker
        return f, r"cannot read support 1 image .*cut\.jpg: truncated JPEG"
    data = files["query"].read_bytes()
    f["query"] = tmp_path / "cut.png"
    f["query"].write_bytes(data[: len(data) // 2])
    return f, r"cannot read query image .*cut\.png: .*truncated"


BAD = ["size mismatch", "empty mask", "vanishing foreground", "missing query", "missing mask",
       "not an image", "truncated", "truncated jpeg"]  # fmt: skip


@pytest.mark.parametrize("case", BAD)
def test_bad_inputs_name_the_file_in_one_line(predictor, ckpt, files, tmp_path, capsys, case):
    f, pattern = _bad(files, tmp_path, case)
    with pytest.raises(PredictInputError, match=pattern):
        predictor.predict([(f["support"], f["mask"])], f["query"], size=SIZE)
    if case in ("size mismatch", "truncated", "truncated jpeg"):  # the CLI prints the same message
        assert exit_code(main, _args(ckpt, f, tmp_path / "out")) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
        assert not (tmp_path / "out").exists()


def test_bad_checkpoints_sizes_and_devices(ckpt, files, tmp_path, monkeypatch):
    pair = [(files["support"], files["mask"])]
    with pytest.raises(CheckpointError, match=r"not found: .*missing\.ckpt"):
        predict(tmp_path / "missing.ckpt", pair, files["query"])
    (tmp_path / "bad.ckpt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match=r"cannot read checkpoint .*bad\.ckpt"):
        predict(tmp_path / "bad.ckpt", pair, files["query"])
    multi = _variant(
        ckpt, tmp_path / "multi.ckpt", _target_="sdaanet.models.MultiClassSDAANet", ways=2
    )  # a binary network's weights relabelled 2-way
    with pytest.raises(CheckpointError, match=r"multi\.ckpt: checkpoint does not match .*proto"):
        load_predictor(multi)
    for size in (64, 72, 33):
        with pytest.raises(PredictInputError, match=f"size {size} is not accepted"):
            predict(ckpt, pair, files["query"], size=size)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(PredictInputError, match="'cuda' requested but CUDA is not available"):
        load_predictor(ckpt, "cuda")
    with pytest.raises(PredictInputError, match="'tpu' is not a device"):
        load_predictor(ckpt, "tpu")


def test_default_size_is_the_checkpoints_evaluation_size(ckpt, tmp_path):
    assert load_predictor(ckpt).size == SIZE  # recorded from data.val_size at training
    old = copy.deepcopy(read_checkpoint(ckpt))
    old["hyper_parameters"]["description"]["input_size"] = None  # e.g. a converted checkpoint
    torch.save(old, tmp_path / "old.ckpt")
    assert load_predictor(tmp_path / "old.ckpt").size == 473


def test_a_synthetic_data_checkpoint_warns_in_one_stderr_line(ckpt, files, tmp_path, capsys):
    assert main(_args(ckpt, files, tmp_path / "a")) == 0
    err = capsys.readouterr().err
    assert err == (
        f"warning: {ckpt} was trained on the synthetic shapes at {SIZE} px (--size defaults to "
        "it): a plumbing check, not a model of real photos (docs/predict.md)\n"
    )
    real = copy.deepcopy(read_checkpoint(ckpt))  # the same weights, recorded as PASCAL-trained
    real["hyper_parameters"]["description"]["data"]["_target_"] = (
        "sdaanet.data.modules.PascalDataModule"
    )
    torch.save(real, tmp_path / "real.ckpt")
    assert main(_args(tmp_path / "real.ckpt", files, tmp_path / "b")) == 0
    assert capsys.readouterr().err == ""
    np.testing.assert_array_equal(_read(tmp_path / "a" / "q_mask.png")[1],
                                  _read(tmp_path / "b" / "q_mask.png")[1])  # fmt: skip


def test_demo_example_runs_predict_on_the_datasets_own_images(ckpt, tmp_path):
    from sdaanet.build import build_datamodule
    from sdaanet.demo import predict_example

    dm = build_datamodule(compose_config(["debug=tiny"]), stage="test")
    loader = dm.test_dataloader()
    path = predict_example(str(ckpt), loader.dataset, tmp_path)
    query, _ = loader.dataset.source.load(loader.dataset.plan(0).query)
    assert path == tmp_path / "episode0_query_overlay.png"
    assert Image.open(path).size == query.shape[1::-1]  # the image's own size, not 65
    assert set(np.unique(np.asarray(Image.open(tmp_path / "episode0_query_mask.png")))) <= {0, 255}


# ------------------------------------------------------------------------------ multi-class
@pytest.fixture(scope="module")
def mc_ckpt(tmp_path_factory) -> Path:
    """A 2-way 1-shot tiny checkpoint (`model=multiclass data.ways=2`): one training step."""
    from sdaanet.train import fit

    out = tmp_path_factory.mktemp("tiny-multiclass")
    overrides = ["debug=tiny", "model=multiclass", "data.ways=2", f"paths.output_dir={out}",
                 f"paths.data_dir={out / 'data'}", "data.train_episodes=2",
                 "+trainer.limit_val_batches=0", "callbacks.model_checkpoint=null"]  # fmt: skip
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "backbone .* has RANDOM weights")
        fit(compose_config(overrides))
    return out / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="module")
def boosted(mc_ckpt) -> Path:
    """`mc_ckpt` with its class-evidence weights x 1e6: class n's logit is then its own prior and
    SAAM map (from support n alone), so the labels follow the supports' order exactly."""
    c = copy.deepcopy(read_checkpoint(mc_ckpt))
    c["state_dict"]["net.evidence"] *= 1e6
    path = mc_ckpt.with_name("boosted.ckpt")
    torch.save(c, path)
    return path


@pytest.fixture
def mc_files(tmp_path) -> dict[str, Path]:
    """A 90x50 query with a red and a blue patch; a red (40x70) and a blue (60x60) support with
    their masks (0/255 and 0/1 PNGs)."""
    rng = np.random.default_rng(0)
    query = rng.integers(0, 256, (50, 90, 3), dtype=np.uint8)
    query[5:30, 5:40] = (200, 60, 40)
    query[20:45, 50:85] = (40, 80, 200)
    red = rng.integers(0, 256, (70, 40, 3), dtype=np.uint8)
    red[20:50, 10:30] = (200, 60, 40)
    blue = rng.integers(0, 256, (60, 60, 3), dtype=np.uint8)
    blue[10:40, 10:40] = (40, 80, 200)
    red_mask, blue_mask = np.zeros((70, 40), np.uint8), np.zeros((60, 60), np.uint8)
    red_mask[20:50, 10:30] = 255
    blue_mask[10:40, 10:40] = 1
    return {
        "query": _write(query, tmp_path / "q.png"),
        "red": _write(red, tmp_path / "red.png"),
        "red_mask": _write(red_mask, tmp_path / "red_mask.png"),
        "blue": _write(blue, tmp_path / "blue.png"),
        "blue_mask": _write(blue_mask, tmp_path / "blue_mask.png"),
    }


def _pairs(f: dict[str, Path], *colours: str) -> list[tuple[Path, Path]]:
    return [(f[c], f[f"{c}_mask"]) for c in colours]


def _mc_args(ckpt: Path, f: dict[str, Path], out: Path, *colours: str) -> list[str]:
    supports = [a for pair in _pairs(f, *colours) for a in ("--support", *map(str, pair))]
    return ["--ckpt", str(ckpt), *supports, "--query", str(f["query"]), "--out", str(out)]


def _net_input(path: Path) -> torch.Tensor:
    """The test transform, written out: warp to 65x65 (bilinear), ImageNet-normalise."""
    rgb = cv2.resize(_rgb(path).astype(np.float32) / 255, (SIZE, SIZE))
    rgb = (rgb - np.array(IMAGENET_MEAN, np.float32)) / np.array(IMAGENET_STD, np.float32)
    return torch.from_numpy(rgb).permute(2, 0, 1)


def _net_mask(path: Path) -> torch.Tensor:
    small = cv2.resize(_read(path)[1], (SIZE, SIZE), interpolation=cv2.INTER_NEAREST)
    return torch.from_numpy((small > 0).astype(np.int64))


def test_multiclass_label_map_is_the_argmax_of_the_networks_n_plus_1_logits(boosted, mc_files):
    f = mc_files
    predictor = load_predictor(boosted)
    assert (predictor.ways, predictor.shot) == (2, 1)
    labels = predictor.predict(_pairs(f, "red", "blue"), f["query"])
    assert labels.dtype == np.uint8 and labels.shape == (50, 90)
    assert {1, 2} <= set(np.unique(labels)) <= {0, 1, 2}
    net, _ = network_from_checkpoint(boosted)
    images = torch.stack([_net_input(f["red"]), _net_input(f["blue"])])[None, :, None]
    masks = torch.stack([_net_mask(f["red_mask"]), _net_mask(f["blue_mask"])])[None, :, None]
    with torch.inference_mode():
        logits = net(_net_input(f["query"])[None], images, masks)  # (1, N+1, 65, 65)
    assert logits.shape == (1, 3, SIZE, SIZE)
    logits = F.interpolate(logits, (50, 90), mode="bilinear", align_corners=True)
    np.testing.assert_array_equal(labels, logits[0].argmax(0).numpy())
    proba = predictor.predict_proba(_pairs(f, "red", "blue"), f["query"])
    assert proba.shape == (3, 50, 90) and proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(0), 1, atol=1e-5)
    np.testing.assert_array_equal(proba.argmax(0), labels)


def test_swapping_the_supports_swaps_labels_1_and_2(boosted, mc_files):
    predictor = load_predictor(boosted)
    first = predictor.predict(_pairs(mc_files, "red", "blue"), mc_files["query"])
    swapped = predictor.predict(_pairs(mc_files, "blue", "red"), mc_files["query"])
    assert {1, 2} <= set(np.unique(first))
    np.testing.assert_array_equal(swapped, np.array([0, 2, 1], np.uint8)[first])


def test_two_way_two_shot_supports_are_read_class_major(boosted, mc_files, tmp_path):
    """[red, red', blue, blue'] is class 1 = (red, red'), class 2 = (blue, blue'); read
    shot-major it would be class 1 = (red, blue), class 2 = (red', blue'): other labels."""
    f = dict(mc_files)
    for c in ("red", "blue"):  # a second, different shot of each class: mirrored
        f[f"{c}2"] = _write(np.fliplr(_rgb(f[c])).copy(), tmp_path / f"{c}2.png")
        f[f"{c}2_mask"] = _write(np.fliplr(_read(f[f"{c}_mask"])[1]).copy(), tmp_path / f"{c}m.png")
    ckpt = _variant(boosted, tmp_path / "two-shot.ckpt", shot=2)
    labels = load_predictor(ckpt).predict(_pairs(f, "red", "red2", "blue", "blue2"), f["query"])
    flat = ["red", "red2", "blue", "blue2"]
    images = torch.stack([_net_input(f[c]) for c in flat])[None]  # (1, N*K, 3, S, S)
    masks = torch.stack([_net_mask(f[f"{c}_mask"]) for c in flat])[None]
    net, _ = network_from_checkpoint(ckpt)

    def by_hand(shot_major: bool) -> np.ndarray:
        grouped = [t.unflatten(1, (2, 2)) for t in (images, masks)]  # (B, N, K, ...)
        if shot_major:  # read as (B, K, N, ...)
            grouped = [t.transpose(1, 2) for t in grouped]
        with torch.inference_mode():
            logits = net(_net_input(f["query"])[None], *grouped)
        logits = F.interpolate(logits, (50, 90), mode="bilinear", align_corners=True)
        return logits[0].argmax(0).numpy()

    expected = by_hand(shot_major=False)
    assert {1, 2} <= set(np.unique(labels))
    np.testing.assert_array_equal(labels, expected)
    assert (by_hand(shot_major=True) != expected).mean() > 0.05  # the order changes the labels


def test_multiclass_counts_names_and_every_supports_conversions(
    mc_ckpt, ckpt, mc_files, tmp_path, capsys
):
    f = mc_files
    predictor = load_predictor(mc_ckpt)
    with pytest.raises(PredictInputError, match=r"2-way 1-shot, got 1 support: pass exactly 2 "):
        predictor.predict(_pairs(f, "red"), f["query"])
    with pytest.raises(PredictInputError, match=r"2-way 1-shot, got 3 supports: pass exactly 2 "):
        predictor.predict(_pairs(f, "red", "blue", "red"), f["query"])
    two = load_predictor(_variant(mc_ckpt, tmp_path / "two.ckpt", shot=2))
    with pytest.raises(PredictInputError, match=r"2-way 2-shot, got 2 supports: .* 4 .*2 per"):
        two.predict(_pairs(f, "red", "blue"), f["query"])
    assert two.predict(_pairs(f, "red", "red", "blue", "blue"), f["query"]).shape == (50, 90)
    for argv, message in [
        (_mc_args(mc_ckpt, f, tmp_path / "o", "red"), "checkpoint is 2-way 1-shot, got 1 support"),
        ([*_mc_args(mc_ckpt, f, tmp_path / "o", "red", "blue"), "--names", "a", "b", "c"],
         "checkpoint is 2-way, got 3 names: pass one per class (--names NAME1 NAME2)"),
        ([*_args(ckpt, {**f, "support": f["red"], "mask": f["red_mask"]}, tmp_path / "o"),
          "--names", "cat"], "--names is for multi-class checkpoints; this one is binary"),
    ]:  # fmt: skip
        assert exit_code(main, argv) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {message}") and err.count("\n") == 1
    assert not (tmp_path / "o").exists()
    # the second support goes through the same conversions and checks as the first
    rgba = np.dstack([_rgb(f["blue"]), np.full((60, 60), 7, np.uint8)])
    palette = Image.fromarray(_read(f["blue_mask"])[1], "L").convert("P")
    pairs = [(f["red"], f["red_mask"]), (_write(rgba, tmp_path / "rgba.png"), palette)]
    np.testing.assert_allclose(
        predictor.predict_proba(pairs, f["query"]),
        predictor.predict_proba(_pairs(f, "red", "blue"), f["query"]),
        atol=1e-6,
    )
    empty = _write(np.zeros((60, 60), np.uint8), tmp_path / "empty.png")
    with pytest.raises(PredictInputError, match=r"support 2 mask .*empty\.png has no foreground"):
        predictor.predict([pairs[0], (f["blue"], empty)], f["query"])


def test_multiclass_multiscale_sums_the_class_probabilities(mc_ckpt, mc_files):
    predictor = load_predictor(mc_ckpt, multiscale=[SIZE, 81])
    proba = predictor.predict_proba(_pairs(mc_files, "red", "blue"), mc_files["query"])
    assert proba.shape == (3, 50, 90)
    np.testing.assert_allclose(proba.sum(0), 1, atol=1e-5)
    labels = predictor.predict(_pairs(mc_files, "red", "blue"), mc_files["query"])
    np.testing.assert_array_equal(labels, proba.argmax(0))


def test_multiclass_cli_writes_labels_overlay_and_legend(boosted, mc_files, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([*_mc_args(boosted, mc_files, out, "red", "blue"), "--names", "cat", "dog"]) == 0
    printed = capsys.readouterr().out.splitlines()
    red, cyan = class_colours(2)
    hexes = [f"#{r:02x}{g:02x}{b:02x}" for r, g, b in (red, cyan)]
    assert printed == [
        f"wrote {out / 'q_labels.png'}, {out / 'q_overlay.png'} and {out / 'q_legend.png'}",
        f"legend: 0 = background, 1 = cat ({hexes[0]}), 2 = dog ({hexes[1]})",
    ]
    mode, labels = _read(out / "q_labels.png")
    assert (mode, labels.shape) == ("L", (50, 90))
    api = predict(boosted, _pairs(mc_files, "red", "blue"), mc_files["query"])
    np.testing.assert_array_equal(labels, api)
    overlay_mode, overlay = _read(out / "q_overlay.png")
    assert (overlay_mode, overlay.shape) == ("RGB", (50, 90, 3))
    query = _rgb(mc_files["query"]).astype(np.float32)
    for n, colour in enumerate([(0, 0, 0), red, cyan]):
        where = labels == n
        blended = query[where] if n == 0 else 0.5 * query[where] + 0.5 * np.array(colour)
        np.testing.assert_array_equal(overlay[where], blended.astype(np.uint8))
    legend_mode, legend = _read(out / "q_legend.png")
    assert legend_mode == "RGB" and legend.shape[0] >= 2 * 16
    for colour in (red, cyan):  # each class's swatch
        assert (legend == colour).all(axis=2).sum() >= 100
    assert not list(out.glob("*.tmp"))
    assert main(_mc_args(boosted, mc_files, tmp_path / "default", "red", "blue")) == 0
    assert "1 = class 1 (#" in capsys.readouterr().out
