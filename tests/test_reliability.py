"""Reliability catalog: interruptions, corrupt or crafted files, bad config and bad CLI input.

Each case asserts the message the user gets, the exit status, and that nothing corrupt is left behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from diled import checkpoint, config, manifest
from diled.fileio import remove_stale_partials, writer_identity
from diled.metrics import fid
from diled.metrics.images import ImageInputError
from diled.train import TrainSpec, train

ROOT = Path(__file__).resolve().parent.parent


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ----------------------------------------------------------------------------- training: kill -9 and resume

TRAIN_SCRIPT = textwrap.dedent("""
    import sys, time, torch
    from torch import nn
    from diled.train import TrainSpec, train

    torch.manual_seed(123)
    torch.set_num_threads(1)
    model = nn.Sequential(nn.Linear(8, 64), nn.Tanh(), nn.Linear(64, 1))
    data = torch.randn(256, 8, generator=torch.Generator().manual_seed(0))
    slow = float(sys.argv[2])

    def loss(m, x):
        time.sleep(slow)
        noise = torch.randn(x.shape[0], 1)
        return (m(x) - x.sum(1, keepdim=True) - 0.1 * noise).pow(2).mean(), {}

    spec = TrainSpec(steps=60, batch_size=16, lr=1e-2, ema_decay=0.9, seed=0, ckpt_every=10, keep=2)
    res = train(model, loss, data, spec, sys.argv[1], progress=False)
    torch.save({"model": model.state_dict(), "ema": res.ema.state_dict(), "resumed_from": res.resumed_from}, sys.argv[3])
""")


def _train_subprocess(run_dir: Path, out: Path, slow: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", TRAIN_SCRIPT, str(run_dir), str(slow), str(out)], cwd=ROOT)


def test_training_killed_mid_run_resumes_to_identical_tensors(tmp_path):
    straight = _train_subprocess(tmp_path / "a", tmp_path / "a.pt", 0.0)
    assert straight.wait(120) == 0
    # the same run, killed with SIGKILL once it has written a checkpoint (steps are slowed to 50 ms)
    victim = _train_subprocess(tmp_path / "b", tmp_path / "b.pt", 0.05)
    deadline = time.time() + 120
    while not list((tmp_path / "b").glob("ckpt-*.pt")) and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    victim.send_signal(signal.SIGKILL)
    victim.wait(30)
    assert not (tmp_path / "b.pt").exists(), "the victim finished before it was killed"
    # a checkpoint write that a killed process left half-done is cleaned up on resume
    stale = tmp_path / "b" / f"ckpt-00000099.partial-{writer_identity()}-{_dead_pid()}.pt"
    stale.write_bytes(b"half a checkpoint")
    resumed = _train_subprocess(tmp_path / "b", tmp_path / "b.pt", 0.0)
    assert resumed.wait(120) == 0
    a, b = (torch.load(tmp_path / f"{k}.pt", weights_only=True) for k in "ab")
    assert b["resumed_from"] > 0
    for part in ("model", "ema"):
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), (part, key)
    assert not stale.exists()


# ----------------------------------------------------------------------------- checkpoints


class Quadratic(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 1)


def _run(run_dir: Path, steps: int = 10):
    torch.manual_seed(123)
    model = Quadratic()
    spec = TrainSpec(steps=steps, batch_size=8, lr=1e-2, ema_decay=0.9, seed=0, ckpt_every=5, keep=2)
    data = torch.randn(64, 3, generator=torch.Generator().manual_seed(0))
    return train(model, lambda m, x: (((m.lin(x) - x.sum(1, keepdim=True)) ** 2).mean(), {}), data, spec, run_dir, progress=False)


def _flip_tensor_bytes(path: Path, tensor: torch.Tensor) -> None:
    """Overwrite one tensor's stored bytes in place (the zip entry stays valid: torch would load it)."""
    raw = path.read_bytes()
    needle = tensor.contiguous().numpy().tobytes()
    at = raw.find(needle)
    assert at > 0
    path.write_bytes(raw[:at] + b"\x7f" * len(needle) + raw[at + len(needle) :])


