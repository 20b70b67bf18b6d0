"""sdaanet.weights: cache paths, atomic verified downloads, clear offline errors (no network)."""

from __future__ import annotations

import hashlib
import io
import urllib.error
import urllib.request

import pytest
import torch
from tests.helpers.cli import exit_code

from sdaanet import weights
from sdaanet.errors import WeightsError
from sdaanet.weights import ENV_CACHE, download, main, weights_path


def tiny_checkpoint() -> bytes:
    buf = io.BytesIO()
    torch.save({"conv1.weight": torch.arange(12.0).reshape(1, 3, 2, 2)}, buf)
    return buf.getvalue()


def fake_urlopen(payload: bytes, check=None):
    class Response(io.BytesIO):
        def read(self, *args):
            if check is not None:
                check()
            return super().read(*args)

    calls = []

    def urlopen(url, timeout=None):
        calls.append((url, timeout))
        return Response(payload)

    return urlopen, calls


def no_network(*args, **kwargs):
    raise AssertionError("urlopen must not be called")


def test_weights_path_cache_and_env(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_CACHE, raising=False)
    default = weights_path("resnet50")
    assert default.parts[-4:] == (".cache", "sdaanet", "weights", "resnet50-19c8e357.pth")
    monkeypatch.setenv(ENV_CACHE, str(tmp_path / "env"))
    assert weights_path("resnet101") == tmp_path / "env" / "resnet101-5d3b4d8f.pth"
    assert weights_path("vgg16_bn", tmp_path / "c") == tmp_path / "c" / "vgg16_bn-6c64b313.pth"
    assert weights_path("resnet50_deep", tmp_path) == tmp_path / "resnet50_v2.pth"
    with pytest.raises(WeightsError, match="unknown backbone"):
        weights_path("resnet152")


def test_cached_file_is_not_downloaded(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    path = weights_path("resnet18", tmp_path)
    path.write_bytes(b"cached")
    assert download("resnet18", tmp_path) == path
    assert exit_code(main, ["resnet18", "--cache", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "already cached" in out and f"backbone.weights={path}" in out


def test_fake_download_is_verified_and_atomic(tmp_path, monkeypatch, capsys):
    payload = tiny_checkpoint()
    digest = hashlib.sha256(payload).hexdigest()
    url = f"https://download.pytorch.org/models/resnet18-{digest[:8]}.pth"
    monkeypatch.setitem(weights.URLS, "resnet18", url)
    final = tmp_path / f"resnet18-{digest[:8]}.pth"

    def not_yet_renamed():
        assert not final.exists()

    urlopen, calls = fake_urlopen(payload, not_yet_renamed)
    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    assert exit_code(main, ["resnet18", "--cache", str(tmp_path)]) == 0
    assert calls and calls[0][0] == url and calls[0][1] is not None  # a timeout is set
    assert sorted(p.name for p in tmp_path.iterdir()) == [final.name]  # no temp file left
    assert final.read_bytes() == payload
    assert torch.load(final, weights_only=True)["conv1.weight"].shape == (1, 3, 2, 2)
    out = capsys.readouterr().out
    assert f"backbone.weights={final}" in out and out.count("\n") == 1


def test_hash_mismatch_deletes_the_download(tmp_path, monkeypatch, capsys):
    urlopen, _ = fake_urlopen(tiny_checkpoint())
    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    assert exit_code(main, ["resnet34", "--cache", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "SHA-256" in err and "b627a593" in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_not_a_checkpoint_is_rejected(tmp_path, monkeypatch):
    payload = b"<html>proxy login</html>"
    digest = hashlib.sha256(payload).hexdigest()
    monkeypatch.setitem(weights.URLS, "resnet18", f"https://x/resnet18-{digest[:8]}.pth")
    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen(payload)[0])
    with pytest.raises(WeightsError, match="not a loadable checkpoint"):
        download("resnet18", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_offline_exits_2_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    def offline(url, timeout=None):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    cache = tmp_path / "cache"
    assert exit_code(main, ["resnet50", "--cache", str(cache)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "https://download.pytorch.org/models/resnet50-19c8e357.pth" in err
    assert "backbone.weights=<file>" in err and "internet" in err
    assert list(cache.iterdir()) == []


def test_http_error_exits_2(tmp_path, monkeypatch, capsys):
    def forbidden(url, timeout=None):
        raise urllib.error.HTTPError(url, 403, "Forbidden", {}, None)

    monkeypatch.setattr(urllib.request, "urlopen", forbidden)
    assert exit_code(main, ["vgg16_bn", "--cache", str(tmp_path)]) == 2
    assert "vgg16_bn-6c64b313.pth" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["resnet50_deep", "resnet101_deep"])
def test_deep_stem_points_to_pfenet(tmp_path, monkeypatch, capsys, name):
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    assert exit_code(main, [name, "--cache", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "PFENet" in err and "Google Drive" in err and err.count("\n") == 1
    assert f"{name.split('_')[0]}_v2.pth" in err


def test_deep_stem_placed_by_hand_is_used(tmp_path, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    (tmp_path / "resnet101_v2.pth").write_bytes(b"x")
    assert download("resnet101_deep", tmp_path) == tmp_path / "resnet101_v2.pth"
