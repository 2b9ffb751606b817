"""Shared fixtures: a random-weight tiny world (no training needed) and the committed tiny world."""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no test may reach a model hub

import pytest
import torch
from diffusers import DDIMScheduler, LCMScheduler, UNet2DConditionModel

from divdistill.registry import Conditioning, ModelSpec, World, scheduler_factory
from divdistill.tiny.schedule import SD_SCHEDULE as NOISE_SCHEDULE
from divdistill.tiny.teacher import unet_config

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def load_script(name: str):
    """A script of scripts/ (not a package) imported as a module, for its tests."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "scripts", f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


STUDENT_TS = (999, 749, 499, 249)


def _unet(seed: int, **extra) -> UNet2DConditionModel:
    torch.manual_seed(seed)
    return UNet2DConditionModel(**{**unet_config(width=8, text_dim=16), **extra}).eval()


class CallRecorder:
    """Counts forward calls (and batch sizes) of a module through a forward pre-hook."""

    def __init__(self, module, log, name):
        self.handle = module.register_forward_pre_hook(lambda m, args, kwargs: log.append((name, args[0].shape[0])),
                                                       with_kwargs=True)


# the modules whose fixtures execute notebooks (two kernels each, the longest work of the suite)
NOTEBOOK_RUNS = ("test_notebooks.py", "test_sdxl_chapters.py")


def pytest_collection_modifyitems(items):
    """The notebook-run modules first (stable sort, order kept within): `make test`'s two workers take files in this
    order, so the longest work starts first rather than last beside an idle worker."""
    items.sort(key=lambda item: item.path.name not in NOTEBOOK_RUNS)


@pytest.fixture
def random_world():
    """Tiny-architecture world with random weights: base (DDIM trailing, CFG 3) + a 4-step LCM-scheduled student."""
    torch.manual_seed(0)
    emb = torch.nn.Embedding(8, 16)

    def encode(prompts):
        ids = torch.tensor([[hash(p) % 7 + 1] * 4 for p in prompts])
        return Conditioning({"encoder_hidden_states": emb(ids).detach()},
                            {"encoder_hidden_states": emb(torch.zeros_like(ids)).detach()})

    base = ModelSpec("base", _unet(1), scheduler_factory(DDIMScheduler, NOISE_SCHEDULE, timestep_spacing="trailing"),
                     8, 3.0, role="base")
    student = ModelSpec("student", _unet(2), scheduler_factory(LCMScheduler, NOISE_SCHEDULE), 4, 0.0,
                        timesteps=STUDENT_TS)
    world = World("tiny", "base", {"base": base, "student": student}, torch.device("cpu"), torch.float32,
                  (3, 32, 32), encode)
    world.log = []
    for name in ("base", "student"):
        CallRecorder(world.specs[name].unet, world.log, name)
    return world


@pytest.fixture(scope="session")
def tiny_world():
    """The committed tiny world (teacher + students from data/tiny)."""
    from divdistill import load_world

    return load_world("tiny", device="cpu")


