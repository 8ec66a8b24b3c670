"""The configuration: per-track views, the checks the schema cannot express, and run-directory keys.

One module per concern, every public name re-exported here (``from diled.config import track_view``):
``resolve`` (reading and merging config files, resolving each track's models from their files),
``views`` (track views, run keys), ``checks`` (cross-field, per-model and device checks) and ``jobenv``
(a job's process environment: allocator, niceness, threads).

The config has global keys (``outdir``, ``seed``, ``device``, ``threads``, ``plugins``, ``model_dirs``)
and one section per track (``image``, ``text``, ``protein``). A track section names the models that run
(``models: [ddim, diled]``; absent: every model of the catalogue) and overrides their settings under
``model_settings.<name>``; ``resolve_models`` turns the two into ``models: {name: section}``, each
section the model's file defaults (``config/models/<track>/<name>.yaml``) with the user's values merged
over. Code that runs one track reads a *track view*: the resolved section with the global keys merged
in. No torch here: Snakemake imports this module when it parses the DAG.
"""

from diled.config.checks import (
                                 TRACK_CHECKS,
                                 check,
                                 check_device,
                                 cmcd_problems,
                                 control_problems,
                                 device_problems,
                                 image_problems,
                                 ldm_problems,
                                 problems,
                                 protein_problems,
                                 protocol_problems,
                                 schedule_problems,
                                 schema_problems,
                                 text_problems,
)
from diled.config.jobenv import JOB_ENV, job_threads, most_specific, niceness, set_job_env
from diled.config.resolve import defaulted, full_schema, load_config, merge, resolve_models, user_config
from diled.config.views import ANALYSES, GLOBAL_KEYS, analyses, image_labelled, run_key, stage_config, text_judges_key, track_view, tracks

__all__ = [
    "ANALYSES", "GLOBAL_KEYS", "JOB_ENV", "TRACK_CHECKS", "analyses", "image_labelled", "check", "check_device", "cmcd_problems", "control_problems",
    "defaulted", "device_problems", "full_schema", "image_problems", "job_threads", "ldm_problems", "load_config", "merge",
    "most_specific", "niceness", "problems", "protein_problems", "protocol_problems", "resolve_models", "run_key",
    "schedule_problems", "schema_problems", "set_job_env", "stage_config", "text_judges_key", "text_problems", "track_view",
    "tracks", "user_config",
]
