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


# smoke-size values for the parameters notebooks declare (only names a notebook declares are passed)
SMOKE = {"n_per_prompt": 2, "n_eval": 40, "n_samples": 8, "n_prompts": 2, "n_seeds": 1, "batch_size": 8, "n_check": 2,
         "quick": True}


@pytest.fixture(scope="session")
def smoke_book(tmp_path_factory):
    """Every notebook executed at smoke size (summaries in book/summaries of the copy) and the whole book rendered,
    once per session: the notebook tests and the reader tests share it."""
    from divdistill.book.build import build_copy

    dest = tmp_path_factory.mktemp("book")
    build_copy(str(dest), SMOKE)
    return dest


def _kohya_slider(sources: dict, path: str) -> str:
    """A kohya-layout slider LoRA (random, seeded) for the fixture's UNet cross-attention k/v: what Civitai ships."""
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file

    unet = UNet2DConditionModel.from_pretrained(sources["base"], subfolder="unet")
    torch.manual_seed(0)
    kohya = {}
    for n, m in unet.named_modules():
        if n.endswith(("attn2.to_k", "attn2.to_v")):
            base = "lora_unet_" + n.replace(".", "_")
            kohya |= {base + ".lora_down.weight": torch.randn(2, m.weight.shape[1]) * 0.3,
                      base + ".lora_up.weight": torch.randn(m.weight.shape[0], 2) * 0.3,
                      base + ".alpha": torch.tensor(1.0)}
    save_file(kohya, path)
    return path


def sdxl_runs_params(sources: dict, root: str) -> dict:
    """{notebook: parameters} of every chapter's sdxl path on the random-weight SDXL fixture (smoke sizes)."""
    controls = {"kohya slider": [_kohya_slider(sources, os.path.join(root, "slider.safetensors")), None, "a cat",
                                 "slider"],
                "diffusers lora": [sources["dmd2"], "dmd2_sdxl_4step_lora_fp16.safetensors", "a cat", "lora"]}
    dt = dict(n_prompts=1, n_seeds=1, n_samples=4, n_check=2, base_steps=8)
    ddil = dict(n_per_prompt=2, n_samples=4, batch_size=4)
    return {
        "control_transfer": dict(sdxl_models=["dmd2"], sdxl_prompts=["a cat"], sdxl_controls=controls,
                                 sdxl_slider="kohya slider", base_steps=2, n_per_prompt=1, n_seeds=2),
        "ddil_covariate_shift": ddil,
        "ddil_distillation": ddil,
        "dt_visualization": dt,
        "early_steps": dt,
        "hybrid_diversity": dict(n_prompts=1, n_per_prompt=2, n_seeds=1, batch_size=4, device="cpu", quick=True),
    }


@pytest.fixture(scope="session")
def sdxl_runs(tmp_path_factory):
    """Every chapter's sdxl path executed once per session against the random-weight SDXL fixture, two kernels at a
    time (one torch thread each). {notebook: (executed notebook path, summary dir) or the exception it raised}."""
    import concurrent.futures as cf

    import papermill as pm
    from sdxl_fixture import build_tiny_sdxl

    root = tmp_path_factory.mktemp("sdxl_runs")
    sources = build_tiny_sdxl(str(root / "fixture"))
    fixture = {"scale": "sdxl", "sources": sources, "stand_in_metrics": True}
    nb_dir = os.path.join(ROOT, "notebooks")

    def run(nb, params):
        out, summary_dir = root / f"{nb}.ipynb", root / nb
        summary_dir.mkdir()
        pm.execute_notebook(os.path.join(nb_dir, f"{nb}.ipynb"), str(out), kernel_name="python3", cwd=nb_dir,
                            progress_bar=False, parameters={**fixture, **params, "summary_dir": str(summary_dir)})
        return str(out), str(summary_dir)

    results = {}
    with pytest.MonkeyPatch.context() as mp, cf.ThreadPoolExecutor(2) as pool:
        mp.setenv("OMP_NUM_THREADS", "1")  # inherited by the kernels: two of them share the cores
        futures = {nb: pool.submit(run, nb, p) for nb, p in sdxl_runs_params(sources, str(root)).items()}
        for k, f in futures.items():
            try:
                results[k] = f.result()
            except Exception as e:  # reported by the test that reads this run
                results[k] = e
    return results


def sdxl_run(sdxl_runs, key):
    """(executed notebook, its summary entries) of one notebook's sdxl run; re-raises the run's error."""
    import json

    import nbformat

    res = sdxl_runs[key]
    if isinstance(res, Exception):
        raise res
    out, summary_dir = res
    with open(os.path.join(summary_dir, f"{key}.json")) as f:
        return nbformat.read(out, as_version=4), json.load(f)
