"""``precision: auto`` decided by a cached timing probe (diled.hardware): the choice both ways, the cache key, a corrupt,
foreign or unreadable cache file, and the probe leaving the run's random state alone."""

from __future__ import annotations

import errno
import json
import pickle
from pathlib import Path

import pytest
import torch

from diled import hardware


@pytest.fixture
def probe(tmp_path, monkeypatch):
    """A machine with native bf16 whose probe returns ``probe.ratios`` and counts its calls; an empty cache in tmp_path."""
    monkeypatch.setenv("DILED_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(hardware, "_PROBES", {})
    monkeypatch.setattr(hardware, "native_bf16_features", lambda: ("avx512_bf16",))

    class Stub:
        ratios = {"conv": 1.6, "sequence": 0.8, "conv_sample": 1.3, "chain_sample": 0.5}
        calls = 0

        def __call__(self):
            self.calls += 1
            return {"seconds": {k: {"fp32": r, "bf16": 1.0} for k, r in self.ratios.items()}, "ratios": dict(self.ratios)}

    stub = Stub()
    monkeypatch.setattr(hardware, "run_probe", stub)
    return stub


def cache_file() -> Path:
    return hardware.probe_cache_file(hardware.probe_key())


def test_the_probe_drives_the_choice_both_ways(probe, monkeypatch):
    assert hardware.resolve_precision("auto", "cpu", "image") == "bf16"  # conv 1.6x faster in bf16
    assert hardware.resolve_precision("auto", "cpu", "text") == "fp32"  # sequence 0.8x: slower
    assert hardware.resolve_precision("auto", "cpu", "protein") == "fp32"
    assert hardware.resolve_precision("auto", "cpu") == "fp32"  # an unknown track needs every workload faster
    assert hardware.resolve_precision("auto", "cpu", "image", "sample") == "bf16"  # sampling has its own workloads
    assert hardware.resolve_precision("auto", "cpu", "protein", "sample") == "fp32"
    choice = hardware.choose_precision("auto", "cpu", "text")
    assert choice["ratios"] == probe.ratios and "sequence 0.80x" in choice["reason"]
    with pytest.raises(ValueError, match="mode must be one of"):
        hardware.resolve_precision("auto", "cpu", "image", "eval")
    assert hardware.resolve_precision("bf16", "cpu", "text") == "bf16"  # a named precision is never second-guessed
    assert hardware.resolve_precision("auto", torch.device("cuda"), "image") == "fp32"  # a GPU run names bf16/fp16 itself
    with pytest.raises(ValueError, match=r"precision must be one of \['auto', 'fp32', 'bf16', 'fp16'\], got 'tf32'"):
        hardware.resolve_precision("tf32", "cpu")
    assert probe.calls == 1  # one probe per process, whatever asks


def test_a_ratio_inside_the_margin_keeps_fp32(probe):
    probe.ratios = {**probe.ratios, "conv": hardware.BF16_MARGIN - 0.05, "sequence": hardware.BF16_MARGIN + 0.05}
    assert hardware.resolve_precision("auto", "cpu", "image") == "fp32"
    assert hardware.resolve_precision("auto", "cpu", "text") == "bf16"


def test_no_native_bf16_means_fp32_without_probing(probe, monkeypatch):
    monkeypatch.setattr(hardware, "native_bf16_features", lambda: ())
    choice = hardware.choose_precision("auto", "cpu", "image")
    assert choice["precision"] == "fp32" and "no native bf16" in choice["reason"] and probe.calls == 0


def test_the_cache_key_names_cpu_model_threads_and_torch(probe, monkeypatch):
    first = cache_file()
    monkeypatch.setattr(hardware, "cpu_model", lambda: "Another CPU @ 2.0GHz")
    second = cache_file()
    monkeypatch.setattr(torch, "__version__", "9.9.9")
    third = cache_file()
    torch.set_num_threads(2)
    fourth = cache_file()
    assert len({first, second, third, fourth}) == 4


def test_a_second_process_reads_the_cached_choice(probe, monkeypatch):
    assert hardware.resolve_precision("auto", "cpu", "image") == "bf16"
    record = json.loads(cache_file().read_text())
    assert record["key"] == hardware.probe_key() and record["ratios"] == probe.ratios
    monkeypatch.setattr(hardware, "_PROBES", {})  # a new process
    first = dict(probe.ratios)
    probe.ratios = dict.fromkeys(first, 0.5)  # what a noisy re-measurement could say: it is not asked
    assert hardware.resolve_precision("auto", "cpu", "image") == "bf16" and probe.calls == 1
    assert hardware.probes_used()[0]["ratios"] == first  # what a manifest records


@pytest.mark.parametrize("content", [
    b"\x80\x04\x95garbage",  # binary
    pickle.dumps({"ratios": {"conv": 9.0, "sequence": 9.0}}),  # a pickle: never unpickled
    b'{"key": {"cpu_model": "elsewhere"}, "ratios": {"conv": 9.0, "sequence": 9.0, "conv_sample": 9.0, "chain_sample": 9.0}}',
    b"[" * 100000,  # nested past the parser's depth
    b'{"ratios": {"conv": NaN, "sequence": 1.0}}',
])
def test_a_corrupt_or_foreign_cache_file_is_ignored_and_rewritten(probe, content, monkeypatch):
    path = cache_file()
    path.parent.mkdir(parents=True)
    if content.startswith(b"{\"ratios\""):  # this machine's key, an impossible ratio
        content = json.dumps({"key": hardware.probe_key(), "ratios": {**dict.fromkeys(hardware.WORKLOADS, 1.0), "conv": float("nan")}}).encode()
    path.write_bytes(content)
    with pytest.warns(UserWarning, match="not a precision probe of this machine"):
        assert hardware.resolve_precision("auto", "cpu", "image") == "bf16"
    assert probe.calls == 1 and json.loads(path.read_text())["ratios"] == probe.ratios


def test_a_cache_file_that_cannot_be_read_now_is_left_alone(probe, failing_path):
    path = cache_file()
    path.parent.mkdir(parents=True)
    path.write_text("kept")
    failing_path("read_bytes", lambda p: p == path, errno.EIO, "Input/output error")
    with pytest.warns(UserWarning, match="could not be read now"):
        assert hardware.resolve_precision("auto", "cpu", "image") == "bf16"
    assert path.read_text() == "kept" and probe.calls == 1


def test_an_unwritable_cache_costs_a_warning_not_the_run(probe, failing_path):
    failing_path("write_text", lambda p: "hardware" in p.parts, errno.ENOSPC, "No space left on device")
    with pytest.warns(UserWarning, match="could not be cached .No space left on device"):
        assert hardware.resolve_precision("auto", "cpu", "image") == "bf16"
    assert [p.name for p in cache_file().parent.iterdir() if not p.name.endswith(".lock")] == []  # no partial file left


def test_the_real_probe_measures_and_leaves_the_random_state_alone():
    torch.manual_seed(7)
    state = torch.get_rng_state()
    result = hardware.run_probe(repeats=1)
    assert torch.equal(torch.get_rng_state(), state)  # training seeds do not depend on whether the probe ran
    assert set(result["ratios"]) == set(hardware.WORKLOADS)
    assert all(0 < r < 100 for r in result["ratios"].values())
    assert all(s["fp32"] > 0 and s["bf16"] > 0 for s in result["seconds"].values())


def test_cli_hardware_prints_the_decision_per_track(probe, capsys):
    from diled.cli import main

    assert main(["hardware"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["native_bf16"] == ["avx512_bf16"] and out["probe"]["ratios"] == probe.ratios
    assert {t: c["precision"] for t, c in out["auto"].items()} == {
        "image/train": "bf16", "text/train": "fp32", "protein/train": "fp32", "image/sample": "bf16", "text/sample": "fp32", "protein/sample": "fp32"}
    assert main(["hardware", "--reprobe"]) == 0 and probe.calls == 2
