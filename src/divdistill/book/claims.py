"""The claims ledger: the papers' claim ids and the chapter summaries (statistics and verdicts: divdistill.stats)."""
from __future__ import annotations

import glob
import json
import os

from ..io import atomic_write_json
from ..stats import Estimate, all_hold, bootstrap, bootstrap_diff, verdict  # noqa: F401 (chapters read them here)

# The papers' claims, by the ids every chapter summary and the ledger use.
CLAIMS = {
    "C1": "Control transfer: LoRAs, concepts and sliders move between base and students, both ways (Table 1)",
    "C2": "DT-visualization: students commit to the final structure in their first step (Fig. 3–4)",
    "C3": "Early steps decide diversity (Fig. 5)",
    "C4": "Students are less diverse than the base (Table 3)",
    "C5": "Hybrid inference restores diversity, even beyond the base's, at the student's cost (Table 3)",
    "C6": "The hybrid has the best FID (Table 2)",
    "C7": "Skipping the first step is a trade-off (Table 4)",
    "C8": "Base CFG ≈ 0 and k = 1 are best (Fig. 7)",
    "D1": "Covariate shift: more teacher in mixed rollouts means better quality (DDIL Table 9)",
    "D2": "DDIL improves FID and coverage for PD, LCM and DMD2 (DDIL Tables 3–5)",
    "D3": "Reflected thresholding stabilises (DDIL Table 3)",
}
FIELDS = ("id", "claim", "paper", "ours", "holds", "scale", "n", "note")
# A note that starts with this marks its verdict provisional (book.chapter: the world's models are below their bar);
# the caveat runs to the first "; ".
PROVISIONAL = "provisional: "


def entry(id: str, paper: str, ours: str, holds: bool | None, scale: str, n: int, note: str = "",
          claim: str | None = None) -> dict:
    """One summary entry {id, claim, paper, ours, holds, scale, n, note}; `holds` must come from `verdict`."""
    if id not in CLAIMS:
        raise ValueError(f"unknown claim id {id!r}; valid ids: {sorted(CLAIMS)}")
    if holds not in (True, False, None):
        raise ValueError(f"holds must be True, False or None (computed by `verdict`), got {holds!r}")
    return {"id": id, "claim": claim or CLAIMS[id], "paper": str(paper), "ours": str(ours),
            "holds": None if holds is None else bool(holds), "scale": str(scale), "n": int(n), "note": str(note)}


def write_summary(notebook: str, entries: list[dict], out_dir: str) -> str:
    """Write `out_dir/<notebook>.json` atomically; entries of other scales already there are kept (tiny and sdxl
    runs of one chapter share a file)."""
    for e in entries:
        missing = [f for f in FIELDS if f not in e]
        if missing:
            raise ValueError(f"summary entry {e!r} lacks fields {missing}; build entries with claims.entry()")
    path = os.path.join(out_dir, f"{notebook}.json")
    scales = {e["scale"] for e in entries}
    old = load_summary(path) if os.path.exists(path) else []
    kept = [e for e in old if e["scale"] not in scales]
    os.makedirs(out_dir, exist_ok=True)
    atomic_write_json(path, kept + list(entries))
    return path


def load_summary(path: str) -> list[dict]:
    with open(path) as f:
        data = json.load(f)
    if not isinstance(data, list):
        raise ValueError(f"{path}: a summary is a JSON list of entries, got {type(data).__name__}")
    return data


def collect(summary_dir: str) -> dict[str, list[tuple[str, dict]]]:
    """Every summary entry under `summary_dir`, grouped by claim id, as (notebook, entry) pairs."""
    out: dict[str, list[tuple[str, dict]]] = {k: [] for k in CLAIMS}
    for path in sorted(glob.glob(os.path.join(summary_dir, "*.json"))):
        nb = os.path.splitext(os.path.basename(path))[0]
        for e in load_summary(path):
            out.setdefault(e["id"], []).append((nb, e))
    return out
