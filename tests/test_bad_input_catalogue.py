"""The bad-input catalogue (docs/bad-inputs.md): one row per bad input, with the exact error type
the package raises and a message that names the offending file or value, or the documented
conversion for inputs that are accepted."""

from __future__ import annotations

import copy
import importlib
import json
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import cv2
import numpy as np
import pytest
import torch
from hydra.errors import MissingConfigException
from omegaconf import DictConfig
from PIL import Image

from sdaanet import compose_config
from sdaanet.build import build_datamodule, build_module
from sdaanet.checkpoint import read_checkpoint
from sdaanet.convert import load_authors_file
from sdaanet.data import prepare
from sdaanet.data.sources import FolderSource, PascalSource
from sdaanet.errors import (
    CheckpointError,
    CheckpointMismatchError,
    ConfigError,
    DataConfigError,
    DataError,
    DataNotFoundError,
    PredictInputError,
)
from sdaanet.eval import run as run_eval
from sdaanet.predict import Predictor, load_predictor, predict
from sdaanet.validate import check_config
from test_data_folder import S, module, write_folder
from test_data_pascal import write_tree

pytestmark = pytest.mark.filterwarnings("ignore:backbone .* has RANDOM weights")

SIZE = 65  # conf/debug/tiny.yaml: the checkpoint's input size
QUERY_HW = (50, 90)


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny inputs gain nothing from more threads, which crawl on a busy machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def predictor(tiny_ckpt: Path) -> Predictor:
    return load_predictor(tiny_ckpt, "cpu")


@dataclass(frozen=True)
class Ctx:
    """What a row builds its input in: a temp folder, and the checkpoint only where it is used."""

    tmp: Path
    request: pytest.FixtureRequest

    @property
    def ckpt(self) -> Path:
        return self.request.getfixturevalue("tiny_ckpt")  # tests/conftest.py

    @property
    def predictor(self) -> Predictor:
        return self.request.getfixturevalue("predictor")


Call = Callable[[], object]
Build = Callable[[Ctx], Call]


@dataclass(frozen=True)
class Raises:
    """The call raises exactly `error` (not a subclass) with a message matching `match`."""

    error: type[Exception]
    match: str


@dataclass(frozen=True)
class Refused:
    """The command exits with status 2, printing exactly one line `error: <match>` on stderr and
    nothing on stdout, and writes nothing (no run folder under its log dir)."""

    match: str


@dataclass(frozen=True)
class Converted:
    """The input is accepted: the call returns a uint8 array of `shape`."""

    shape: tuple[int, ...]


# ---------------------------------------------------------------------------------- helpers
def write(array: np.ndarray, path: Path) -> Path:
    Image.fromarray(array).save(path)
    return path


