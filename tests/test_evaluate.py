"""divdistill-evaluate: metric adapters on the tiny evaluator and on random-weight models (no downloads), FID of
identical folders, resumed = uninterrupted, reference statistics, missing extras."""
import json
import os
import shutil
import sys

import pytest
import torch

from divdistill.io import save_png
from divdistill.evaluation import core, extractors, scores
from divdistill.evaluation.cli import main
from divdistill import metrics as M
from divdistill.evaluation.store import FeatureCache, extract, folder_items, load_rgb, run_items, to_uint8
from divdistill.tiny.world import sample_scenes

N = 24


def _write_run(folder, images, prompts, plan="distilled(dmd2)"):
    """A run folder as divdistill-generate writes it: PNGs named by case number + manifest.json."""
    os.makedirs(folder, exist_ok=True)
    recs = {}
    for i, (img, p) in enumerate(zip(images, prompts)):
        save_png(img, os.path.join(folder, f"{i:06d}.png"))
        recs[str(i)] = {"file": f"{i:06d}.png", "prompt": p, "seed": i, "nfe": 4, "seconds": 0.01}
    man = {"plan": plan, "steps": 4, "nfe": 4, "images": recs, "seconds_per_image": 0.01}
    with open(os.path.join(folder, "manifest.json"), "w") as f:
        json.dump(man, f)
    return str(folder)


@pytest.fixture(scope="module")
def scenes():
    sc = sample_scenes(N, seed=3)
    sc.prompts = [p if i % 3 else "a red circle" for i, p in enumerate(sc.prompts)]  # one prompt with 8 images
    return sc


@pytest.fixture(scope="module")
def suite():
    return core.tiny_suite("cpu")


def test_tiny_identical_folders_fid_zero_and_stats_npz(tmp_path, scenes, suite):
    run = _write_run(tmp_path / "run", scenes.images, scenes.prompts)
    real, stats = core.reference(run, suite, str(tmp_path / "cache"), progress=False)  # the same images as "real"
    assert stats is None and real.shape == (N, 128)
    res = core.evaluate_run(run, suite, real=real, batch=8, progress=False)
    assert abs(res["FID"]) < 1e-3
    assert res["prdc"]["precision"] == 1.0 and res["prdc"]["coverage"] == 1.0
    px = to_uint8([load_rgb(it.path) for it in run_items(run)[1]], 32).float() / 127.5 - 1  # what was scored
    direct = M.adherence(suite.fid.evaluator, px, scenes.prompts)["adherence"]
    assert res["CLIP"] == pytest.approx(100 * direct)  # cached predictions = the direct CLIP-score analogue
    assert res["diversity"]["per_prompt"]["a red circle"]["n"] == 8 and res["diversity"]["mean"] > 0
    assert res["IS"] > 1 and res["time_s"] == 0.01 and res["steps"] == 4
    # reference statistics round trip: FID against the .npz equals FID against the folder
    scores.write_stats(str(tmp_path / "ref.npz"), real)
    other = sample_scenes(N, seed=4).images
    fake = extractors.TinyExtractor(suite.fid.evaluator)((((other + 1) * 127.5).round().byte()))["feat"]
    assert scores.fid(fake, stats=scores.read_stats(str(tmp_path / "ref.npz"))) == pytest.approx(
        scores.fid(fake, real=real), rel=1e-6)
    assert scores.fid(fake, real=real) > 1


class _Killer:
    """Wraps an extractor and raises after `after` batches: a kill in the middle of an evaluation."""

    def __init__(self, ex, after):
        self.ex, self.after, self.size, self.needs_prompt, self.name = ex, after, ex.size, ex.needs_prompt, ex.name

    def __call__(self, images, prompts=None):
        if self.after == 0:
            raise KeyboardInterrupt("killed")
        self.after -= 1
        return self.ex(images, prompts)


def test_resumed_evaluation_equals_uninterrupted(tmp_path, scenes, suite):
    run = _write_run(tmp_path / "run", scenes.images, scenes.prompts)
    fresh = shutil.copytree(run, tmp_path / "fresh")
    real = sample_scenes(N, seed=5).images
    ref = _write_run(tmp_path / "ref", real, ["x"] * N)
    real_feats, _ = core.reference(ref, suite, str(tmp_path / "cache"), progress=False)
    killed = core.Suite("tiny", _Killer(suite.fid, after=2), _Killer(suite.fid, 2), _Killer(suite.fid, 2))
    killed.clip = killed.diversity = killed.fid
    with pytest.raises(KeyboardInterrupt):
        core.evaluate_run(run, killed, real=real_feats, batch=8, progress=False)
    cache = FeatureCache(os.path.join(run, ".evalcache", suite.fid.name))
    assert len(cache.data) == 16  # two finished batches kept, nothing half-written
    assert not [f for f in os.listdir(cache.root) if ".tmp" in f]
    resumed = core.evaluate_run(run, suite, real=real_feats, batch=8, progress=False)
    whole = core.evaluate_run(str(fresh), suite, real=real_feats, batch=8, progress=False)
    assert resumed == whole


