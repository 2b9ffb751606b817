"""The chapters' one preamble: load the world of a scale, its perceptual features, captions and the summary writer."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import torch

from . import claims
from ..evaluation.extractors import SDXL_EXTRA, dreamsim_features  # noqa: F401 (re-exported)
from ..worlds import SCALES, load_world

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
DEFAULT_SUMMARY_DIR = os.path.join(ROOT, "book", "summaries")


@dataclass
class Chapter:
    """What every chapter notebook needs: the world, a perceptual feature map, captions and its summary file."""

    name: str
    scale: str
    world: object
    seed: int = 0
    summary_dir: str = DEFAULT_SUMMARY_DIR
    stand_in_metrics: bool = False
    extras: dict = field(default_factory=dict)

    @property
    def evaluator(self):
        """The tiny evaluator CNN (tiny scale only)."""
        if self.scale != "tiny":
            raise ValueError(f"the tiny evaluator exists only at scale='tiny' (this chapter runs at {self.scale!r})")
        if "evaluator" not in self.extras:
            from ..tiny.evaluator import load_evaluator

            self.extras["evaluator"] = load_evaluator(self.world.extras["evaluator_root"]).to(self.world.device)
        return self.extras["evaluator"]

    @property
    def distance_name(self) -> str:
        if self.scale == "tiny":
            return "evaluator-feature cosine distance"
        return "pixel stand-in distance (test fixture)" if self.stand_in_metrics else "DreamSim distance"

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Perceptual features of images (B, 3, H, W) in [-1, 1] → (B, D): tiny = evaluator, sdxl = DreamSim."""
        from ..metrics import features

        if self.scale == "tiny":
            return features(self.evaluator, images)
        if self.stand_in_metrics:  # random-weight fixture runs: no perceptual model exists offline
            return torch.nn.functional.adaptive_avg_pool2d(images.float().cpu(), 8).flatten(1)
        return dreamsim_features(images, self.extras)

    def caption(self, text: str) -> str:
        """A figure caption that names the scale which produced it."""
        return f"{text} [scale={self.scale}]"

    def summarize(self, entries: list[dict]) -> str:
        """Write book/summaries/<chapter>.json (entries from `claims.entry`); returns the path. On a tiny world whose
        teacher fails its acceptance bar, every entry's note says so first: its verdict is provisional."""
        caveat = self.world_caveat()
        if caveat:
            entries = [{**e, "note": caveat + (f"; {e['note']}" if e["note"] else "")} for e in entries]
        return claims.write_summary(self.name, entries, self.summary_dir)

    def world_caveat(self) -> str:
        """'' when the tiny world's teacher meets its acceptance bar (distill.bars), its students meet theirs and were
        distilled from its own sampling prior, else what falls short."""
        from ..distill.bars import acceptance_of, failed_checks, start_caused

        root = getattr(self.world, "extras", {}).get("root") if self.scale == "tiny" else None
        prov = _read_json(os.path.join(root, "teacher", "provenance.json")) if root else None
        if prov is None:
            return ""
        m = prov.get("metrics", {})
        if "fid_tiny_teacher_vs_data" not in m:
            parts = ["this world's teacher has not been evaluated against its acceptance bar"]
        else:
            failed = failed_checks(acceptance_of(m))
            parts = [f"this world's teacher fails its acceptance bar on {', '.join(failed)}"] if failed else []
            leak = start_caused(_read_json(os.path.join(root, "teacher_leak.json")))
            if parts and all(c in leak for c in failed):
                parts[0] += (" (only from its start, the signal leak at t = 999 that SDXL shares: from the prompt's "
                             "Gaussian q(x_T | c) it passes, teacher_leak.json)")  # no "; ": the ledger splits there
        below = self.students_below_bar(root)
        parts += [_students(below, "misses its", "miss their") + " FID_tiny bar"] if below else []
        off = self.off_prior_students(root)
        parts += [_students(off, "was", "were") + " distilled on rollouts from another sampling prior than the "
                  "world's"] if off else []
        return claims.PROVISIONAL + ", and ".join(parts) if parts else ""

    def students_below_bar(self, root: str) -> list[str]:
        """The world's students over their FID_tiny bar in its committed students/eval.json (distill.bars)."""
        from ..distill.bars import below_bar

        rows = _read_json(os.path.join(root, "students", "eval.json"))
        return [] if rows is None else below_bar(rows)

    def off_prior_students(self, root: str) -> list[str]:
        """The world's students whose training rollouts started from another prior than the world's (distill.bars)."""
        from ..distill.bars import rollout_prior_mismatch
        from ..tiny.schedule import prior_of

        sdir = os.path.join(root, "students")
        if not os.path.isdir(sdir):
            return []
        prior = prior_of(self.world.extras.get("schedule", {}))
        provs = {name: _read_json(os.path.join(sdir, name, "provenance.json")) for name in sorted(os.listdir(sdir))}
        return [name for name, p in provs.items()
                if p is not None and rollout_prior_mismatch(p.get("config", {}), prior)]


def _read_json(path: str):
    """A committed JSON file's content, None when it does not exist."""
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def _students(names: list[str], one: str, many: str) -> str:
    """'its student a <one>' or 'its students a, b <many>'."""
    return f"its student {names[0]} {one}" if len(names) == 1 else f"its students {', '.join(names)} {many}"


def open_chapter(name: str, scale: str = "tiny", device: str | None = None, seed: int = 0, sources=None,
                 summary_dir: str | None = None, stand_in_metrics: bool = False, **world_kwargs) -> Chapter:
    """The preamble of every chapter notebook.

    Args:
        name: the notebook's name (its summary is book/summaries/<name>.json).
        scale: "tiny" or "sdxl".
        device: torch device (default: cuda when available).
        seed: the chapter's seed (torch's global seed is set from it).
        sources: sdxl only: local checkpoint folders (the tests' random-weight fixture), passed to load_world.
        summary_dir: where the summary goes (default book/summaries of this checkout).
        stand_in_metrics: sdxl only: use pixel features instead of DreamSim (fixture runs with no downloads).
        **world_kwargs: passed to load_world (tiny: students, variant; sdxl: models, lora_mode).
    Returns:
        A Chapter.
    """
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; valid scales: {SCALES}")
    if sources is not None and scale != "sdxl":
        raise ValueError("sources= points the sdxl loader at local checkpoints; it has no meaning at scale='tiny'")
    torch.manual_seed(seed)
    if sources is not None:
        world_kwargs["sources"] = sources
    world = load_world(scale, device=device, **world_kwargs)
    return Chapter(name, scale, world, seed, summary_dir or DEFAULT_SUMMARY_DIR, stand_in_metrics)
