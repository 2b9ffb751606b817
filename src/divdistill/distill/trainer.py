"""The trainers' skeleton (one for every student): the frozen teacher, the students' naming rule, probe → fit → save."""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Callable

import torch

from ..io import atomic_torch_save
from ..training import fit, last_mean
from .bars import best_checkpoint, probe_curve
from .common import save_student
from .ddil import DDILConfig
from .probe import student_probe, training_record


class Teacher:
    """The frozen tiny teacher + text encoder, and prompt encoding for the trainers."""

    def __init__(self, root: str, device: str = "cpu"):
        from ..tiny.loader import load_unet
        from ..tiny.schedule import (alphas_cumprod as schedule_alphas_cumprod, load_schedule, prior_of, prior_spread,
                                     prior_std)
        from ..tiny.text import TextEncoder, Tokenizer

        self.device = torch.device(device)
        self.unet = load_unet(os.path.join(root, "teacher", "unet"), self.device)
        self.enc = TextEncoder.load(os.path.join(root, "teacher", "text_encoder")).to(self.device).requires_grad_(False)
        self.tok = Tokenizer()
        self.schedule = load_schedule(os.path.join(root, "teacher"))  # students are distilled on the teacher's own
        self.ac = schedule_alphas_cumprod(self.schedule, self.device)  # ᾱ_t with ᾱ_{-1} = 1 at index -1
        self.prior, self.prior_std = prior_of(self.schedule), prior_std(self.schedule)  # rollouts start where plans do
        self.prior_spread = prior_spread(self.schedule)

    @torch.no_grad()
    def encode(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        cond = self.enc(self.tok(prompts).to(self.device))  # (B, L, D)
        return cond, self.enc(self.tok([""] * len(prompts)).to(self.device))

    def eps_fn(self, unet=None, guidance: float = 1.0):
        """prompts → eps(x, t) of `unet` (default: the teacher) with CFG; the form DDIL's rollouts take."""
        from .common import guided_eps

        net = self.unet if unet is None else unet

        def for_prompts(prompts):
            c, u = self.encode(prompts)
            return lambda x, t: guided_eps(net, x, t, c, u, guidance)
        return for_prompts


def random_prompts(n: int, g: torch.Generator) -> list[str]:
    """Prompts of n fresh pretraining scenes, drawn from the step's generator."""
    from ..tiny.world import sample_scenes

    return sample_scenes(n, seed=int(torch.randint(2**31, (1,), generator=g))).prompts


@dataclass
class Student:
    """What one method hands the skeleton: its student, checkpointed parts, step, sampler and provenance."""

    method: str  # provenance "method" (e.g. "progressive_distillation")
    prefix: str  # the name's stem: dmd2, lcm, pd, turbo, lightning
    unet: torch.nn.Module  # the student being trained (probed and saved)
    parts: dict  # every state_dict-able part fit checkpoints in train_state.pt (its keys are the file's format)
    step_fn: Callable  # step → loss (a tensor, or {key: tensor} when loss_keys names several)
    total: int  # training steps
    probe_at: int  # the half-way probe's step count
    scheduler: str
    timesteps: tuple
    notes: str
    ddil: DDILConfig | None = None  # its training distribution (the name's _ddil/_reflected follow it)
    overrides: dict | None = None  # scheduler overrides of the saved registry entry
    loss_keys: tuple = ()  # () = one scalar loss; else the keys, the first drives the loss curve


def is_ddil(cfg: DDILConfig | None) -> bool:
    """DDIL Sec. 4.1: a training distribution that mixes sources (data, teacher, student rollouts); one source alone
    is the method's own (forward-diffused data for PD/LCM, backward simulation for DMD2)."""
    if cfg is None or not cfg.enabled:
        return False
    return any(sum(p > 0 for p in ps) > 1 for ps in (cfg.priors, cfg.late_priors) if ps is not None)


def student_name(prefix: str, ddil: DDILConfig | None = None) -> str:
    """The one naming rule: prefix, then _ddil (is_ddil) and _reflected (reflected x̂0), e.g. lcm_ddil_reflected."""
    reflected = ddil is not None and ddil.reflected
    return prefix + ("_ddil" if is_ddil(ddil) else "") + ("_reflected" if reflected else "")


def probe_steps(total: int, half: int) -> tuple:
    """The training probes: a quarter, half-way (`half`) and three quarters; with the final one, 4 FID_tiny points."""
    return tuple(sorted({max(1, total // 4), half, max(1, 3 * total // 4)} - {total}))


def train_student(root: str, out: str, cfg, build, device: str = "cpu", progress: bool = True,
                  name: str | None = None, probe_n: int = 0, ckpt_every: int = 100) -> dict:
    """The one skeleton: seed → frozen teacher → build(T, cfg) → name → probe → fit (resumable) → save the student.

    Args:
        root: the world folder holding teacher/.
        out: the student's folder (train_state.pt while training; unet/, student.json, provenance.json after).
        cfg: the method's config dataclass (recorded in provenance; its `seed` seeds everything).
        build: (Teacher, cfg) → Student: the method's parts and its step (its loss).
        name: the registry name (default: student_name of the method's prefix and DDIL config).
        probe_n: > 0 probes FID/diversity at a quarter, half-way, three quarters and the end (probe_n × 3 seeds).
    Returns:
        fit's record: losses, wall time, probes.
    """
    torch.manual_seed(cfg.seed)
    T = Teacher(root, device)
    s = build(T, cfg)
    name = name or student_name(s.prefix, s.ddil)
    probe = student_probe(T, s.unet, name, s.scheduler, s.timesteps, n=probe_n, overrides=s.overrides) \
        if probe_n else None
    res = fit(out, s.parts, s.step_fn, s.total, ckpt_every=ckpt_every, desc=name, progress=progress,
              probe=keep_probed(probe, s.unet, out), probe_at=probe_steps(s.total, s.probe_at))
    losses = ({f"train_loss_{k}_last50": last_mean(res["losses"], k) for k in s.loss_keys} if s.loss_keys
              else {"train_loss_last50": last_mean(res["losses"])})
    key = s.loss_keys[0] if s.loss_keys else None
    rec = training_record(res, probe, key)
    rec["chosen_step"] = choose_checkpoint(out, s.unet, rec, s.total)
    config = {"kind": "student", "method": s.method, "prior": T.prior, **asdict(cfg)}
    save_student(out, s.unet, name, s.scheduler, s.timesteps, config, cfg.seed, s.total, res["wall"],
                 {**losses, **rec}, overrides=s.overrides, notes=s.notes, schedule=T.schedule)
    for f in os.listdir(out):  # the probed weights not chosen were scratch
        if f.startswith(PROBED) and f.endswith(".pt"):
            os.remove(os.path.join(out, f))
    return res


PROBED = "probed_weights_"  # <out>/probed_weights_<step>.pt: the student at each training probe, until it is saved


def keep_probed(probe, unet, out: str):
    """probe(step) that also keeps the student's weights at that step (a resumed run keeps the earlier files), so the
    checkpoint can be chosen by its FID_tiny afterwards; None without a probe."""
    if probe is None:
        return None

    def run(step):
        atomic_torch_save({k: v.detach().cpu() for k, v in unet.state_dict().items()},
                          os.path.join(out, f"{PROBED}{step}.pt"))
        return probe(step)
    return run


def choose_checkpoint(out: str, unet, record: dict, total: int) -> int:
    """Issue 19's selection: the probed step with the lowest FID_tiny (distill.bars.best_checkpoint; never diversity),
    loaded into `unet` when it is not the last step. Without probes the last step is kept. Returns the chosen step."""
    curve = probe_curve(record, total)
    step = best_checkpoint(curve) if curve else total
    if step != total:
        unet.load_state_dict(torch.load(os.path.join(out, f"{PROBED}{step}.pt"), map_location="cpu"))
    return step