def test_cli_end_to_end_tiny(tmp_path, scenes):
    run = _write_run(tmp_path / "run", scenes.images[:12], scenes.prompts[:12])
    ref = _write_run(tmp_path / "ref", sample_scenes(16, seed=6).images, ["x"] * 16)
    assert main([f"{run}=DMD2", "--ref", ref, "--out", str(tmp_path / "ev"), "--batch", "8",
                 "--write-ref-stats", str(tmp_path / "ref.npz")]) == 0
    rec = json.load(open(tmp_path / "ev" / "metrics.json"))
    md = open(tmp_path / "ev" / "table2.md").read()
    assert "| DMD2 | 4 |" in md and "| paper: Hybrid | 4 | 10.79 | 26.13 | 32.12 | 0.64 | 0.350 |" in md
    assert main([run, "--ref", str(tmp_path / "ref.npz"), "--out", str(tmp_path / "ev2")]) == 0
    rec2 = json.load(open(tmp_path / "ev2" / "metrics.json"))
    assert rec2["runs"]["run"]["FID"] == pytest.approx(rec["runs"]["DMD2"]["FID"], rel=1e-6)
    assert "prdc" not in rec2["runs"]["run"]  # statistics alone cannot give PRDC
    other = core.Suite("sdxl", _RandomInception(), None, None)
    other.fid.name = "inception-v3-compat"
    with pytest.raises(ValueError, match="statistics of 'tiny-evaluator' features"):
        core.reference(str(tmp_path / "ref.npz"), other, str(tmp_path / "c"))
    csv_path = tmp_path / "div.csv"
    assert main(["--write-diversity-csv", str(csv_path), "--prompts", "a", "b", "--per-prompt", "3"]) == 0
    assert open(csv_path).read().splitlines()[1:3] == ["0,a,0", "1,a,1"]


class _RandomInception(torch.nn.Module):
    """A random-weight stand-in for torch-fidelity's Inception: uint8 images → (pool features, logits)."""

    num_features = 16

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 5, 4), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(2),
                                        torch.nn.Flatten(), torch.nn.Linear(32, 16))
        self.head = torch.nn.Linear(16, 10)

    def forward(self, x):
        h = self.body(x.float() / 255)
        return h, self.head(h)


class _PoolOnly(torch.nn.Module):
    def __init__(self, net, i):
        super().__init__()
        self.net, self.i, self.num_features = net, i, 16

    def forward(self, x):
        return self.net(x)[self.i]


def test_random_inception_matches_torchmetrics_feature_hook(tmp_path, scenes):
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.inception import InceptionScore

    net = _RandomInception()
    ex = extractors.InceptionExtractor(net, name="random-inception")
    ex.size = 64  # small inputs keep the test fast; the adapter is size-agnostic
    run = _write_run(tmp_path / "run", scenes.images, scenes.prompts)
    ref = _write_run(tmp_path / "ref", sample_scenes(N, seed=7).images, ["x"] * N)
    items, ref_items = run_items(run)[1], folder_items(ref)
    caches = [FeatureCache(str(tmp_path / "c1")), FeatureCache(str(tmp_path / "c2"))]
    extract(items, [ex], caches[:1], batch=10, progress=False)
    extract(ref_items, [ex], caches[1:], batch=10, progress=False)
    ours = scores.fid(caches[0].stack(items, "feat"), real=caches[1].stack(ref_items, "feat"))
    fake_px = to_uint8([load_rgb(i.path) for i in items], 64)
    real_px = to_uint8([load_rgb(i.path) for i in ref_items], 64)
    tm = FrechetInceptionDistance(feature=_PoolOnly(net, 0))
    tm.update(real_px, real=True), tm.update(fake_px, real=False)
    assert ours == pytest.approx(float(tm.compute()), rel=1e-4)
    is_tm = InceptionScore(feature=_PoolOnly(net, 1), splits=4)
    is_tm.update(fake_px)
    torch.manual_seed(0)
    assert scores.inception_score(caches[0].stack(items, "logits"), splits=4)[0] == pytest.approx(
        float(is_tm.compute()[0]), rel=1e-4)


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    """A random-weight CLIP (model + processor) saved with save_pretrained: CLIPScore's model flag, no download."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    sys.path.insert(0, os.path.dirname(__file__))
    from sdxl_fixture import _tokenizer

    path = tmp_path_factory.mktemp("clip")
    small = dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2)
    cfg = CLIPConfig(text_config=dict(**small, vocab_size=1000, max_position_embeddings=77, bos_token_id=0,
                                      eos_token_id=2, pad_token_id=1),
                     vision_config=dict(**small, image_size=32, patch_size=8), projection_dim=16)
    torch.manual_seed(0)
    CLIPModel(cfg).save_pretrained(path)
    CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
                  tokenizer=_tokenizer()).save_pretrained(path)
    return str(path)


def test_random_clip_matches_torchmetrics_clipscore(clip_dir):
    from torchmetrics.multimodal.clip_score import CLIPScore

    ex = extractors.ClipExtractor(clip_dir)
    imgs = ((sample_scenes(6, seed=8).images + 1) * 127.5).round().byte()
    prompts = ["a red circle", "a square", "a shape", "a blue star", "a triangle", "a diamond"]
    per_image = ex(imgs, prompts)["score"]
    assert per_image.shape == (6,)
    tm = CLIPScore(model_name_or_path=lambda: (ex.metric.model, ex.metric.processor))
    tm.update(imgs, prompts)
    assert scores.clip_score(per_image) == pytest.approx(float(tm.compute()), rel=1e-5)


class _RandomDreamSim(torch.nn.Module):
    """A random-weight stand-in for DreamSim: `.embed` of images in [0, 1] at 224²."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 8, 8), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(2),
                                       torch.nn.Flatten())

    def embed(self, x):
        assert x.shape[-2:] == (224, 224) and 0 <= x.min() and x.max() <= 1
        return self.net(x)


