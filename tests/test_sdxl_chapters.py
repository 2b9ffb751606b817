"""Every chapter's scale="sdxl" path, executed once against the random-weight SDXL-architecture fixture
(tests/sdxl_fixture.py: saved and loaded through the real loader, never downloaded). One module, so that the
notebook runs are built once on one pytest-xdist worker (`make test` distributes by file)."""
import json
import math
import os
import re

import nbformat
import pytest
import torch

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


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


@pytest.fixture(scope="module")
def sdxl_runs(tmp_path_factory):
    """Every chapter's sdxl path executed once (this module's tests share it) against the random-weight SDXL fixture,
    two kernels at a time (one torch thread each). {notebook: (executed notebook path, summary dir) or the exception it
    raised}."""
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
        pm.execute_notebook(os.path.join(nb_dir, f"{nb}.ipynb"), str(out), kernel_name="python3",
                            progress_bar=False, parameters={**fixture, **params, "summary_dir": str(summary_dir)})
        return str(out), str(summary_dir)

    results = {}
    with pytest.MonkeyPatch.context() as mp, cf.ThreadPoolExecutor(2) as pool:
        mp.setenv("OMP_NUM_THREADS", "1")  # inherited by the kernels: two of them share the cores
        mp.chdir(nb_dir)  # once for both threads: papermill's own cwd= changes and restores the process's directory
        # in each thread, which interleaved would leave later tests in notebooks/
        futures = {nb: pool.submit(run, nb, p) for nb, p in sdxl_runs_params(sources, str(root)).items()}
        for k, f in futures.items():
            try:
                results[k] = f.result()
            except Exception as e:  # reported by the test that reads this run
                results[k] = e
    return results


def sdxl_run(sdxl_runs, key):
    """(executed notebook, its summary entries) of one notebook's sdxl run; re-raises the run's error."""
    res = sdxl_runs[key]
    if isinstance(res, Exception):
        raise res
    out, summary_dir = res
    with open(os.path.join(summary_dir, f"{key}.json")) as f:
        return nbformat.read(out, as_version=4), json.load(f)


@pytest.mark.notebooks
def test_notebook_sdxl_path_runs_on_the_random_weight_fixture(sdxl_runs):
    """Generation, the Figure-2 grid, live Table-1 cells, slider sweep and late start at sdxl, on files written by
    `sdxl_runs`: a kohya-layout slider for the fixture's UNet and the fixture's diffusers-layout LoRA."""
    _, summary = sdxl_run(sdxl_runs, "control_transfer")
    assert summary and {e["id"] for e in summary} == {"C1"} and all(e["scale"] == "sdxl" for e in summary)


@pytest.mark.notebooks
@pytest.mark.parametrize("nb", ["ddil_covariate_shift", "ddil_distillation"])
def test_chapters_run_at_sdxl_on_the_random_fixture(nb, sdxl_runs):
    _, entries = sdxl_run(sdxl_runs, nb)
    assert all(e["holds"] in (True, False, None) and e["n"] > 0 for e in entries)
    assert all(e["scale"] == "sdxl" for e in entries)
    assert entries or nb == "ddil_distillation"  # no DDIL students at paper scale: no D2/D3 entries there


def _check_summary(summary):
    for e in summary:
        assert e["holds"] in (True, False, None) and e["n"] >= 2
        nums = [float(x) for x in re.findall(r"-?\d+\.\d+", e["ours"])]
        assert nums and all(math.isfinite(x) for x in nums), e["ours"]


@pytest.mark.notebooks
@pytest.mark.parametrize("name", ["dt_visualization", "early_steps"])
def test_chapters_run_at_sdxl_on_the_random_weight_fixture(name, sdxl_runs):
    nb, summary = sdxl_run(sdxl_runs, name)
    _check_summary(summary)
    assert [e["scale"] for e in summary] == ["sdxl"]
    assert summary[0]["id"] == ("C2" if name == "dt_visualization" else "C3")
    pngs = sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert pngs >= 1  # DT rows / curves were drawn


@pytest.mark.notebooks
def test_notebook_runs_at_sdxl_against_the_fixture(sdxl_runs):
    nb, summary = sdxl_run(sdxl_runs, "hybrid_diversity")
    assert {e["scale"] for e in summary} == {"sdxl"}
    pngs = sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert pngs >= 4  # grids, DT trajectories, Fig. 7, frontier