def cut(path: Path, to: Path) -> Path:
    """`to`: the first half of `path`'s bytes."""
    data = path.read_bytes()
    to.write_bytes(data[: len(data) // 2])
    return to


def cfg(c: Ctx, *overrides: str, name: str = "train") -> DictConfig:
    paths = [f"paths.output_dir={c.tmp / 'run'}", f"paths.data_dir={c.tmp / 'data'}"]
    return compose_config(["debug=tiny", *paths, *overrides], config_name=name)


def folder(c: Ctx) -> Path:
    """A 6-class folder dataset of 64x64 images (tests/test_data_folder.py)."""
    return write_folder(c.tmp / "mine")


def load(root: Path, name: str) -> Call:
    """Loading images/`name` (with its label) from the folder dataset at `root`; the call
    returns the image."""
    source = FolderSource(root, "train", cache=False)
    i = source.pairs.index((f"images/{name}", f"labels/{Path(name).stem}.png"))
    return lambda: source.load(i)[0]


def converted_image(kind: str) -> Build:
    """images/c1_0.png stored as `kind`: it must load as the RGB image it shows."""

    def build(c: Ctx) -> Call:
        root = folder(c)
        (root / "images/c1_0.jpg").unlink()
        rgb = np.random.default_rng(0).integers(0, 256, (S, S, 3), dtype=np.uint8)
        gray = np.dstack([rgb[..., 0]] * 3)
        stored, shown = {
            "grayscale": (rgb[..., 0], gray),
            "RGBA": (np.dstack([rgb, rgb[..., 1]]), rgb),
            "16-bit": (rgb[..., 0].astype(np.uint16) * 257, gray),
        }[kind]
        write(stored, root / "images/c1_0.png")
        loading = load(root, "c1_0.png")

        def call() -> np.ndarray:
            image = loading()
            np.testing.assert_array_equal(image, shown)
            return image

        return call

    return build


def label_call(edit: Callable[[Path], None]) -> Build:
    """Reading every label of a folder dataset after `edit(labels folder)`."""

    def build(c: Ctx) -> Call:
        root = folder(c)
        edit(root / "labels")
        return lambda: FolderSource(root, "train", cache=False).class_areas()

    return build


def with_shot(ckpt: Path, path: Path, shot: int) -> Path:
    """A copy of `ckpt` recorded as `shot`-shot (the weights do not depend on the shot)."""
    c = copy.deepcopy(read_checkpoint(ckpt))
    c["hyper_parameters"]["description"]["shot"] = shot
    c["hyper_parameters"]["description"]["network"]["shot"] = shot
    torch.save(c, path)
    return path


def predict_files(tmp: Path) -> dict[str, Path]:
    """A 90x50 PNG query and a 40x70 JPEG support with its 0/255 PNG mask (W x H)."""
    rng = np.random.default_rng(0)
    mask = np.zeros((70, 40), np.uint8)
    mask[20:50, 10:30] = 255
    return {
        "query": write(rng.integers(0, 256, (*QUERY_HW, 3), dtype=np.uint8), tmp / "q.png"),
        "support": write(rng.integers(0, 256, (70, 40, 3), dtype=np.uint8), tmp / "s.jpg"),
        "mask": write(mask, tmp / "m.png"),
    }


def predicting(edit: Callable[[dict[str, Path], Path], object], supports: int = 1) -> Build:
    """The loaded 1-shot checkpoint predicting the query from `supports` pairs after `edit`."""

    def build(c: Ctx) -> Call:
        f = predict_files(c.tmp)
        edit(f, c.tmp)
        pairs = [(f["support"], f["mask"])] * supports
        return lambda: c.predictor.predict(pairs, f["query"], size=SIZE)

    return build


def converted_query(kind: str) -> Build:
    """The query stored as `kind`: it must be predicted as the 8-bit RGB picture it shows, with
    bitwise the same scores (the same input tensor), so the same mask. (The tiny checkpoint's
    mask alone could be one class everywhere, and the same for any query.)"""

    def build(c: Ctx) -> Call:
        f = predict_files(c.tmp)
        rgb = np.asarray(Image.open(f["query"]))
        gray = np.dstack([rgb[..., 0]] * 3)
        stored, shown, mode = {
            "grayscale": (rgb[..., 0], gray, "L"),
            "RGBA": (np.dstack([rgb, rgb[..., 0]]), rgb, "RGBA"),
            "16-bit": (as_16bit(rgb), gray, "I;16"),
        }[kind]
        query = write(stored, c.tmp / "converted.png")
        assert Image.open(query).mode == mode
        reference = write(shown, c.tmp / "rgb8.png")
        pairs = [(f["support"], f["mask"])]

        def call() -> np.ndarray:
            mask = c.predictor.predict(pairs, query, size=SIZE)
            np.testing.assert_array_equal(mask, c.predictor.predict(pairs, reference, size=SIZE))
            scores = c.predictor.logits(pairs, query, size=SIZE)
            assert torch.equal(scores, c.predictor.logits(pairs, reference, size=SIZE))
            return mask

        return call

    return build


# ------------------------------------------------------------------- what each row builds
def folder_root_missing(c: Ctx) -> Call:
    return lambda: build_datamodule(cfg(c, "data=folder", f"data.root={c.tmp / 'nope'}"))


def pascal_root_missing(c: Ctx) -> Call:
    return lambda: build_datamodule(cfg(c, "data=pascal", f"data.root={c.tmp / 'nope'}"))


def split_names_missing_image(c: Ctx) -> Call:
    root = folder(c)
    (root / "splits").mkdir()
    (root / "splits/train.txt").write_text("c1_0\nghost\n")
    return lambda: FolderSource(root, "train", cache=False)


def list_names_missing_image(c: Ctx) -> Call:
    root = c.tmp / "pascal"
    write_tree(root)
    assert prepare.main(["pascal", "--root", str(root)]) == 0
    (root / "JPEGImages/2008_000001.jpg").unlink()
    return lambda: PascalSource(root, "train", cache=False)


def image_without_label(c: Ctx) -> Call:
    root = folder(c)
    (root / "labels/c2_1.png").unlink()
    return lambda: FolderSource(root, "train", cache=False)


def corrupt_jpeg(c: Ctx) -> Call:
    root = folder(c)
    (root / "images/c1_1.jpg").write_bytes(b"not a jpeg")
    return load(root, "c1_1.jpg")


def truncated_jpeg(c: Ctx) -> Call:
    root = folder(c)
    image = root / "images/c1_1.jpg"
    cut(image, image.with_suffix(".tmp")).replace(image)
    return load(root, "c1_1.jpg")


def size_mismatch(c: Ctx) -> Call:
    root = folder(c)
    cv2.imwrite(str(root / "labels/c1_2.png"), np.zeros((S, S + 1), np.uint8))
    return load(root, "c1_2.jpg")


def bad_classes_tsv(c: Ctx) -> Call:
    root = folder(c)
    (root / "classes.tsv").write_text("id\tname\n0\tbackground\n")
    return lambda: FolderSource(root, "train", cache=False)


def truncated_label(labels: Path) -> None:
    cut(labels / "c2_0.png", labels / "c2_0.tmp").replace(labels / "c2_0.png")


def out_of_range_label(labels: Path) -> None:
    label = np.asarray(Image.open(labels / "c2_1.png")).copy()
    label[5, 5] = 9
    write(label, labels / "c2_1.png")


def rgb_label(labels: Path) -> None:
    label = np.asarray(Image.open(labels / "c3_0.png"))
    write(np.dstack([label] * 3), labels / "c3_0.png")


def label_16bit(labels: Path) -> None:
    write(np.full((S, S), 300, np.uint16), labels / "c4_0.png")


def no_support_for_the_fold(c: Ctx) -> Call:
    """Classes 1 and 2 (fold 0's novel classes) are in no label with >= min_area pixels."""
    root = folder(c)
    for k in range(3):
        for cls in (1, 2):
            write(np.zeros((S, S), np.uint8), root / f"labels/c{cls}_{k}.png")
    return lambda: module(root, fold=0).setup("validate")


def folder_fold_out_of_range(c: Ctx) -> Call:
    root = folder(c)
    overrides = ["data=folder", f"data.root={root}", "data.num_folds=3", "data.fold=9"]
    return lambda: build_datamodule(cfg(c, *overrides))


def config_call(
    *overrides: str, step: Callable[[DictConfig], object] = build_datamodule, name: str = "train"
) -> Build:
    """`step` on the tiny config with `overrides` (composing is part of the call)."""
    return lambda c: lambda: step(cfg(c, *overrides, name=name))


def command(entry: str, *argv: str) -> Build:
    """`sdaanet-<entry> <argv>` in this process, logging under the row's temp folder; `{ckpt}`
    in an argument is the tiny checkpoint."""

    def build(c: Ctx) -> Call:
        given = [a.format(ckpt=c.ckpt) if "{ckpt}" in a else a for a in argv]
        args = [f"paths.log_dir={c.tmp / 'logs'}", f"paths.data_dir={c.tmp / 'data'}", *given]
        main = importlib.import_module(f"sdaanet.{entry}").main

        def call() -> None:
            with mock.patch.object(sys, "argv", [f"sdaanet-{entry}", *args]):
                main()

        return call

    return build


def tool(entry: str, *argv: str) -> Build:
    """`sdaanet-<entry> <argv>` of a command that takes no Hydra overrides first, run from the
    row's temp folder; `{tmp}` in an argument is that folder."""

    def build(c: Ctx) -> Call:
        main = importlib.import_module(f"sdaanet.{entry}").main
        args = [a.format(tmp=c.tmp) for a in argv]
        return lambda: main(args)

    return build


def report_on_tmp(*run: str) -> Build:
    """`sdaanet-report <dir>` on a directory such as /tmp that holds a run (`.hydra/` and a
    record) at `run` below it; nothing may be written into the directory."""

    def build(c: Ctx) -> Call:
        folder = c.tmp.joinpath(*run)
        (folder / ".hydra").mkdir(parents=True)
        seeds = [{"seed": 321, "class_miou": 0.5, "fbiou": 0.6}]
        record = {"protocol": {"dataset": "synthetic", "fold": 0}, "seeds": seeds, "summary": {}}
        (folder / "metrics.json").write_text(json.dumps(record))
        main = importlib.import_module("sdaanet.report").main

        def call() -> None:
            try:
                main([str(c.tmp)])
            finally:
                assert [p.name for p in c.tmp.iterdir()] == [run[0]]

        return call

    return build


def eval_ckpt(make: Callable[[Ctx], Path], *overrides: str) -> Build:
    """`sdaanet-eval ckpt_path=<make(ctx)>` (its `run`)."""

    def build(c: Ctx) -> Call:
        path = make(c)
        return lambda: run_eval(cfg(c, f"ckpt_path={path}", *overrides, name="eval"))

    return build


def garbage_ckpt(c: Ctx) -> Path:
    path = c.tmp / "junk.ckpt"
    path.write_bytes(b"garbage")
    return path


def foreign_ckpt(c: Ctx) -> Call:
    path = c.tmp / "plain.ckpt"
    torch.save({"state_dict": {}}, path)
    return lambda: load_predictor(path)


def two_shot_ckpt(c: Ctx) -> Call:
    f = predict_files(c.tmp)
    two = with_shot(c.ckpt, c.tmp / "two.ckpt", 2)
    return lambda: predict(two, [(f["support"], f["mask"])], f["query"], size=SIZE)


def backbone_weights(content: bytes) -> Build:
    """Building the network with `backbone.weights=<a file holding content>`."""

    def build(c: Ctx) -> Call:
        path = c.tmp / "junk.pth"
        path.write_bytes(content)
        return lambda: build_module(cfg(c, f"backbone.weights={path}"))

    return build


def convert_input(c: Ctx) -> Call:
    """`sdaanet-convert` reading an input file that is not a torch checkpoint."""
    path = c.tmp / "junk.pth"
    path.write_bytes(b"garbage")
    return lambda: load_authors_file(path)


def convert_pickled_input(c: Ctx) -> Call:
    """`sdaanet-convert` reading, without --trust-pickle, a file that pickles a Python object."""
    import argparse

    path = c.tmp / "args.pth"
    torch.save({"state_dict": {}, "args": argparse.Namespace(layers=50)}, path)
    return lambda: load_authors_file(path)


def predict_missing_ckpt(c: Ctx) -> Call:
    return lambda: load_predictor(c.tmp / "missing.ckpt")


def notebook_missing_ckpt(c: Ctx) -> Call:
    from sdaanet.notebook import main as notebook_main

    return lambda: notebook_main(
        ["--ckpt", str(c.tmp / "missing.ckpt"), "--out", str(c.tmp / "executed.ipynb")]
    )


def missing_query(f: dict[str, Path], tmp: Path) -> None:
    f["query"] = tmp / "nope.png"


def corrupt_support(f: dict[str, Path], tmp: Path) -> None:
    f["support"] = tmp / "junk.jpg"
    f["support"].write_bytes(b"not an image at all")


def truncated_query(f: dict[str, Path], tmp: Path) -> None:
    f["query"] = cut(f["query"], tmp / "cut.png")


def truncated_jpeg_support(f: dict[str, Path], tmp: Path) -> None:
    f["support"] = cut(f["support"], tmp / "cut.jpg")


def wide_mask(f: dict[str, Path], tmp: Path) -> None:
    f["mask"] = write(np.full((40, 70), 255, np.uint8), tmp / "wide.png")


def empty_mask(f: dict[str, Path], tmp: Path) -> None:
    f["mask"] = write(np.zeros((70, 40), np.uint8), tmp / "empty.png")


def as_16bit(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., 0].astype(np.uint16) * 257


def row(
    name: str, build: Build, outcome: Raises | Converted, *marks: pytest.MarkDecorator
) -> pytest.ParameterSet:
    return pytest.param(build, outcome, id=name, marks=marks)


# fmt: off
ROWS = [
    # data ---------------------------------------------------------------------------------------
    row("data-folder-root-missing", folder_root_missing,
        Raises(DataNotFoundError, r"folder dataset not found: .*/nope is missing")),
    row("data-pascal-root-missing", pascal_root_missing,
        Raises(DataNotFoundError, r"pascal data not found: .*/nope is missing")),
    row("data-split-file-names-missing-image", split_names_missing_image,
        Raises(DataNotFoundError, r"2 of 4 files named by split file .*train\.txt are missing: "
                                  r".*images/ghost\.jpg")),
    row("data-pascal-list-names-missing-image", list_names_missing_image,
        Raises(DataNotFoundError, r"1 of 16 files named by list .*noduplicate\.txt are missing: "
                                  r".*JPEGImages/2008_000001\.jpg")),
    row("data-image-without-label", image_without_label,
        Raises(DataNotFoundError, r"1 of 18 images .* have no labels/<name>\.png: c2_1\.jpg")),
    row("data-corrupt-jpeg", corrupt_jpeg,
        Raises(DataError, r"cannot read image .*images/c1_1\.jpg: corrupt or not an image file")),
    row("data-truncated-jpeg", truncated_jpeg,
        Raises(DataError, r"cannot read image .*images/c1_1\.jpg: truncated JPEG \(no end-of")),
    row("data-truncated-png-label", label_call(truncated_label),
        Raises(DataError, r"cannot read label .*labels/c2_0\.png: image file is truncated")),
    row("data-grayscale-image-converted", converted_image("grayscale"), Converted((S, S, 3))),
    row("data-rgba-image-converted", converted_image("RGBA"), Converted((S, S, 3))),
    row("data-16bit-image-converted", converted_image("16-bit"), Converted((S, S, 3))),
    row("data-image-label-size-mismatch", size_mismatch,
        Raises(DataError, r"image .*c1_2\.jpg is 64x64 but its label .*c1_2\.png is 65x64")),
    row("data-label-value-out-of-range", label_call(out_of_range_label),
        Raises(DataError, r"label .*c2_1\.png holds values \[9\] that are not class ids")),
    row("data-rgb-label", label_call(rgb_label),
        Raises(DataError, r"label .*c3_0\.png must be a single-channel class-id map")),
    row("data-16bit-label-over-255", label_call(label_16bit),
        Raises(DataError, r"label .*c4_0\.png holds values outside 0-255 \(dtype uint16\)")),
    row("data-classes-tsv-id-0", bad_classes_tsv,
        Raises(DataError, r"classes\.tsv:2: class id 0 must be in 1-254")),
    row("data-empty-support-masks", no_support_for_the_fold,
        Raises(DataError, r"no folder image holds a class of \[1, 2\] with >= 1000 pixels"),
        pytest.mark.filterwarnings("ignore:folder. left out")),
    row("data-folder-fold-out-of-range", folder_fold_out_of_range,
        Raises(DataConfigError, r"fold must be an integer in 0\.\.2, got 9")),
    # config -------------------------------------------------------------------------------------
    row("config-unknown-dataset", config_call("data=nope"),
        Raises(MissingConfigException, r"Could not find 'data/nope'")),
    row("config-fold-out-of-range", config_call("data.fold=9"),
        Raises(DataConfigError, r"data config: fold must be an integer in 0\.\.3, got 9")),
    row("config-ways-over-fold-classes", config_call("data.ways=9"),
        Raises(DataConfigError, r"ways=9 but fold 0 has only 5 novel classes")),
    row("config-loss-weight-negative", config_call("model.alpha=-1", step=check_config),
        Raises(ConfigError, r"model\.alpha=-1 must be a number >= 0")),
    row("config-eval-seeds-not-integers",
        config_call("eval.seeds=[a]", step=check_config, name="eval"),
        Raises(ConfigError, r"eval\.seeds=\[a\] must be a list of seeds")),
    # a bad setting on the command line: one `error:` line, exit 2, no run folder
    row("train-shot-zero", command("train", "shot=0"),
        Refused(r"shot=0 must be a positive integer, e\.g\. shot=1")),
    row("train-shot-negative", command("train", "shot=-1"),
        Refused(r"shot=-1 must be a positive integer")),
    row("train-val-episodes-zero", command("train", "data.val_episodes=0"),
        Refused(r"data\.val_episodes=0 must be a positive integer")),
    row("train-optimizer-name", command("train", "optimizer.name=foo"),
        Refused(r"Could not override 'optimizer\.name': the config has no key 'name'")),
    row("train-optimizer-group", command("train", "optimizer=foo"),
        Refused(r"Could not find 'optimizer/foo'; available options in 'optimizer': adamw, sgd")),
    row("train-runtime-precision", command("train", "runtime.precision=fp8"),
        Refused(r"runtime\.precision='fp8' is not one of auto, bf16, fp32")),
    row("train-kshot-strategy", command("train", "model.kshot_strategy=bogus"),
        Refused(r"model\.kshot_strategy='bogus' is not one of official, separate, integral")),
    row("train-ways-without-multiclass", command("train", "data.ways=3"),
        Refused(r"data\.ways=3 needs the multi-class network: add model=multiclass")),
    row("eval-label-mode", command("eval", "label_mode=nope"),
        Refused(r"Could not find 'label_mode/nope'; available options in 'label_mode': authors")),
    row("eval-empty-seeds", command("eval", "eval.seeds=[]"),
        Refused(r"eval\.seeds is empty; give at least one")),
    row("eval-mode-complexity", command("eval", "mode=complexity"),
        Refused(r"Table III has its own command: run sdaanet-complexity \[overrides\]")),
    row("complexity-size", command("complexity", "complexity.size=0"),
        Refused(r"complexity\.size=0 must be a positive integer")),
    row("train-test-ckpt", command("train", "test_ckpt=worst"),
        Refused(r"test_ckpt='worst' is not one of best, last")),
    row("train-loss-weight-not-a-number", command("train", "model.alpha=abc"),
        Refused(r"model\.alpha=abc must be a number >= 0$")),
    row("train-loss-weight-negative", command("train", "model.beta=-0.5"),
        Refused(r"model\.beta=-0\.5 must be a number >= 0$")),
    row("train-max-epochs-without-end", command("train", "trainer.max_epochs=-1"),
        Refused(r"trainer\.max_epochs=-1 trains without end, .*\+trainer\.max_steps=N")),
    row("train-max-steps-not-a-number", command("train", "+trainer.max_steps=abc"),
        Refused(r"trainer\.max_steps=abc must be a positive integer or -1")),
    row("train-lr-zero", command("train", "optimizer.lr=0"),
        Refused(r"optimizer\.lr=0 must be a number > 0$")),
    row("train-seed-not-an-integer", command("train", "seed=1.5"),
        Refused(r"seed=1\.5 must be an integer in 0\.\.4294967295$")),
    row("train-switch-not-a-boolean", command("train", "test=yes"),
        Refused(r"test=yes must be true or false$")),
    row("train-plumbing-only-not-a-boolean", command("train", "plumbing_only=yes"),
        Refused(r"plumbing_only=yes must be true or false$")),
    row("train-progress-every-n-steps-zero",
        command("train", "callbacks.progress_bar.every_n_steps=0"),
        Refused(r"callbacks\.progress_bar\.every_n_steps=0 must be a positive integer")),
    row("demo-pretrain-every-n-steps-zero", command("demo", "pretrain.every_n_steps=0"),
        Refused(r"pretrain\.every_n_steps=0 must be a positive integer")),
    row("demo-unknown-key", command("demo", "foo=1"),
        Refused(r"Could not override 'foo': the config has no key 'foo'")),
    row("train-multirun-negative-loss-weight", command("train", "-m", "model.alpha=5,-1"),
        Refused(r"model\.alpha=-1 must be a number >= 0 \(in the sweep's job model\.alpha=-1\)")),
    row("eval-seeds-not-integers", command("eval", "ckpt_path={ckpt}", "eval.seeds=[a]"),
        Refused(r"eval\.seeds=\[a\] must be a list of seeds \(integers in 0\.\.2\*\*32-1\)")),
    row("eval-fold-out-of-range", command("eval", "ckpt_path={ckpt}", "data.fold=9"),
        Refused(r"data config: fold must be an integer in 0\.\.3, got 9$")),
    row("eval-more-shots-without-kshot", command("eval", "ckpt_path={ckpt}", "shot=5"),
        Refused(r"checkpoint .*last\.ckpt was trained 1-shot but shot=5 is configured: .*"
                r"eval\.kshot=fusion\|voting")),
    row("table-unknown", tool("table", "III"),
        Refused(r"unknown table 'III': choose one of I, II, IV, V, VI, VII \(Table III is the "
                r"complexity report: make complexity\)")),
    row("report-missing-path", tool("report", "{tmp}/no-such-sweep"),
        Refused(r".*no-such-sweep")),
    row("report-no-records", tool("report", "{tmp}"),
        Refused(r"no evaluation records")),
    row("report-records-only-deep-below", report_on_tmp("pytest-of-me", "pytest-1", "x", "run"),
        Refused(r"no evaluation records .* folders 2 deep; .* pass a run, sweep or table")),
    row("report-directory-sdaanet-did-not-make", report_on_tmp("p8", "run1"),
        Refused(r"not a run, sweep or table directory \(it holds no \.hydra/, multirun\.yaml "
                r"or earlier report\), .*: pass --out DIR")),
    row("table-bad-override", tool("table", "I", "data=synthetic", "debug=tiny",
                                   "trainer.max_steps=abc", "--dir", "{tmp}/logs/I"),
        Refused(r"Could not override 'trainer\.max_steps': the config has no key 'max_steps' "
                r"\(to append to your config use \+trainer\.max_steps=abc\)")),
    row("table-bad-value", tool("table", "V", "data=synthetic", "debug=tiny",
                                "+trainer.max_steps=abc", "--dir", "{tmp}/logs/V"),
        Refused(r"trainer\.max_steps=abc must be a positive integer or -1")),
    # checkpoint ---------------------------------------------------------------------------------
    row("ckpt-missing", eval_ckpt(lambda c: c.tmp / "missing.ckpt"),
        Raises(CheckpointError, r"checkpoint not found: .*missing\.ckpt")),
    row("ckpt-run-dir-without-checkpoints", eval_ckpt(lambda c: c.tmp),
        Raises(CheckpointError, r"no checkpoint in .*checkpoints \(best-\*\.ckpt or last\.ckpt\)")),
    row("ckpt-truncated", eval_ckpt(lambda c: cut(c.ckpt, c.tmp / "cut.ckpt")),
        Raises(CheckpointError, r"cannot read checkpoint .*cut\.ckpt")),
    row("ckpt-corrupt", eval_ckpt(garbage_ckpt),
        Raises(CheckpointError, r"cannot read checkpoint .*junk\.ckpt")),
    row("ckpt-another-architecture", eval_ckpt(lambda c: c.ckpt, "model=pfenet"),
        Raises(CheckpointMismatchError, r"model\.saam=False contradicts checkpoint .*last\.ckpt, "
                                        r"which holds True")),
    row("ckpt-not-sdaanet", foreign_ckpt,
        Raises(CheckpointError, r"checkpoint .*plain\.ckpt records no network \(not an sdaanet "
                                r"checkpoint\? convert the authors' \.pth files with sdaanet-")),
    row("ckpt-backbone-weights-text-file", backbone_weights(b"hello world\n"),
        Raises(CheckpointError, r"backbone weights .*junk\.pth is not a torch checkpoint, or is "
                                r"truncated \(KeyError: 101\)")),
    row("ckpt-backbone-weights-random-bytes", backbone_weights(bytes(range(256)) * 4),
        Raises(CheckpointError, r"backbone weights .*junk\.pth is not a torch checkpoint")),
    row("ckpt-convert-not-a-torch-file", convert_input,
        Raises(CheckpointError, r"input checkpoint .*junk\.pth is not a torch checkpoint")),
    row("ckpt-convert-pickled-objects", convert_pickled_input,
        Raises(CheckpointError, r"input checkpoint .*args\.pth holds pickled Python objects "
                                r"\(argparse\.Namespace\).*arbitrary code.*--trust-pickle")),
    row("ckpt-missing-in-predict", predict_missing_ckpt,
        Raises(CheckpointError, r"checkpoint not found: .*missing\.ckpt \(pass --ckpt <file>")),
    row("ckpt-missing-in-notebook", notebook_missing_ckpt,
        Refused(r"checkpoint not found: .*missing\.ckpt \(pass an sdaanet \.ckpt file\)")),
    row("ckpt-other-shot-in-predict", two_shot_ckpt,
        Raises(PredictInputError, r"checkpoint is 2-shot, got 1 support")),
    # predict ------------------------------------------------------------------------------------
    row("predict-missing-file", predicting(missing_query),
        Raises(PredictInputError, r"query image .*nope\.png not found")),
    row("predict-corrupt-image", predicting(corrupt_support),
        Raises(PredictInputError, r"cannot read support 1 image .*junk\.jpg")),
    row("predict-truncated-image", predicting(truncated_query),
        Raises(PredictInputError, r"cannot read query image .*cut\.png: .*truncated")),
    row("predict-truncated-jpeg", predicting(truncated_jpeg_support),
        Raises(PredictInputError, r"cannot read support 1 image .*cut\.jpg: truncated JPEG")),
    row("predict-mask-size-mismatch", predicting(wide_mask),
        Raises(PredictInputError, r"mask .*wide\.png is 70x40 \(WxH\) but support 1 image "
                                  r".*s\.jpg is 40x70")),
    row("predict-empty-mask", predicting(empty_mask),
        Raises(PredictInputError, r"mask .*empty\.png has no foreground pixel")),
    row("predict-wrong-shot", predicting(lambda f, tmp: None, supports=2),
        Raises(PredictInputError, r"checkpoint is 1-shot, got 2 supports")),
    row("predict-rgba-query-converted",
        converted_query("RGBA"), Converted(QUERY_HW)),
    row("predict-grayscale-query-converted", converted_query("grayscale"), Converted(QUERY_HW)),
    row("predict-16bit-query-converted", converted_query("16-bit"), Converted(QUERY_HW)),
]
# fmt: on


@pytest.mark.parametrize(("build", "outcome"), ROWS)
def test_bad_input(
    build: Build, outcome: Raises | Converted, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    call = build(Ctx(tmp_path, request))
    if isinstance(outcome, Refused):
        capsys = request.getfixturevalue("capsys")
        with pytest.raises(SystemExit) as exit_info:
            call()
        out, err = capsys.readouterr()
        lines = err.splitlines()
        assert exit_info.value.code == 2 and len(lines) == 1 and not out, (out, lines)
        assert re.fullmatch(r"error: .*", lines[0]) and re.search(outcome.match, lines[0]), lines
        assert not (tmp_path / "logs").exists()
        return
    if isinstance(outcome, Converted):
        result = call()
        assert isinstance(result, np.ndarray) and result.dtype == np.uint8
        assert result.shape == outcome.shape
        return
    with pytest.raises(outcome.error, match=outcome.match) as info:
        call()
    assert type(info.value) is outcome.error, f"raised {type(info.value).__name__}"
