"""Reliability, third pass (issue 43): outputs that would overwrite inputs, a full or read-only feature cache, stale
temporaries of writers in other namespaces, memory-bounded decoding, and the small hostile inputs (deep JSON, legacy
torch files, YAML alias bombs, NaN settings, FIFOs, inflating .npz members, out-of-range datasets, huge manifests,
unwritable outputs, broken safetensors). Each case failed before this pass; each now gives one line naming the
problem (exit 2 on the command line) or, for the cache, a warning and a correct FID."""

from __future__ import annotations

import errno
import json
import os
import re
import resource
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from diled import checkpoint, cli, fileio
from diled.metrics import fid, images
from diled.metrics.images import ImageInputError


class _FakeExtractor:
    """Deterministic stand-in for Inception: features from pixel statistics (no weights needed)."""

    def __init__(self, protocol, device="cpu"):
        self.calls = 0

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        x = batch.reshape(len(batch), -1).astype(np.float64) / 255.0
        return np.repeat(np.stack([x.mean(1), x.std(1)], 1), fid.DIM // 2, axis=1) + np.arange(fid.DIM) * 1e-3


@pytest.fixture
def fake_fid(tmp_path, monkeypatch):
    """A feature cache in tmp_path, the fake extractor, a fresh record of unwritable caches, 6 tiny images."""
    monkeypatch.setenv("DILED_FEATURE_CACHE", str(tmp_path / "features"))
    monkeypatch.setattr(fid, "FeatureExtractor", _FakeExtractor)
    monkeypatch.setattr(fid.FeatureCache, "unwritable", {}, raising=False)
    return np.random.default_rng(0).integers(0, 256, (6, 3, 16, 16), dtype=np.uint8)


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    code = cli.main(argv)
    cap = capsys.readouterr()
    return code, cap.out, cap.err


# ----------------------------------------------------------------------------- 1. an output that is an input


@pytest.fixture
def never_scored(monkeypatch):
    """Any FID work fails the test: the refusals below must come before it."""
    def boom(*args, **kwargs):
        raise AssertionError("work started before the output was checked")

    monkeypatch.setattr(fid, "fid", boom)
    monkeypatch.setattr(fid, "statistics", boom)


@pytest.mark.parametrize("how", ["same path", "hard link", "symlink"])
def test_fid_out_that_is_an_input_is_refused_before_any_work(tmp_path, capsys, never_scored, how):
    gen = tmp_path / "gen.npy"
    np.save(gen, np.zeros((4, 3, 8, 8), np.uint8))
    before = gen.read_bytes()
    out = gen if how == "same path" else tmp_path / "alias.npy"
    if how == "hard link":
        os.link(gen, out)
    elif how == "symlink":
        out.symlink_to(gen)
    code, stdout, err = run_cli(["fid", "--protocol", "pytorch-fid", str(gen), str(tmp_path), "--out", str(out)], capsys)
    assert code == 2 and stdout == "" and len(err.strip().splitlines()) == 1
    assert f"{out}: this output is the input" in err or "lies inside the input folder" in err
    assert gen.read_bytes() == before


def test_fid_stats_onto_its_own_source_is_refused(tmp_path, capsys, never_scored):
    src = tmp_path / "imgs.npz"
    np.savez(src, arr_0=np.zeros((4, 8, 8, 3), np.uint8))
    before = src.read_bytes()
    code, _, err = run_cli(["fid-stats", "--protocol", "pytorch-fid", str(src), str(src)], capsys)
    assert code == 2 and f"{src}: this output is the input {src}" in err and src.read_bytes() == before


def test_an_output_inside_an_input_folder_or_unwritable_is_refused_before_any_work(tmp_path, capsys, never_scored):
    images.save_folder(np.zeros((3, 3, 8, 8), np.uint8), tmp_path / "gen")
    code, _, err = run_cli(["fid", "--protocol", "pytorch-fid", str(tmp_path / "gen"), str(tmp_path / "gen"),
                            "--out", str(tmp_path / "gen" / "r.json")], capsys)
    assert code == 2 and "lies inside the input folder" in err and not (tmp_path / "gen" / "r.json").exists()
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("x")
    code, _, err = run_cli(["fid", "--protocol", "pytorch-fid", str(tmp_path / "gen"), str(tmp_path / "gen"),
                            "--out", str(blocked / "r.json")], capsys)
    assert code == 2 and err.startswith(f"diled fid: error: {blocked / 'r.json'}: cannot be written")


def test_a_full_disk_while_writing_the_result_names_the_users_path(tmp_path, capsys, monkeypatch, failing_path):
    monkeypatch.setattr(fid, "fid", lambda *a, **k: {"fid": 1.0})
    failing_path("write_text", lambda p: ".partial-" in p.name, errno.ENOSPC, "No space left on device")
    out = tmp_path / "result.json"
    code, _, err = run_cli(["fid", "--protocol", "pytorch-fid", "a.npy", "b.npy", "--out", str(out)], capsys)
    assert code == 2 and f"{out}: could not be written (No space left on device)" in err
    assert list(tmp_path.iterdir()) == []  # no partial file


def test_running_out_of_memory_is_one_line_naming_the_inputs(tmp_path, capsys, monkeypatch):
    def oom(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(fid, "fid", oom)
    code, _, err = run_cli(["fid", "--protocol", "pytorch-fid", "big/", "ref/"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "out of memory while working on big/, ref/" in err


# ----------------------------------------------------------------------------- 2. a full or read-only feature cache


def _limited_file_size(limit: int):
    """Files written by this process may grow to ``limit`` bytes (a disk that fills up at that point)."""
    old_limit, old_handler = resource.getrlimit(resource.RLIMIT_FSIZE), signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, old_limit[1]))
    return lambda: (resource.setrlimit(resource.RLIMIT_FSIZE, old_limit), signal.signal(signal.SIGXFSZ, old_handler))


def test_a_full_disk_turns_the_feature_cache_off_with_one_warning_and_a_correct_fid(fake_fid, tmp_path):
    expected = fid.statistics(fake_fid, fid.PYTORCH_FID, batch_size=2, cache=False)
    restore = _limited_file_size(16 << 10)  # an entry is 6 x 2048 x 4 bytes = 48 KiB: the disk is full a third of the way
    try:
        with pytest.warns(UserWarning, match=r"feature cache .* cannot be written \(File too large\); it is off for the rest of this run"):
            got = fid.statistics(fake_fid, fid.PYTORCH_FID, batch_size=2)
        with _no_warnings():
            again = fid.statistics(fake_fid[::-1].copy(), fid.PYTORCH_FID, batch_size=2)  # off now: not tried, not warned
    finally:
        restore()
    np.testing.assert_array_equal(got.mu, expected.mu)
    np.testing.assert_array_equal(got.sigma, expected.sigma)
    assert got.manifest["features"] == "computed (the cache could not be written)" and again.manifest["features"] == "computed"
    assert [p.name for p in (tmp_path / "features").rglob("*") if p.is_file()] == []  # nothing partial left


class _no_warnings:
    def __enter__(self):
        import warnings

        self._cm = warnings.catch_warnings()
        self._cm.__enter__()
        warnings.simplefilter("error")

    def __exit__(self, *exc):
        return self._cm.__exit__(*exc)


def test_a_read_only_cache_still_gives_the_fid(fake_fid, failing_path):
    expected = fid.statistics(fake_fid, fid.PYTORCH_FID, cache=False)
    failing_path("mkdir", lambda p: "features" in p.parts, errno.EROFS, "Read-only file system")
    with pytest.warns(UserWarning, match=r"cannot be written \(Read-only file system\)"):
        got = fid.statistics(fake_fid, fid.PYTORCH_FID)
    np.testing.assert_array_equal(got.sigma, expected.sigma)


def test_cache_entries_are_written_as_plain_npy_files(fake_fid, tmp_path):
    stats = fid.statistics(fake_fid, fid.PYTORCH_FID, batch_size=4)
    (npy,) = (tmp_path / "features").rglob("*.npy")
    feats = np.load(npy, allow_pickle=False)
    assert feats.dtype == np.float32 and feats.shape == (6, fid.DIM)
    record = json.loads(npy.with_suffix(".json").read_text())
    assert record["sha256"] == fileio.sha256_file(npy)
    assert fid.statistics(fake_fid, fid.PYTORCH_FID).manifest["features"].startswith("cache:")
    np.testing.assert_allclose(fid.statistics(fake_fid, fid.PYTORCH_FID).mu, stats.mu, rtol=1e-6)


# ----------------------------------------------------------------------------- 3. temporaries of writers elsewhere


def test_a_temporary_of_a_writer_in_another_namespace_is_judged_by_age_not_by_a_local_pid(tmp_path):
    gone = 2**22 + 12345  # no such pid here; in another container it may well be a live writer
    foreign = tmp_path / f"abc.partial-{'f' * 12}-{gone}.npy"
    legacy = tmp_path / f"def.partial-{gone}.npy"  # the names written before this pass say nothing of where
    local = tmp_path / f"ghi.partial-{fileio.writer_identity()}-{gone}.npy"
    for p in (foreign, legacy, local):
        p.write_bytes(b"x")
    assert fileio.remove_stale_partials(tmp_path) == [local]  # a dead writer of this namespace: gone
    assert foreign.exists() and legacy.exists()
    old = time.time() - fileio.STALE_AFTER_S - 60
    for p in (foreign, legacy):
        os.utime(p, (old, old))
    assert sorted(fileio.remove_stale_partials(tmp_path)) == sorted([foreign, legacy])


def test_atomic_temporaries_carry_the_writer_identity(tmp_path):
    with fileio.atomic_path(tmp_path / "x.json") as tmp:
        assert fileio.partial_owner(tmp) == (fileio.writer_identity(), os.getpid())
        tmp.write_text("{}")


# ----------------------------------------------------------------------------- 4. decoding bounded by batch and memory


def test_folder_decoding_honours_the_batch_size_and_a_memory_budget(tmp_path, monkeypatch):
    images.save_folder(np.random.default_rng(0).integers(0, 256, (7, 3, 8, 8), dtype=np.uint8), tmp_path / "gen")
    src = images.FolderSource(tmp_path / "gen")
    assert [len(b) for b in src.batches(3)] == [3, 3, 1]
    monkeypatch.setattr(images, "DECODE_BUDGET", 2 * 3 * 8 * 8)  # two decoded images
    assert [len(b) for b in src.batches(50)] == [2, 2, 2, 1]
    seen = []
    monkeypatch.setattr(images.FolderSource, "batches", lambda self, n: (seen.append(n), iter([np.zeros((2, 3, 8, 8), np.uint8)]))[1])
    images.FolderSource(tmp_path / "gen").content_hash(batch_size=1)
    assert seen == [1]  # the content hash decodes as few at a time as --batch-size says


# ----------------------------------------------------------------------------- 5. the small hostile inputs


def test_a_deeply_nested_cache_record_is_named_and_recomputed(fake_fid, tmp_path):
    fid.statistics(fake_fid, fid.PYTORCH_FID)
    (record,) = (tmp_path / "features").rglob("*.json")
    record.write_text("[" * 1_000_000)
    with pytest.warns(UserWarning, match=r"feature cache entry .* discarded: unreadable \(RecursionError"):
        stats = fid.statistics(fake_fid, fid.PYTORCH_FID)
    assert stats.manifest["features"] == "computed (cached)"


def test_a_legacy_torch_file_is_a_corrupt_checkpoint_not_a_transient_failure(tmp_path):
    path = tmp_path / "ckpt-00000010.pt"
    torch.save({"format": checkpoint.FORMAT}, path, _use_new_zipfile_serialization=False)
    with pytest.raises(checkpoint.CheckpointError, match=r"not a zip-format torch file"):
        checkpoint.load(path)


def _default_config() -> dict:
    """config/config.yaml as Snakemake hands it to ``diled.config.check`` (models not yet resolved)."""
    return yaml.safe_load((Path(__file__).resolve().parent.parent / "config" / "config.yaml").read_text())


def test_a_yaml_alias_bomb_is_refused_in_seconds(tmp_path):
    from diled import config

    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))
    cfg = {**_default_config(), "bomb": yaml.safe_load(bomb)}  # 9^9 values once expanded
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="expands to more than 100,000 values"):
        config.check(cfg)
    assert time.perf_counter() - t0 < 3


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_nan_and_infinite_settings_are_refused_at_parse_time(value):
    from diled import config

    cfg = _default_config()
    cfg["image"]["model_settings"] = {"ddim": {"train": {"lr": value}}}
    with pytest.raises(ValueError, match=rf"image\.model_settings\.ddim\.train\.lr = {value}: not a finite number"):
        config.check(cfg)