def test_flipped_bytes_inside_a_tensor_are_caught(tmp_path):
    path = tmp_path / "m.pt"
    weight = torch.arange(64, dtype=torch.float32) / 7
    checkpoint.save({"w": weight, "meta": {"steps": 3}}, path)
    assert torch.equal(checkpoint.load(path)["w"], weight)
    _flip_tensor_bytes(path, weight)
    assert torch.load(path, weights_only=True)["payload"]["w"].abs().max() > 1e30  # torch alone accepts it
    with pytest.raises(checkpoint.CheckpointError, match=rf"^{path}: checksum mismatch"):
        checkpoint.load(path)


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty"])
def test_corrupt_latest_checkpoint_falls_back_to_the_previous(tmp_path, damage):
    straight = _run(tmp_path / "a", 10)
    _run(tmp_path / "b", 10)  # ckpt 5 and 10
    latest, previous = tmp_path / "b" / "ckpt-00000010.pt", tmp_path / "b" / "ckpt-00000005.pt"
    if damage == "flip":
        _flip_tensor_bytes(latest, checkpoint.load(latest)["model"]["lin.weight"])
    elif damage == "truncate":
        latest.write_bytes(latest.read_bytes()[:300])
    else:
        latest.write_bytes(b"")
    with pytest.warns(UserWarning) as caught:
        resumed = _run(tmp_path / "b", 10)
    message = str(caught[0].message)
    assert f"resuming from {previous} instead" in message and str(latest) in message
    assert resumed.resumed_from == 5
    assert (tmp_path / "b" / "ckpt-00000010.pt.corrupt").exists()
    for p, q in zip(straight.ema.parameters(), resumed.ema.parameters()):
        assert torch.equal(p, q)


def test_no_usable_checkpoint_sets_all_aside_and_the_rerun_starts_over(tmp_path):
    straight = _run(tmp_path / "a", 10)
    run_dir = tmp_path / "b"
    _run(run_dir, 10)
    for p in run_dir.glob("ckpt-*.pt"):
        p.write_bytes(b"garbage")
    with pytest.raises(checkpoint.CheckpointError, match="set aside as [*].corrupt: the next run trains this stage from step 0"):
        _run(run_dir, 10)
    assert sorted(p.name for p in run_dir.glob("ckpt-*")) == ["ckpt-00000005.pt.corrupt", "ckpt-00000010.pt.corrupt"]
    with pytest.warns(UserWarning, match="training starts from step 0; the checkpoints set aside as corrupt earlier"):
        again = _run(run_dir, 10)
    assert again.resumed_from == 0
    for p, q in zip(straight.ema.parameters(), again.ema.parameters()):
        assert torch.equal(p, q)


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_everywhere(tmp_path):
    from diled import stages

    marker = tmp_path / "pwned"
    crafted = tmp_path / "model.pt"
    torch.save({"format": checkpoint.FORMAT, "sha256": "x", "payload": {"config": _Evil(marker)}}, crafted)
    with pytest.raises(checkpoint.CheckpointError, match=rf"^{crafted}: refused: (it holds objects other than tensors|not a zip-format torch file)"):
        checkpoint.load(crafted)
    with pytest.raises(checkpoint.CheckpointError, match="refused"):
        stages.load_model(crafted)
    # dropped into a run directory as the newest checkpoint: refused, set aside, never executed
    run_dir = tmp_path / "run"
    _run(run_dir, 10)
    crafted.replace(run_dir / "ckpt-00000099.pt")
    with pytest.warns(UserWarning, match="refused"):
        assert _run(run_dir, 10).resumed_from == 10
    assert not marker.exists()


def test_foreign_checkpoint_is_named(tmp_path):
    path = tmp_path / "old.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, path)
    with pytest.raises(checkpoint.CheckpointError, match=rf"^{path}: not a diled-checkpoint/1 file"):
        checkpoint.load(path)


def test_rerun_of_a_finished_run_has_strict_manifest_values(tmp_path):
    first = _run(tmp_path, 10)
    again = _run(tmp_path, 10)
    assert again.final_loss == first.final_loss and again.wall_s == first.wall_s
    out = tmp_path / "m.json"
    manifest.write_json({"final_loss": again.final_loss, "nan": float("nan"), "inf": [float("inf")]}, out)
    text = out.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"final_loss": first.final_loss, "nan": None, "inf": [None]}


# ----------------------------------------------------------------------------- feature cache


