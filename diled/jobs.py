"""What every workflow script needs: config, device and threads, a log, and the job's manifest."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from diled import manifest, registry
from diled.config import track_view
from diled.runtime import resolve_device, setup_torch


class Job:
    """Wraps Snakemake's ``snakemake`` object for a script; messages go to stderr and the rule's log."""

    def __init__(self, smk: Any, track: str | None = None):
        self.smk = smk
        self.config: dict = smk.config
        registry.load_plugins(self.config.get("plugins", []))  # models a plugin registers exist in this process too
        self.track: str = track or dict(smk.wildcards.items()).get("track", "image")
        self.view: dict = track_view(self.config, self.track)  # the track's section with the global keys
        self.t0 = time.perf_counter()
        self.device = resolve_device(self.config.get("device", "auto"))
        setup_torch(smk.threads, self.device)
        self._log = None
        if smk.log:
            Path(smk.log[0]).parent.mkdir(parents=True, exist_ok=True)
            self._log = open(smk.log[0], "w")
        self.log(f"rule {smk.rule}: device={self.device} threads={smk.threads}")

    def log(self, msg: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {msg}"
        print(line, file=sys.stderr, flush=True)
        if self._log:
            print(line, file=self._log, flush=True)

    @property
    def wall_s(self) -> float:
        return time.perf_counter() - self.t0

    def manifest(self, **extra: Any) -> dict:
        """Manifest of this job: config, commit, versions, hardware, seed, wall time so far, inputs/outputs."""
        return manifest.build(
            self.config,
            self.config.get("seed"),
            self.wall_s,
            rule=self.smk.rule,
            wildcards=dict(self.smk.wildcards.items()),
            inputs=[str(p) for p in self.smk.input],
            outputs=[str(p) for p in self.smk.output],
            **extra,
        )
