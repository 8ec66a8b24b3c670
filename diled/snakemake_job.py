"""The Snakemake glue of every workflow script (``Job``): config and track view, device and threads, a log, and the job's manifest.

The only library module that knows the ``snakemake`` object; everything else runs without Snakemake."""

from __future__ import annotations

import functools
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any, TextIO

from diled import manifest, registry
from diled.config import niceness, track_view
from diled.fileio import remove_stale_partials
from diled.hardware import lower_priority, resolve_device, setup_torch


class _Tee:
    """A text stream that writes to the console and to the rule's log (progress-bar redraws as lines)."""

    def __init__(self, console: TextIO, log: TextIO):
        self.console, self.log = console, log

    def write(self, text: str) -> int:
        self.console.write(text)
        self.log.write(text.replace("\r", "\n"))
        return len(text)

    def flush(self) -> None:
        self.console.flush()
        self.log.flush()

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.console, name)


def _fail(console: TextIO, log: TextIO, log_path: str, kind: type, exc: BaseException, tb: Any) -> None:
    """An uncaught error: the traceback into the rule's log only, one line on the console. Snakemake prints the log
    of a failed job (``show-failed-logs``), so the traceback reaches the screen once, not twice."""
    traceback.print_exception(kind, exc, tb, file=log)
    log.flush()
    summary = " ".join(str(exc).split()) or "(no message)"
    console.write(f"[{time.strftime('%H:%M:%S')}] error: {kind.__name__}: {summary[:500]} (traceback in {log_path})\n")
    console.flush()


class Job:
    """Wraps Snakemake's ``snakemake`` object for a script.

    The rule's log receives everything the job prints to stdout and stderr (messages, progress, warnings
    and, if it fails, the traceback), so the file Snakemake points to after a failure says what happened.
    """

    def __init__(self, smk: Any, track: str | None = None):
        if smk.log:
            Path(smk.log[0]).parent.mkdir(parents=True, exist_ok=True)
            log = open(smk.log[0], "w", buffering=1)
            console = sys.stderr
            sys.stdout, sys.stderr = _Tee(sys.stdout, log), _Tee(sys.stderr, log)
            sys.excepthook = functools.partial(_fail, console, log, smk.log[0])
        warnings.showwarning = self._warning
        self.smk = smk
        self.config: dict = smk.config
        registry.load_extensions(self.config)  # models a plugin or a model_dirs file adds exist in this process too
        self.track: str = track or dict(smk.wildcards.items()).get("track", "image")
        self.view: dict = track_view(self.config, self.track)  # the track's section with the global keys
        self.t0 = time.perf_counter()
        self.device = resolve_device(self.config.get("device", "auto"))
        setup_torch(smk.threads, self.device)
        wc = dict(smk.wildcards.items())
        self.nice = lower_priority(niceness(self.config.get("niceness"), self.track, wc.get("model"), wc.get("stage")))
        self.log(f"rule {smk.rule}: device={self.device} threads={smk.threads} niceness={self.nice}")
        for folder in {Path(p).parent for p in smk.output if Path(p).parent.is_dir()}:
            for stale in remove_stale_partials(folder):  # left by a job of this rule that was killed mid-write
                self.log(f"removed {stale} (a temporary of a killed job)")

    def log(self, msg: str) -> None:
        """A time-stamped line on stderr (and so in the rule's log)."""
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    def _warning(self, message, category, filename, lineno, file=None, line=None) -> None:
        self.log(f"warning: {message}")

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