def test_a_schema_error_quotes_a_bounded_excerpt_of_the_value(repo_root):
    from diled import config

    cfg = _default_config()
    cfg["seed"] = list(range(200_000 // 4))
    with pytest.raises(ValueError) as err:
        config.check(cfg, repo_root / "workflow" / "schemas" / "config.schema.yaml")
    line = next(x for x in str(err.value).splitlines() if x.strip().startswith("- seed"))
    assert len(line) < 300 and "[0, 1, 2, 3, ...]" in line


def test_a_fifo_is_refused_without_blocking(tmp_path):
    images.save_folder(np.zeros((3, 3, 8, 8), np.uint8), tmp_path / "gen")
    os.mkfifo(tmp_path / "gen" / "000009.png")
    with pytest.raises(ImageInputError, match=r"not regular files \['000009.png'\] \(a FIFO"):
        images.open_source(tmp_path / "gen")
    os.mkfifo(tmp_path / "gen.npy")
    with pytest.raises(ImageInputError, match=rf"^{re.escape(str(tmp_path / 'gen.npy'))}: a FIFO, not a regular file"):
        images.open_source(tmp_path / "gen.npy")
    os.mkfifo(tmp_path / "stats.npz")
    with pytest.raises(ImageInputError, match="a FIFO, not a regular file"):
        fid.load_reference(tmp_path / "stats.npz", fid.PYTORCH_FID)


@pytest.mark.parametrize("suffix", [".npz", ".npy"])
def test_an_image_array_of_a_refused_shape_is_refused_from_its_header(tmp_path, suffix):
    import tracemalloc

    path = tmp_path / f"bad{suffix}"
    big = np.zeros((64, 7, 256, 256), np.uint8)  # 29 MiB claimed, no channel axis of size 1 or 3
    (np.savez_compressed if suffix == ".npz" else np.save)(path, big) if suffix == ".npy" else np.savez_compressed(path, arr_0=big)
    del big
    tracemalloc.start()
    try:
        with pytest.raises(ImageInputError, match=r"no channel axis of size 1 or 3 in shape \(64, 7, 256, 256\)"):
            images.load_array_file(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20  # never inflated


def test_prepared_datasets_are_range_checked(tmp_path):
    from diled import codecs
    from diled.modalities.protein import data as protein
    from diled.modalities.text import data as text

    path = tmp_path / "protein.npz"
    tokens = np.zeros((3, 5), np.int8)
    tokens[1, 2] = -3
    np.savez(path, train_tokens=tokens, train_fitness=np.zeros(3, np.float32))
    with pytest.raises(ValueError, match=r"protein.npz: not a prepared protein dataset .*outside the alphabet's ids \[0, 22\)"):
        codecs.for_track("protein", {"data": {"dataset": "gifford", "root": None}}).load(path, "train")
    np.savez(path, train_tokens=np.zeros((3, 5), np.int8), train_fitness=np.array([0.0, np.nan, 1.0], np.float32))
    with pytest.raises(ValueError, match="NaN or inf"):
        protein.load(path, "train")
    tok = text.train_tokenizer(["the cat sat on the mat"] * 4, 40)
    ids = np.zeros((2, 4), np.int32)
    ids[0, 1] = tok.get_vocab_size()
    np.savez(tmp_path / "text.npz", tokenizer=np.array(tok.to_str()), train_text=np.array(["a", "b"]), train_ids=ids)
    with pytest.raises(ValueError, match=rf"outside the tokenizer's vocabulary \[0, {tok.get_vocab_size()}\)"):
        text.load(tmp_path / "text.npz", "train")


def test_a_huge_statistics_manifest_is_refused_not_echoed(tmp_path, capsys):
    stats = fid.Statistics.of(np.random.default_rng(0).normal(size=(8, fid.DIM)), fid.PYTORCH_FID)
    path = tmp_path / "stats.npz"
    np.savez(path, mu=stats.mu, sigma=stats.sigma, count=8, protocol=stats.protocol, protocol_name="pytorch-fid",
             manifest=np.array(json.dumps({"x": "y" * (2 << 20)})))
    code, stdout, err = run_cli(["fid", "--protocol", "pytorch-fid", str(path), str(path)], capsys)
    assert code == 2 and stdout == "" and "its manifest is a 8 MiB string" in err and len(err) < 500


def test_a_broken_safetensors_file_is_named(tmp_path):
    from transformers import BertConfig

    from diled.modalities.text.model import pretrained_bert

    (tmp_path / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{broken}")
    with pytest.raises(ValueError, match=rf"^{re.escape(str(tmp_path))}/model.safetensors: not a readable safetensors file"):
        pretrained_bert(tmp_path, BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8))
