"""A third-party model, whole: this module and ``models/image/toy.yaml`` beside it, nothing else.

The tests put this folder on ``PYTHONPATH`` and name ``models/`` in ``model_dirs``; the model then joins the
smoke DAG (trained, sampled, scored, a Table 6 row) without an edit anywhere in the suite.
"""

from __future__ import annotations

from torch import nn

from diled.stages import StageContext, StagePlan


def build(cfg: dict) -> nn.Module:
    """A DDIM of the track's UNet: the network of a real baseline under a new name."""
    from baselines.ddim import build as ddim

    return ddim(cfg)


def train(ctx: StageContext) -> StagePlan:
    return StagePlan(ctx.build().to(ctx.device), lambda m, x: m.loss(x), ctx.data)