def test_sdxl_suite_on_random_weight_models(tmp_path, scenes, clip_dir):
    suite = core.sdxl_suite("cpu", clip_model=clip_dir, inception=_RandomInception(), dreamsim=_RandomDreamSim())
    run = _write_run(tmp_path / "run", scenes.images[:12], scenes.prompts[:12])
    real, _ = core.reference(_write_run(tmp_path / "ref", sample_scenes(12, seed=9).images, ["x"] * 12), suite,
                             str(tmp_path / "cache"), progress=False)
    res = core.evaluate_run(run, suite, real=real, batch=6, progress=False)
    assert res["FID"] > 0 and res["IS"] >= 1 and 0 <= res["CLIP"] <= 100
    assert res["diversity"]["per_prompt"]["a red circle"]["n"] == 4 and res["diversity"]["mean"] > 0
    assert set(res["prdc"]) >= {"precision", "recall", "density", "coverage"}
    assert sorted(os.listdir(os.path.join(run, ".evalcache"))) == sorted(
        [suite.clip.name, "custom-_RandomInception", "custom-_RandomDreamSim"])


def test_missing_extras_name_the_pip_command(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)
    monkeypatch.setitem(sys.modules, "dreamsim", None)
    with pytest.raises(extractors.MissingExtraError, match=r'torch-fidelity.*pip install -e "\.\[sdxl\]"'):
        extractors.InceptionExtractor()
    with pytest.raises(extractors.MissingExtraError, match=r'dreamsim.*pip install -e "\.\[sdxl\]"'):
        extractors.DreamSimExtractor()
    from divdistill.book.chapter import dreamsim_features

    with pytest.raises(ImportError, match=r'pip install -e "\.\[sdxl\]"'):
        dreamsim_features(torch.zeros(1, 3, 8, 8), {})
    with pytest.raises(SystemExit, match=r'pip install -e "\.\[sdxl\]"'):
        main([str(tmp_path), "--scale", "sdxl", "--out", str(tmp_path / "ev")])


def test_generate_then_evaluate_at_sdxl_scale_on_the_fixture(tmp_path, clip_dir):
    """The paper-scale path end to end with no download: random-weight SDXL fixture → generate → evaluate."""
    sys.path.insert(0, os.path.dirname(__file__))
    from sdxl_fixture import build_tiny_sdxl

    from divdistill import load_world
    from divdistill.generate import generate_csv, parse_plan

    world = load_world("sdxl", device="cpu", models=("dmd2",), sources=build_tiny_sdxl(str(tmp_path / "w")))
    rows = [{"case_number": i, "prompt": p, "seed": i} for i, p in enumerate(["a cat", "a dog"] * 2)]
    man = generate_csv(world, parse_plan(world, "hybrid:dmd2:1"), rows, str(tmp_path / "run"), batch=2,
                       progress=False)
    assert man["steps"] == 4 and man["seconds_per_image"] > 0 and len(man["images"]) == 4
    suite = core.sdxl_suite("cpu", clip_model=clip_dir, diversity=False, inception=_RandomInception())
    res = core.evaluate_run(str(tmp_path / "run"), suite, batch=4, progress=False)
    assert res["time_s"] == man["seconds_per_image"] and res["steps"] == 4 and "FID" not in res  # no reference
    assert 0 <= res["CLIP"] <= 100 and res["IS"] >= 1
