"""sdaanet.io: atomic writes, and the one reader of images, labels and torch files."""

from __future__ import annotations

import argparse
import csv
import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from sdaanet.errors import CheckpointError, DataError, DataNotFoundError
from sdaanet.io import (
    atomic_open,
    atomic_write,
    load_torch,
    open_image,
    read_image,
    read_label,
    to_rgb,
)


def test_atomic_write_text_bytes_and_callbacks(tmp_path):
    assert atomic_write(tmp_path / "a" / "b.json", json.dumps({"x": 1})) == tmp_path / "a/b.json"
    assert json.loads((tmp_path / "a/b.json").read_text()) == {"x": 1}
    atomic_write(tmp_path / "c.bin", b"\x00\x01")
    assert (tmp_path / "c.bin").read_bytes() == b"\x00\x01"
    atomic_write(tmp_path / "t.pt", lambda f: torch.save({"w": torch.ones(2)}, f))
    assert torch.equal(torch.load(tmp_path / "t.pt", weights_only=True)["w"], torch.ones(2))
    image = Image.fromarray(np.full((4, 5), 7, np.uint8))
    atomic_write(tmp_path / "l.png", lambda f: image.save(f, format="PNG"))
    assert read_label(tmp_path / "l.png").tolist() == [[7] * 5] * 4
    with atomic_open(tmp_path / "r.csv", "w", newline="") as f:
        csv.writer(f).writerows([["a", 1], ["b", 2]])
    assert (tmp_path / "r.csv").read_bytes() == b"a,1\r\nb,2\r\n"  # newline="" reached open
    assert sorted(p.name for p in tmp_path.rglob("*")) == [
        "a", "b.json", "c.bin", "l.png", "r.csv", "t.pt",
    ]  # fmt: skip


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path):
    path = tmp_path / "x.txt"
    path.write_text("old")

    def boom(f: io.BufferedWriter) -> None:
        f.write(b"half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        atomic_write(path, boom)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["x.txt"]


def test_concurrent_writers_use_their_own_temp_files(tmp_path):
    path = tmp_path / "x.txt"
    with atomic_open(path, "w") as first, atomic_open(path, "w") as second:
        assert first.name != second.name
        first.write("1")
        second.write("2")
    assert path.read_text() == "1"  # the last one renamed wins


def _save(array: np.ndarray, path):
    Image.fromarray(array).save(path)
    return path


def test_image_conversions(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (6, 7, 3), dtype=np.uint8)
    gray = np.dstack([rgb[..., 0]] * 3)
    assert np.array_equal(read_image(_save(rgb, tmp_path / "rgb.png")), rgb)
    rgba = _save(np.dstack([rgb, rgb[..., :1]]), tmp_path / "rgba.png")
    assert np.array_equal(read_image(rgba), rgb)
    assert np.array_equal(read_image(_save(rgb[..., 0], tmp_path / "l.png")), gray)
    sixteen = _save(rgb[..., 0].astype(np.uint16) * 257, tmp_path / "16.png")
    assert Image.open(sixteen).mode == "I;16" and np.array_equal(read_image(sixteen), gray)
    assert np.array_equal(to_rgb(rgb / 255), rgb) and np.array_equal(to_rgb(rgb[..., :1]), gray)
    with pytest.raises(DataError, match=r"query has shape \(6, 7, 5\)"):
        to_rgb(np.zeros((6, 7, 5), np.uint8), "query")
    with pytest.raises(DataError, match="floats in \\[0, 1\\]"):
        to_rgb(np.full((2, 2), 3.0))


def test_labels_keep_palette_indices_and_refuse_colour(tmp_path):
    palette = Image.fromarray(np.array([[0, 1], [2, 255]], np.uint8), mode="P")
    palette.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [224] * 759)
    palette.save(tmp_path / "p.png")
    assert read_label(tmp_path / "p.png").tolist() == [[0, 1], [2, 255]]
    _save(np.zeros((2, 2, 3), np.uint8), tmp_path / "rgb.png")
    with pytest.raises(DataError, match=r"label .*rgb\.png must be a single-channel"):
        read_label(tmp_path / "rgb.png")


def test_missing_corrupt_and_truncated_files_name_the_file(tmp_path):
    with pytest.raises(DataNotFoundError, match=r"image .*nope\.jpg not found"):
        read_image(tmp_path / "nope.jpg")
    (tmp_path / "junk.jpg").write_bytes(b"not an image")
    with pytest.raises(DataError, match=r"cannot read image .*junk\.jpg: corrupt or not an image"):
        read_image(tmp_path / "junk.jpg")
    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buf, format="JPEG")
    (tmp_path / "cut.jpg").write_bytes(buf.getvalue()[:-2])  # no end-of-image marker
    with pytest.raises(DataError, match=r"support .*cut\.jpg: truncated JPEG"):
        open_image(tmp_path / "cut.jpg", f"support {tmp_path / 'cut.jpg'}")


def test_load_torch_refuses_pickles_and_names_bad_files(tmp_path):
    path = tmp_path / "w.pth"
    path.write_text("hello world\n")
    with pytest.raises(CheckpointError, match=r"w\.pth is not a torch checkpoint.*KeyError: 101"):
        load_torch(path)
    torch.save({"args": argparse.Namespace(x=1)}, path)
    with pytest.raises(CheckpointError, match=r"pickled Python objects \(argparse\.Namespace\)"):
        load_torch(path, pickle_hint="pass --trust-pickle")
    assert load_torch(path, trust_pickle=True)["args"].x == 1
