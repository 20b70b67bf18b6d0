"""`sdaanet-predict` and `predict()`: outputs at the query's size, K-shot, conversions, errors."""

import copy
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tests.helpers.cli import exit_code

from sdaanet import compose_config
from sdaanet.checkpoint import read_checkpoint
from sdaanet.errors import CheckpointError, PredictInputError
from sdaanet.predict import load_predictor, main, mask_labels, predict

SIZE = 65  # conf/debug/tiny.yaml: data.train_size / val_size
MSRC = Path(__file__).resolve().parents[2] / "shared" / "data" / "msrc-v2"


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


def test_real_photos_of_msrc(ckpt, tmp_path):
    if not MSRC.is_dir():
        pytest.skip(f"{MSRC} is absent")
    rows = [line.split("\t") for line in (MSRC / "classes.tsv").read_text().splitlines()[1:]]
    cow = int(next(i for i, name in rows if name == "cow"))
    label = np.asarray(Image.open(MSRC / "labels" / "1_11_s.png"))
    mask = _write(np.where(label == 255, 255, label == cow).astype(np.uint8), tmp_path / "c.png")
    query = MSRC / "images" / "2_17_s.jpg"  # portrait 213x320; the support is 320x213
    support = MSRC / "images" / "1_11_s.jpg"
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
    )
    with pytest.raises(CheckpointError, match=r"multi\.ckpt is a multi-class \(2-way\)"):
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


def test_demo_example_runs_predict_on_the_datasets_own_images(ckpt, tmp_path):
    from sdaanet.demo import predict_example
    from sdaanet.train import build_datamodule

    dm = build_datamodule(compose_config(["debug=tiny"]), stage="test")
    loader = dm.test_dataloader()
    path = predict_example(str(ckpt), loader.dataset, tmp_path)
    query, _ = loader.dataset.source.load(loader.dataset.plan(0).query)
    assert path == tmp_path / "episode0_query_overlay.png"
    assert Image.open(path).size == query.shape[1::-1]  # the image's own size, not 65
    assert set(np.unique(np.asarray(Image.open(tmp_path / "episode0_query_mask.png")))) <= {0, 255}
