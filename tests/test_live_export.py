"""The live page's evaluator readout, without a browser: its JavaScript cosine diversity (web/src/engine.mjs) equals
divdistill.metrics.pairwise_diversity, and the export's content hash covers the evaluator folder."""
import json
import os
import shutil
import subprocess

import torch

from divdistill import metrics as M
from divdistill.live.export import world_hash

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def test_javascript_cosine_diversity_equals_pairwise_diversity(tmp_path):
    node = shutil.which("node")
    assert node, "the live page's diversity test needs Node.js (`node` on PATH; Debian: apt-get install -y nodejs)"
    g = torch.Generator().manual_seed(0)
    cases = []
    for batch, scale in [(2, 1.0), (4, 20.0), (16, 30.0)]:  # the page's grids: 4–16 images, features of norm ~50
        f = (torch.randn(batch, 128, generator=g) * scale).relu()  # SiLU-like: non-negative, some exact zeros
        f[0] += 5.0  # a shared component: cosine distances well below 1, like one prompt's samples
        img = torch.rand(batch, 3, 32, 32, generator=g) * 2.4 - 1.2  # the pixel readout clamps
        cases.append({"batch": batch, "features": f.flatten().tolist(), "images": img.flatten().tolist(),
                      "want": M.pairwise_diversity(f)})
    (tmp_path / "ref.json").write_text(json.dumps({"cases": cases}))
    run = subprocess.run([node, os.path.join(ROOT, "web", "test", "check_diversity.mjs"), str(tmp_path / "ref.json")],
                         capture_output=True, text=True, check=True)
    for c, got in zip(cases, json.loads(run.stdout)):
        assert abs(got["cosine"] - c["want"]) < 1e-6, (c["batch"], got["cosine"], c["want"])
        assert 0 < got["pixel"] < 1


def _fake_world(root):
    for d in ["teacher", *(f"students/{m}" for m in ("dmd2", "turbo", "lightning", "lcm")), "evaluator"]:
        os.makedirs(root / d)
        (root / d / "weights.safetensors").write_bytes(d.encode())


def test_export_hash_covers_the_evaluator(tmp_path):
    _fake_world(tmp_path)
    ev = str(tmp_path / "evaluator")
    before = world_hash(str(tmp_path), evaluator=ev)
    assert world_hash(str(tmp_path)) == before  # a world folder's own evaluator/ is the one the loader uses
    (tmp_path / "evaluator" / "weights.safetensors").write_bytes(b"retrained")
    assert world_hash(str(tmp_path), evaluator=ev) != before
    shutil.rmtree(ev)
    try:
        world_hash(str(tmp_path), evaluator=ev)
    except FileNotFoundError as e:
        assert "evaluator" in str(e)
    else:
        raise AssertionError("a missing evaluator folder must fail the export's hash, not be skipped")
