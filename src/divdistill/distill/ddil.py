"""DDIL (Sec. 4.1–4.2, App. A, D): draw training latents from data, teacher and student rollouts, DAgger-style."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..prior import apply_prior
from .common import add_noise, ddim_step, x0_from_eps

SOURCES = ("frwd", "teach", "student")


@dataclass
class DDILConfig:
    """Sampling priors (β_frwd, β_teach, β_student) before and after `switch_frac` of training, and the buffer."""

    priors: tuple[float, float, float] = (0.5, 0.25, 0.25)
    late_priors: tuple[float, float, float] | None = (0.3, 0.2, 0.5)  # raise the student prior later (App. D)
    switch_frac: float = 0.5
    buffer_size: int = 256
    refresh_every: int = 25  # training steps between buffer refreshes
    refresh_batch: int = 32  # rollouts regenerated per refresh (oldest first)
    reflected: bool = False
    enabled: bool = True
    rollout: str = "ddim"  # "ddim" (stateless DDIM, Sec. 4.1) or "renoise" (x̂0 re-noised with fresh noise, as LCM/DMD2 sample)
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        for name, p in (("priors", self.priors), ("late_priors", self.late_priors)):
            if p is None:
                continue
            if len(p) != 3 or any(v < 0 for v in p) or abs(sum(p) - 1) > 1e-6:
                raise ValueError(f"DDIL {name} must be three non-negative probabilities (frwd, teach, student) "
                                 f"that sum to 1, got {tuple(p)} (sum {sum(p):.3f})")
        if not 0 <= self.switch_frac <= 1:
            raise ValueError(f"switch_frac must be in [0, 1], got {self.switch_frac}")
        if self.rollout not in ("ddim", "renoise"):
            raise ValueError(f"rollout must be 'ddim' or 'renoise', got {self.rollout!r}")
        if self.buffer_size < 1 or self.refresh_every < 1 or self.refresh_batch < 1:
            raise ValueError("buffer_size, refresh_every and refresh_batch must be >= 1")

    def priors_at(self, frac: float) -> tuple[float, float, float]:
        """The schedule of priors over training: `priors`, then `late_priors` after `switch_frac`."""
        return self.late_priors if self.late_priors is not None and frac >= self.switch_frac else self.priors


def choose_sources(n: int, priors, generator: torch.Generator) -> torch.Tensor:
    """Per-sample source index (0 frwd, 1 teach, 2 student) drawn from the priors."""
    return torch.multinomial(torch.tensor(priors, dtype=torch.float), n, replacement=True, generator=generator)


class ReplayBuffer:
    """Fixed-capacity ring buffer of rolled-out latents (x_t, timestep, prompt, source)."""

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError(f"replay buffer capacity must be >= 1, got {capacity}")
        self.capacity, self.items, self.next = capacity, [], 0

    def __len__(self) -> int:
        return len(self.items)

    def add(self, entries: list) -> None:
        """Insert entries, overwriting the oldest once full."""
        for e in entries:
            if len(self.items) < self.capacity:
                self.items.append(e)
            else:
                self.items[self.next] = e
            self.next = (self.next + 1) % self.capacity

    def clear(self) -> None:
        self.items, self.next = [], 0

    def sample(self, n: int, source: int, generator: torch.Generator) -> list:
        pool = [e for e in self.items if e[3] == source]
        if not pool:
            return []
        idx = torch.randint(len(pool), (n,), generator=generator).tolist()
        return [pool[i] for i in idx]

    def state_dict(self) -> dict:
        return {"capacity": self.capacity, "items": self.items, "next": self.next}

    def load_state_dict(self, st: dict) -> None:
        self.capacity, self.items, self.next = st["capacity"], st["items"], st["next"]


@torch.no_grad()
def rollout(x_T, grid: list[int], upto: torch.Tensor, eps_fn, ac, reflected: bool = False,
            renoise_generator: torch.Generator | None = None) -> torch.Tensor:
    """Stateless rollout from noise along `grid` (decreasing), stopping each sample at grid index `upto`.

    DDIM by default; with `renoise_generator`, x̂0 is re-noised with fresh noise (LCM/DMD2 multistep sampling).
    """
    x = x_T.clone()  # (B, C, H, W)
    for i in range(int(upto.max())):
        active = upto > i
        if not active.any():
            break
        t = torch.full((x.shape[0],), grid[i], dtype=torch.long, device=x.device)
        tp = torch.full_like(t, grid[i + 1] if i + 1 < len(grid) else -1)
        if renoise_generator is None:
            x_new = ddim_step(x, eps_fn(x, t), t, tp, ac, reflected)
        else:
            x0 = x0_from_eps(x, eps_fn(x, t), t, ac, reflected)
            x_new = add_noise(x0, torch.randn(x.shape, generator=renoise_generator).to(x.device), tp, ac)
        x = torch.where(active.view(-1, 1, 1, 1), x_new, x)
    return x


@torch.no_grad()
def refresh_buffer(buffer: ReplayBuffer, cfg: DDILConfig, make_eps: dict, grid: list[int], prompts: list[str],
                   generator: torch.Generator, ac, shape=(3, 32, 32), device="cpu", prior_std: float = 1.0,
                   prior_spread: float | None = None) -> None:
    """Roll `len(prompts)` fresh trajectories per rollout source to random grid indices; add them to the buffer.

    make_eps maps "teach"/"student" to a function prompts → eps_fn(x, t) (the current student, the frozen teacher);
    each starts from the world's sampling prior, x_T = prior.apply_prior(ε, prior_std, prior_spread).
    """
    n = len(prompts)
    for s, name in ((1, "teach"), (2, "student")):
        if max(cfg.priors[s], (cfg.late_priors or cfg.priors)[s]) == 0:
            continue
        upto = torch.randint(0, len(grid), (n,), generator=generator)  # grid index each rollout stops at
        x_T = apply_prior(torch.randn((n, *shape), generator=generator), prior_std, prior_spread).to(device)
        x = rollout(x_T, grid, upto.to(device), make_eps[name](prompts), ac, cfg.reflected,
                    generator if cfg.rollout == "renoise" else None)
        buffer.add([(x[i].cpu(), int(grid[int(upto[i])]), prompts[i], s) for i in range(n)])


def draw_batch(cfg: DDILConfig, frac: float, x0, prompts: list[str], noise, t, buffer: ReplayBuffer,
               generator: torch.Generator, ac):
    """x_t for a training batch (Sec. 4.1): forward-diffused data, or teacher/student rollouts from the buffer.

    Returns (x_t, t, prompts, source) — rollout samples bring their own timestep and prompt.
    """
    x_t, prompts, t = add_noise(x0, noise, t, ac), list(prompts), t.clone()
    src = torch.zeros(len(prompts), dtype=torch.long)
    if not cfg.enabled:
        return x_t, t, prompts, src
    want = choose_sources(len(prompts), cfg.priors_at(frac), generator)
    for s in (1, 2):
        idx = (want == s).nonzero().flatten().tolist()
        for i, e in zip(idx, buffer.sample(len(idx), s, generator)):  # an empty pool leaves the data sample
            x_t[i], t[i], prompts[i], src[i] = e[0].to(x_t.device), e[1], e[2], s
    return x_t, t, prompts, src


def training_batch(cfg: DDILConfig, frac: float, batch: int, timesteps, g: torch.Generator, ac, buffer: ReplayBuffer,
                   device) -> tuple:
    """The students' shared preamble: fresh pretraining scenes, one of `timesteps` per image, noise, then DDIL's
    source draw (data / teacher / student rollouts). Returns (x_t, t, prompts, source)."""
    from ..tiny.world import sample_scenes

    sc = sample_scenes(batch, seed=int(torch.randint(2**31, (1,), generator=g)))
    t = torch.tensor(list(timesteps), device=device)[torch.randint(0, len(timesteps), (batch,), generator=g)]
    noise = torch.randn(sc.images.shape, generator=g).to(device)
    return draw_batch(cfg, frac, sc.images.to(device), sc.prompts, noise, t, buffer, g, ac)
