"""`diled fid` / `diled fid-stats`: results with the protocol hash, and every bad input refused cleanly
(message naming the problem, exit status 2, no output file)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from diled import cli, weights
from diled.metrics import images


@pytest.fixture(autouse=True)
def _feature_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("DILED_FEATURE_CACHE", str(tmp_path / "features"))


def _blobs(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((n, 1, 16, 16)) > 0.7).astype(np.uint8) * 255


@pytest.fixture
def sets(tmp_path):
    images.save_folder(_blobs(6, 0), tmp_path / "gen")
    images.save_folder(_blobs(6, 1), tmp_path / "ref")
    return tmp_path / "gen", tmp_path / "ref"


def run(argv, capsys):
    code = cli.main(argv)
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_fid_and_stats_round_trip(sets, tmp_path, capsys):
    gen, ref = sets
    code, out, _ = run(["fid", "--protocol", "pytorch-fid", str(gen), str(ref), "--out", str(tmp_path / "r.json")], capsys)
    assert code == 0
    result = json.loads(out)
    assert result["protocol_digest"] == cli_protocol_digest("pytorch-fid") and result["fid"] > 0
    assert json.loads((tmp_path / "r.json").read_text())["fid"] == result["fid"]
    code, out, _ = run(["fid-stats", "--protocol", "pytorch-fid", str(ref), str(tmp_path / "ref.npz")], capsys)
    assert code == 0 and json.loads(out)["count"] == 6
    code, out, _ = run(["fid", "--protocol", "pytorch-fid", str(gen), str(tmp_path / "ref.npz")], capsys)
    assert code == 0 and json.loads(out)["fid"] == pytest.approx(result["fid"], abs=1e-9)
    # statistics of one protocol against another protocol's: refused, naming both
    code, _, err = run(["fid", "--protocol", "clean-fid", str(gen), str(tmp_path / "ref.npz")], capsys)
    assert code == 2 and "made under protocol pytorch-fid" in err and "not clean-fid" in err


def cli_protocol_digest(name: str) -> str:
    from diled.metrics.protocols import get_protocol

    return get_protocol(name).digest


def _write(folder, name, img: Image.Image | bytes):
    folder.mkdir(exist_ok=True)
    if isinstance(img, bytes):
        (folder / name).write_bytes(img)
    else:
        img.save(folder / name)


def _good(folder, n=3, size=16, mode="L"):
    for i in range(n):
        _write(folder, f"g{i}.png", Image.new(mode, (size, size), 100 + i))


def _truncated(folder):
    _good(folder)
    noise = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
    _write(folder, "g0.png", Image.fromarray(noise))
    data = (folder / "g0.png").read_bytes()
    (folder / "g0.png").write_bytes(data[: int(len(data) * 0.7)])  # header intact, pixel data cut


CASES = {
    "empty folder": (lambda d: d.mkdir(), "no images in this folder"),
    "one image": (lambda d: _good(d, 1), "at least 2 images"),
    "non-image file": (lambda d: (_good(d), _write(d, "notes.txt", b"hello")), "non-image entries ['notes.txt']"),
    "not an image": (lambda d: (_good(d), _write(d, "fake.png", b"definitely not a png")), "fake.png: not an image file"),
    "truncated": (_truncated, "unreadable or truncated image"),
    "mixed sizes": (lambda d: (_good(d), _write(d, "z.png", Image.new("L", (20, 16)))), "differs from the folder's first image"),
    "RGBA": (lambda d: _good(d, mode="RGBA"), "alpha channel (RGBA)"),
    "16-bit": (lambda d: _good(d, mode="I;16"), "I;16 image (16-bit or float)"),
    "missing": (lambda d: None, "no such file or folder"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_image_folders_are_refused(case, sets, tmp_path, capsys):
    make, message = CASES[case]
    bad = tmp_path / "bad"
    make(bad)
    for argv in (["fid", "--protocol", "pytorch-fid", str(bad), str(sets[1]), "--out", str(tmp_path / "o.json")],
                 ["fid-stats", "--protocol", "pytorch-fid", str(bad), str(tmp_path / "o.npz")]):
        code, _, err = run(argv, capsys)
        assert code == 2 and message in err, err
        assert not (tmp_path / "o.json").exists() and not (tmp_path / "o.npz").exists()
        assert not list(tmp_path.glob("o.partial*"))


def test_grayscale_and_palette_are_converted_like_rgb(tmp_path):
    img = np.random.default_rng(3).integers(0, 256, (16, 16), dtype=np.uint8)
    Image.fromarray(img).save(tmp_path / "l.png")
    Image.fromarray(np.stack([img] * 3, -1)).save(tmp_path / "rgb.png")
    Image.fromarray(np.stack([img] * 3, -1)).convert("P").save(tmp_path / "p.png")
    as_l, as_rgb = images.read_image(tmp_path / "l.png"), images.read_image(tmp_path / "rgb.png")
    assert as_l.shape == (3, 16, 16) and np.array_equal(as_l, as_rgb)
    assert images.read_image(tmp_path / "p.png").shape == (3, 16, 16)


@pytest.mark.parametrize("array, message", [
    (np.full((4, 1, 8, 8), np.nan, dtype=np.float32), "NaN or inf"),
    (np.zeros((1, 3, 8, 8), dtype=np.uint8), "at least 2 images"),
    (np.zeros((4, 2, 8, 8), dtype=np.uint8), "no channel axis of size 1 or 3"),
    (np.zeros((4, 8, 8), dtype=np.uint8), "expected 4-D images"),
    (np.zeros((4, 3, 8, 8), dtype=np.int64), "must be uint8 or float"),
])
def test_bad_arrays_are_refused(array, message, sets, tmp_path, capsys):
    np.save(tmp_path / "bad.npy", array)
    code, _, err = run(["fid-stats", "--protocol", "pytorch-fid", str(tmp_path / "bad.npy"), str(tmp_path / "o.npz")], capsys)
    assert code == 2 and message in err, err
    assert not (tmp_path / "o.npz").exists()


def test_tensor_file_equals_its_png_folder(sets, tmp_path, capsys):
    x = torch.from_numpy(_blobs(6, 0).astype(np.float32) / 127.5 - 1)
    torch.save(x, tmp_path / "gen.pt")
    _, a, _ = run(["fid", "--protocol", "pytorch-fid", str(tmp_path / "gen.pt"), str(sets[1])], capsys)
    _, b, _ = run(["fid", "--protocol", "pytorch-fid", str(sets[0]), str(sets[1])], capsys)
    assert json.loads(a)["fid"] == json.loads(b)["fid"]


def test_wrong_weight_hash_is_refused(sets, tmp_path, monkeypatch, capsys):
    """A tampered Inception file in the cache: refused with expected and found digests, no output."""
    from diled.metrics import fid

    state = torch.load(weights.resolve(weights.FID_INCEPTION), map_location="cpu", weights_only=True)
    state["Conv2d_1a_3x3.conv.weight"][0, 0, 0, 0] += 1e-3
    monkeypatch.setenv("DILED_CACHE", str(tmp_path / "cache"))
    weights.cache_path(weights.FID_INCEPTION).parent.mkdir(parents=True)
    torch.save(state, weights.cache_path(weights.FID_INCEPTION))
    fid._pytorch_fid_net.cache_clear()  # the network is memoized per process
    try:
        code, _, err = run(["fid-stats", "--protocol", "pytorch-fid", str(sets[0]), str(tmp_path / "o.npz")], capsys)
    finally:
        fid._pytorch_fid_net.cache_clear()
    assert code == 2 and f"expected {weights.FID_INCEPTION.tensor_digest}, found" in err
    assert not (tmp_path / "o.npz").exists()


def test_console_script_exit_status(tmp_path):
    res = subprocess.run([sys.executable, "-m", "diled.cli", "fid", "--protocol", "nope", str(tmp_path), str(tmp_path)],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "unknown FID protocol 'nope'" in res.stderr