class _FakeExtractor:
    """Deterministic features from pixel statistics: the cache logic, without an Inception pass."""

    calls = 0

    def __init__(self, protocol, device="cpu"):
        pass

    def __call__(self, batch):
        _FakeExtractor.calls += 1
        x = batch.reshape(len(batch), -1).astype(np.float64)
        return np.repeat(np.stack([x.mean(1), x.std(1)], 1), fid.DIM // 2, axis=1) + np.arange(fid.DIM) * 1e-3


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DILED_FEATURE_CACHE", str(tmp_path / "features"))
    monkeypatch.setattr(fid, "FeatureExtractor", _FakeExtractor)
    images = np.random.default_rng(0).integers(0, 256, (6, 3, 16, 16), dtype=np.uint8)
    entry = tmp_path / "features" / fid.PYTORCH_FID.feature_digest
    return images, entry


def _entry_files(entry: Path) -> tuple[Path, Path]:
    (npy,) = entry.glob("*.npy")
    return npy, npy.with_suffix(".json")


def test_bad_batch_size_stores_nothing(cache):
    images, entry = cache
    for bad in (0, -3):
        with pytest.raises(ValueError, match=f"batch size must be a positive integer, got {bad}"):
            fid.statistics(images, fid.PYTORCH_FID, batch_size=bad)
    assert not entry.exists()


def test_incomplete_extraction_is_not_cached(cache):
    images, entry = cache
    store = fid.FeatureCache(entry.parent, fid.PYTORCH_FID)
    with pytest.raises(RuntimeError, match="wrote 2 of 6 rows; nothing cached"):
        with store.writer("abc", 6) as rows:
            rows.append(np.zeros((2, fid.DIM)))
    assert list(entry.iterdir()) == []


@pytest.mark.parametrize("damage", ["edit", "truncate", "empty", "no-record", "wrong-rows"])
def test_damaged_cache_entry_is_named_discarded_and_recomputed(cache, damage):
    images, entry = cache
    fresh = fid.statistics(images, fid.PYTORCH_FID, batch_size=4)
    npy, meta = _entry_files(entry)
    if damage == "edit":
        arr = np.load(npy)
        arr[3, 7] = 1e9
        np.save(npy, arr)
    elif damage == "truncate":
        npy.write_bytes(npy.read_bytes()[:1000])
    elif damage == "empty":
        npy.write_bytes(b"")
    elif damage == "no-record":
        meta.unlink()
    else:
        meta.write_text(json.dumps({**json.loads(meta.read_text()), "rows": 5}))
    with pytest.warns(UserWarning, match=rf"feature cache entry {npy} discarded: .*; recomputing it"):
        again = fid.statistics(images, fid.PYTORCH_FID, batch_size=4)
    assert again.manifest["features"] == "computed (cached)"
    np.testing.assert_array_equal(again.mu, fresh.mu)
    np.testing.assert_array_equal(again.sigma, fresh.sigma)
    assert fid.statistics(images, fid.PYTORCH_FID).manifest["features"].startswith("cache:")  # the new entry is good


def test_stale_partial_files_are_removed_live_ones_kept(cache):
    images, entry = cache
    fid.statistics(images, fid.PYTORCH_FID, batch_size=4)
    dead = entry / f"0123.partial-{writer_identity()}-{_dead_pid()}.npy"
    live = entry / f"0456.partial-{writer_identity()}-{os.getppid()}.npy"  # a running process (a concurrent writer)
    dead.write_bytes(b"x")
    live.write_bytes(b"x")
    fid.statistics(images, fid.PYTORCH_FID, batch_size=4)
    assert not dead.exists() and live.exists()
    assert remove_stale_partials(entry) == []


def test_feature_cache_switch_is_read_strictly(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for off in ("off", "OFF", "Off", "0", "false", "none"):
        monkeypatch.setenv("DILED_FEATURE_CACHE", off)
        assert fid.feature_cache_dir() is None
    monkeypatch.setenv("DILED_FEATURE_CACHE", "")
    with pytest.raises(ValueError, match="DILED_FEATURE_CACHE is set but empty"):
        fid.feature_cache_dir()
    monkeypatch.setenv("DILED_FEATURE_CACHE", "OFF")
    monkeypatch.setattr(fid, "FeatureExtractor", _FakeExtractor)
    fid.statistics(np.zeros((3, 3, 16, 16), np.uint8), fid.PYTORCH_FID)
    assert list(tmp_path.iterdir()) == []  # no folder named OFF, nothing in the working directory


def test_resumed_training_logs_each_step_once(tmp_path):
    _run(tmp_path, 10)  # checkpoints at 5 and 10, log rows 1..10
    latest = tmp_path / "ckpt-00000010.pt"
    latest.write_bytes(latest.read_bytes()[:300])
    with pytest.warns(UserWarning, match="resuming from"):
        _run(tmp_path, 10)  # falls back to step 5 and redoes 6..10
    with open(tmp_path / "log.csv") as f:
        steps = [int(float(row.split(",")[0])) for row in f.read().splitlines()[1:]]
    assert steps == list(range(1, 11))


def test_a_bad_generated_set_is_refused_before_the_reference_pass(tmp_path, monkeypatch):
    gen = tmp_path / "gen"
    _png_folder(gen, n=4)
    (gen / "3.png").write_bytes((gen / "3.png").read_bytes()[:60])  # the last file truncated
    monkeypatch.setenv("DILED_FEATURE_CACHE", "off")
    monkeypatch.setattr(fid, "FeatureExtractor", _FakeExtractor)
    _FakeExtractor.calls = 0
    with pytest.raises(ImageInputError, match=r"3.png: unreadable or truncated image"):
        fid.fid(gen, np.zeros((4, 3, 16, 16), np.uint8), fid.PYTORCH_FID)
    assert _FakeExtractor.calls == 0  # no Inception batch of the reference was computed first


def test_compressed_image_array_claiming_more_than_memory_is_refused_unread(tmp_path, monkeypatch):
    from diled.metrics import images

    path = tmp_path / "zeros.npz"
    np.savez_compressed(path, arr_0=np.zeros((64, 3, 64, 64), np.uint8))  # 786 kB inflated, 1 kB on disk
    monkeypatch.setattr(images, "memory_limit_bytes", lambda: 100_000)
    with pytest.raises(ImageInputError, match=rf"^{path}: images \(64, 3, 64, 64\) uint8 would take .* pass the images as a folder"):
        images.load_array_file(path)


def _stats_file(path: Path, **changes) -> Path:
    rng = np.random.default_rng(0)
    good = fid.Statistics.of(rng.normal(size=(20, fid.DIM)), fid.PYTORCH_FID)
    members = {"mu": good.mu, "sigma": good.sigma, "count": good.count, "protocol": good.protocol, "protocol_name": good.protocol_name,
               "manifest": "{}"}
    members.update(changes)
    np.savez(path, **{k: v for k, v in members.items() if v is not None})
    return path


STATS_CASES = [
    ("nan mu", {"mu": np.full(fid.DIM, np.nan)}, "mu holds 2048 NaN or inf values"),
    ("inf sigma", {"sigma": np.full((fid.DIM, fid.DIM), np.inf)}, "sigma holds 4194304 NaN or inf values"),
    ("count 1", {"count": 1}, "count is 1; a covariance needs at least 2 images"),
    ("short mu", {"mu": np.zeros(100)}, "mu is float64 of shape (100,), expected float of shape (2048,)"),
    ("int sigma", {"sigma": np.zeros((fid.DIM, fid.DIM), np.int64)}, "sigma is int64 of shape (2048, 2048), expected float"),
    ("no mu", {"mu": None}, "statistics file lacks mu (it holds count, manifest, protocol, protocol_name, sigma)"),
    ("asymmetric", {"sigma": np.triu(np.ones((fid.DIM, fid.DIM)))}, "sigma is not a covariance matrix"),
    ("bad manifest", {"manifest": "{nope"}, "its manifest is not JSON"),
    ("huge features", {"features": np.zeros((3, 7))}, "features is float64 of shape (3, 7), expected float of shape (20, 2048)"),
]


@pytest.mark.parametrize("name,changes,message", STATS_CASES, ids=[c[0] for c in STATS_CASES])
def test_bad_statistics_files_are_refused_with_exit_2(tmp_path, capsys, name, changes, message):
    from diled import cli

    bad, good = _stats_file(tmp_path / "bad.npz", **changes), _stats_file(tmp_path / "good.npz")
    for gen, ref in ((bad, good), (good, bad)):
        assert cli.main(["fid", "--protocol", "pytorch-fid", str(gen), str(ref), "--out", str(tmp_path / "out.json")]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"diled fid: error: {bad}: ") and message in err and len(_messages(err)) == 1, err
    assert not (tmp_path / "out.json").exists()


def test_damaged_statistics_file_is_named(tmp_path, capsys):
    from diled import cli

    good = _stats_file(tmp_path / "good.npz")
    raw = bytearray(good.read_bytes())
    raw[len(raw) // 3] ^= 0xFF  # inside sigma's bytes: the zip's CRC catches it
    (tmp_path / "crc.npz").write_bytes(bytes(raw))
    assert cli.main(["fid", "--protocol", "pytorch-fid", str(tmp_path / "crc.npz"), str(good)]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'crc.npz'}: damaged statistics file (BadZipFile: Bad CRC-32" in err


# ----------------------------------------------------------------------------- CLI catalog


def _png_folder(folder: Path, n: int = 3, size: int = 16) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


def _messages(stderr: str) -> list[str]:
    """stderr without progress-bar redraws: what the user reads."""
    return [line for line in stderr.splitlines() if line.strip() and "%|" not in line]


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "diled.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **(env or {})}, timeout=300)


def _bomb(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    Image.new("1", (14000, 14000)).save(folder / "a.png")  # 196 Mpx: PIL's decompression-bomb limit is 179 Mpx
    Image.new("1", (14000, 14000)).save(folder / "b.png")
    return folder


def _empty_npy(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "x.npy").write_bytes(b"")
    return folder / "x.npy"


CLI_CASES = [
    # (name, extra args or a builder of the source, expected message)
    ("batch-size 0", ["--batch-size", "0"], "argument --batch-size: must be a positive integer, got 0"),
    ("batch-size -3", ["--batch-size", "-3"], "argument --batch-size: must be a positive integer, got -3"),
    ("sample-count 0", ["--sample-count", "0"], "argument --sample-count: must be a positive integer, got 0"),
    ("unknown device", ["--device", "gpu"], "unknown device 'gpu'; use cpu, cuda, cuda:N, mps or auto"),
    ("absent device", ["--device", "cuda:3"], "device 'cuda:3' asked for, but this machine has"),
    ("protocol @4", ["--protocol", "pytorch-fid@4"], "resolution must be an integer >= 8 or None, got 4"),
    ("unknown protocol", ["--protocol", "fid"], "unknown FID protocol 'fid'"),
]


@pytest.mark.parametrize("name,args,message", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_cli_bad_arguments(tmp_path, name, args, message):
    src = _png_folder(tmp_path / "imgs")
    argv = ["fid-stats", "--protocol", "pytorch-fid", str(src), str(tmp_path / "out.npz"), *args]
    res = _cli(*argv, env={"DILED_FEATURE_CACHE": str(tmp_path / "features")})
    assert res.returncode == 2, res.stderr
    assert message in res.stderr
    assert len(_messages(res.stderr)) == 1 and "Traceback" not in res.stderr
    assert not (tmp_path / "out.npz").exists() and not (tmp_path / "features").exists()


def _large(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    Image.new("1", (10000, 9500)).save(folder / "a.png")  # 95 Mpx: PIL would only warn, and decode it whole
    Image.new("1", (10000, 9500)).save(folder / "b.png")
    return folder


@pytest.mark.parametrize("case,message", [
    ("bomb", "refused as a decompression bomb"),
    ("large", "refused as a decompression bomb before decoding: 10000x9500 px (95 MP) exceeds the 89 MP"),
    ("empty-npy", "unreadable array file (EOFError"),
    ("missing", "no such file or folder"),
])
def test_cli_bad_inputs(tmp_path, case, message):
    src = {"bomb": lambda: _bomb(tmp_path / "bomb"), "large": lambda: _large(tmp_path / "large"), "empty-npy": lambda: _empty_npy(tmp_path / "e"),
           "missing": lambda: tmp_path / "nowhere"}[case]()
    ref = _png_folder(tmp_path / "ref")
    res = _cli("fid", "--protocol", "pytorch-fid", str(src), str(ref), "--out", str(tmp_path / "out.json"),
               env={"DILED_FEATURE_CACHE": "off"})
    assert res.returncode == 2, res.stderr
    assert message in res.stderr and len(_messages(res.stderr)) == 1 and "Traceback" not in res.stderr
    assert not (tmp_path / "out.json").exists()


def test_cli_version_and_tiny_image_warning(tmp_path):
    version = _cli("--version")
    assert version.returncode == 0 and version.stdout.startswith("diled ")
    src = _png_folder(tmp_path / "tiny", n=2, size=1)
    res = _cli("fid-stats", "--protocol", "pytorch-fid", str(src), str(tmp_path / "s.npz"), env={"DILED_FEATURE_CACHE": "off"})
    assert res.returncode == 0, res.stderr
    assert "diled: warning: images are 1x1 px" in res.stderr
    assert (tmp_path / "s.npz").exists()


# ----------------------------------------------------------------------------- rule logs


def test_rule_log_captures_output_and_traceback(tmp_path):
    log = tmp_path / "logs" / "job.log"
    stale = tmp_path / "out" / f"table.partial-{writer_identity()}-{_dead_pid()}.csv"  # a killed earlier attempt's temporary
    stale.parent.mkdir()
    stale.write_text("half")
    script = textwrap.dedent(f"""
        import sys, types
        from diled.snakemake_job import Job
        smk = types.SimpleNamespace(config={{"outdir": "x", "seed": 0, "device": "cpu", "threads": 1, "image": {{}}}},
                                    log=[{str(log)!r}], threads=1, rule="demo", wildcards={{}}, input=[],
                                    output=[{str(tmp_path / "out" / "table.csv")!r}])
        job = Job(smk, track="image")
        print("to stdout")
        job.log("a message")
        raise RuntimeError("boom in the job")
    """)
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 1
    text = log.read_text()
    for expected in ("rule demo: device=cpu", "to stdout", "a message", "Traceback", "RuntimeError: boom in the job",
                     f"removed {stale}"):
        assert expected in text, expected
    assert not stale.exists()
    assert "RuntimeError: boom in the job" in res.stderr  # and still on the console, as one line naming the log
    assert "Traceback" not in res.stderr and f"(traceback in {log})" in res.stderr  # Snakemake shows the log: once


# ----------------------------------------------------------------------------- config catalog


def _snakemake(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", "--config", f"outdir={tmp_path / 'results'}",
                           *args], capture_output=True, text=True, cwd=ROOT, timeout=300)


def _user_config(tmp_path: Path, data: dict) -> str:
    path = tmp_path / "user.yaml"
    path.write_text(yaml.safe_dump(data))
    return f"--configfile={path}"


CONFIG_CASES = [
    ("unknown key", {"image": {"bogus": 1}}, [], "image: unknown key(s) ['bogus']; allowed here: ['analyses', 'data', "),
    ("wrong type", {"seed": "one"}, [], 'seed = "one": \'one\' is not of type \'integer\''),
    ("protocol @4", {"image": {"eval": {"fid": {"protocol": "pytorch-fid@4", "batch_size": 50}}}}, [],
     "eval.fid.protocol: invalid FID protocol 'pytorch-fid@4': resolution must be an integer >= 8 or None, got 4"),
    ("dropout 1", {"text": {"model_settings": {"ae": {"decoder_dropout": 1.0}}}}, [],
     "text.models.ae.decoder_dropout = 1.0: 1.0 is greater than or equal to the maximum of 1"),
    ("downscale 4", {"image": {"fid_settings": {"downscale": 4}}}, [],
     "image.fid_settings.downscale = 4: 4 is less than the minimum of 8"),
    ("two T", {"image": {"latent": {"T": 500}}}, [], "net.pixel_T (1000) must equal latent.T (500): DiLED's image objective"),
    ("cuda without GPU", {"device": "cuda"}, ["all"], "device: device 'cuda' asked for, but this machine has no CUDA device"),
]


@pytest.mark.parametrize("name,data,target,message", CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_bad_config_is_refused_before_any_job(tmp_path, name, data, target, message):
    if torch.cuda.is_available() and name == "cuda without GPU":
        pytest.skip("this machine has a GPU")
    res = _snakemake(tmp_path, _user_config(tmp_path, data), *(target or ["-n"]))
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert message in out
    assert "Failed validating" not in out and "Traceback" not in out  # no schema dump
    if not target:  # refused while parsing: the message, not pages of context
        assert len(out.splitlines()) < 12, out
    assert not (tmp_path / "results").exists()


def test_defaulted_sections_are_reported(tmp_path):
    user = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    del user["image"]["probe"]
    res = _snakemake(tmp_path, _user_config(tmp_path, user), "-n")
    assert res.returncode == 0, res.stderr
    assert "config: image: probe not set, using the default from config/config.yaml" in res.stderr
    assert ("config: image.model_settings: ddim, diffae, diffae_ft, diled, ldm, nvae, cmcd not set, using the default from "
            "config/models/image/<name>.yaml (presets.smoke)") in res.stderr


def test_defaulted_lists_only_what_the_user_left_out():
    merged = {"a": 1, "s": {"x": 1, "y": {"p": 1, "q": 2}}, "t": {"z": 1}}
    user = {"a": 2, "s": {"y": {"p": 3}}}
    assert config.defaulted(merged, user, "D") == [
        "t not set, using the default from D",
        "s: x not set, using the default from D",
        "s.y: q not set, using the default from D",
    ]
