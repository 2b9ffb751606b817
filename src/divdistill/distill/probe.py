"""Cheap student training probes (issue 8): FID_tiny and diversity half-way and at the end, to judge a plateau."""
from __future__ import annotations

import copy

import torch

from ..plan import distilled
from ..tiny.quality import quick_eval


def student_probe(T, unet, name: str, scheduler: str, timesteps, guidance: float = 0.0, n: int = 200,
                  seeds=(0, 1, 2), overrides: dict | None = None):
    """probe(step) for fit: the student's own plan, evaluated on a copy of its current weights."""
    def probe(step):
        from ..tiny.loader import world_from_models

        w = world_from_models(T.unet, T.enc, T.schedule, T.device,
                              {name: (copy.deepcopy(unet).float().eval(), scheduler, timesteps, guidance, overrides or {})})
        with torch.no_grad():
            return quick_eval(w, distilled(w, name), n, seeds)
    return probe


def training_record(res: dict, probe=None, key: str | None = None) -> dict:
    """What a trainer adds to provenance: the loss curve, the half-way probes and (with a probe) the final metrics."""
    from ..training import loss_curve

    rec = {"loss_curve": loss_curve(res["losses"], key), "probes": {str(k): v for k, v in res["probes"].items()}}
    if probe is not None:
        rec["final_probe"] = probe(len(res["losses"]))
    return rec
