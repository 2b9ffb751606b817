"""Multi-process generation: CSV rows sharded across processes (accelerate launch), one manifest per shard, merged;
the same as a single-process run up to float rounding; whole-plan timing in the manifest."""
import csv
import json
import os
import shutil
import socket
import subprocess
import sys

import pytest

from divdistill.generate import generate_csv, merge, parse_plan, read_prompts, shard_rows

PROMPTS = ["a red circle", "a square", "a blue shape", "a triangle", "a small diamond"]
PLAN = "distilled:dmd2"


def _csv(path):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["case_number", "prompt", "evaluation_seed"])
        w.writerows([i, p, 500 + i] for i, p in enumerate(PROMPTS))
    return str(path)


def _same_output(a, b):
    """The same per-image records (timings aside) and the same pixels up to float rounding: a batch of another size
    (or another process's thread count) may round a pixel to the neighbouring 8-bit level, nothing more."""
    import numpy as np
    from PIL import Image

    ma, mb = (json.load(open(os.path.join(d, "manifest.json"))) for d in (a, b))
    strip = lambda m: {k: {f: v for f, v in r.items() if f != "seconds"} for k, r in m["images"].items()}  # noqa
    assert strip(ma) == strip(mb) and len(ma["images"]) == len(PROMPTS)
    for r in ma["images"].values():
        pa, pb = (np.asarray(Image.open(os.path.join(d, r["file"]))).astype(int) for d in (a, b))
        assert pa.shape == pb.shape and np.abs(pa - pb).max() <= 1 and (pa != pb).mean() <= 1e-3, r["file"]
    return ma, mb


@pytest.fixture(scope="module")
def single(tiny_world, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("single")
    rows = read_prompts(_csv(tmp / "p.csv"))
    generate_csv(tiny_world, parse_plan(tiny_world, PLAN), rows, str(tmp / "out"), batch=2, progress=False)
    return str(tmp / "out")


def test_shard_rows_partition():
    rows = [{"case_number": i} for i in range(7)]
    parts = [shard_rows(rows, i, 3) for i in range(3)]
    assert sorted(r["case_number"] for p in parts for r in p) == list(range(7))
    assert [r["case_number"] for r in parts[1]] == [1, 4]
    with pytest.raises(ValueError, match="bad shard 3 of 3"):
        shard_rows(rows, 3, 3)


def test_manifest_times_the_whole_plan(single):
    man = json.load(open(os.path.join(single, "manifest.json")))
    assert man["steps"] == 4 and man["nfe"] == 4 and man["seconds_per_image"] > 0
    assert "prompt encoding" in man["timing_note"] and "base step included" in man["timing_note"]
    assert all(r["seconds"] > 0 for r in man["images"].values())
    assert "peak_gpu_memory_gib" not in man  # CPU run: no GPU memory to report


def test_shards_merge_and_resume_with_another_count(tiny_world, single, tmp_path):
    rows = read_prompts(_csv(tmp_path / "p.csv"))
    plan, out = parse_plan(tiny_world, PLAN), str(tmp_path / "out")
    first = generate_csv(tiny_world, plan, rows, out, batch=2, progress=False, shard=(0, 3))
    assert sorted(first["images"]) == ["0", "3"] and not os.path.exists(os.path.join(out, "manifest.json"))
    assert merge(out, plan.name, rows) is None  # shards 1 and 2 not done yet
    open(os.path.join(out, "000001.png.tmp.png"), "wb").write(b"\x89PNG half")  # a kill mid-write leaves this
    generate_csv(tiny_world, plan, rows, out, batch=3, progress=False)  # resumed by one process: the rest only
    _same_output(out, single)
    assert not [f for f in os.listdir(out) if ".tmp" in f]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_accelerate_launch_equals_single_process(single, tmp_path):
    accelerate = shutil.which("accelerate", path=os.path.dirname(sys.executable))
    if accelerate is None:
        pytest.skip("accelerate's launcher is not installed beside this Python")
    out = str(tmp_path / "out")
    cmd = [accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision",
           "no", "--dynamo_backend", "no", "--main_process_port", str(_free_port()), "-m", "divdistill.generate",
           "--plan", PLAN, "--csv", _csv(tmp_path / "p.csv"), "--out", out, "--batch", "2", "--device", "cpu"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    shards = sorted(f for f in os.listdir(out) if f.startswith("manifest.shard-"))
    assert shards == ["manifest.shard-00000-of-00002.json", "manifest.shard-00001-of-00002.json"]
    merged, _ = _same_output(out, single)
    assert merged["shards"] == [[0, 2], [1, 2]] and merged["seconds_per_image"] > 0
