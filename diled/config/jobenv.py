"""The process environment of a job: allocator settings, CPU priority (niceness) and torch threads per stage."""

from __future__ import annotations

import itertools
import os

# glibc's malloc hands every block over 32 MiB (and, below that, freed heap tops) back to the kernel, so each CPU
# forward pass page-faults freshly zeroed memory: 22% of FID extraction's CPU time was system time. Keeping freed
# memory in the process removes it (150 digits, stock + ours, one thread: sys 28.8 s -> 1.7 s, wall 135 -> 103 s).
# The Snakefile sets these for every job it starts; a value already in the environment wins. Other allocators ignore them.
JOB_ENV = {"MALLOC_MMAP_THRESHOLD_": str(2**32), "MALLOC_TRIM_THRESHOLD_": str(2**36), "MALLOC_TOP_PAD_": str(2**28)}


def set_job_env(environ: dict | None = None) -> dict[str, str]:
    """Put ``JOB_ENV`` into ``environ`` (``os.environ``) where not already set; what the jobs will see."""
    environ = os.environ if environ is None else environ
    for key, value in JOB_ENV.items():
        environ.setdefault(key, value)
    return {key: environ[key] for key in JOB_ENV}


def niceness(table: dict[str, int] | None, track: str | None, model: str | None = None, stage: str | None = None) -> int:
    """The niceness of one job: the most specific of ``track/model/stage``, ``track/model``, ``track``, ``default``.

    Why: ``snakemake --cores 8`` on a 2-core machine runs eight jobs on two cores, and the kernel shares them
    equally, so the image track's longest chain (the DiffAE autoencoder stage, then everything fine-tuned
    from it) ran at a quarter of a core while short jobs that nothing waits for ran beside it. Niceness lets
    the long chain take the cores first; the total work is unchanged. On a cluster (one job per allocation)
    it changes nothing.
    """
    table = table or {}
    return most_specific(table, track, model, stage, int(table.get("default", 0)))


def most_specific(table: dict[str, int] | None, track: str | None, model: str | None, stage: str | None, default: int) -> int:
    """The value of the most specific key of ``track/model/stage``, ``track/model``, ``track`` in ``table``, else ``default``."""
    table = table or {}
    parts = list(itertools.takewhile(lambda part: part is not None, (track, model, stage)))
    for n in range(len(parts), 0, -1):  # most specific first
        key = "/".join(parts[:n])
        if key in table:
            return int(table[key])
    return default


def job_threads(config: dict, track: str, model: str | None = None, stage: str | None = None) -> int:
    """Torch threads (and Snakemake cores) of one training job: ``threads``, or the most specific ``stage_threads`` entry.

    Why: a chain that nothing runs beside (the text track's shared autoencoder) would leave a core idle at one thread."""
    return most_specific(config.get("stage_threads"), track, model, stage, int(config["threads"]))
