"""Paper-scale generation CLI on the tiny world: resumable, atomic, with a manifest; CSV errors."""
import csv
import json
import os

import pytest

from divdistill.generate import generate_csv, parse_plan, read_prompts


def _write_csv(path, prompts, columns=("case_number", "source", "prompt", "evaluation_seed", "coco_id")):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(columns)
        for i, p in enumerate(prompts):
            w.writerow([i, "test", p, 1000 + i, 0][: len(columns)])


def test_killed_generation_resumes_and_loses_nothing(tiny_world, tmp_path):
    good = ["a red circle", "a square", "a blue shape", "a triangle", "a small diamond"]
    _write_csv(tmp_path / "bad.csv", good[:2] + ["a hexagon"] + good[3:])  # row 2 "kills" the run mid-way
    plan = parse_plan(tiny_world, "base")
    plan = type(plan)(plan.steps[::10], plan.name)  # 5 steps keep the test fast
    with pytest.raises(ValueError, match="hexagon"):
        generate_csv(tiny_world, plan, read_prompts(tmp_path / "bad.csv"), str(tmp_path / "out"), batch=2,
                     progress=False)
    man = json.load(open(tmp_path / "out" / "manifest.json"))
    assert sorted(man["images"]) == ["0", "1"]
    mtimes = {f: os.path.getmtime(tmp_path / "out" / f) for f in ("000000.png", "000001.png")}
    _write_csv(tmp_path / "good.csv", good)
    man = generate_csv(tiny_world, plan, read_prompts(tmp_path / "good.csv"), str(tmp_path / "out"), batch=2,
                       progress=False)
    assert sorted(man["images"]) == ["0", "1", "2", "3", "4"]
    assert all(os.path.getmtime(tmp_path / "out" / f) == t for f, t in mtimes.items())  # not regenerated
    assert not [f for f in os.listdir(tmp_path / "out") if ".tmp" in f]
    fresh = generate_csv(tiny_world, plan, read_prompts(tmp_path / "good.csv"), str(tmp_path / "fresh"), batch=3,
                         progress=False)
    for f in ("000000.png", "000003.png"):
        assert open(tmp_path / "out" / f, "rb").read() == open(tmp_path / "fresh" / f, "rb").read()
    assert fresh["images"]["0"]["nfe"] == 10


def test_csv_missing_column_names_it(tmp_path):
    _write_csv(tmp_path / "p.csv", ["a red circle"], columns=("case_number", "prompt"))
    with pytest.raises(ValueError, match=r"missing column\(s\) \['evaluation_seed'\]"):
        read_prompts(tmp_path / "p.csv")


def test_shared_coco_csv_reads_with_paper_seeds():
    path = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "coco_30k.csv")
    if not os.path.exists(path):
        pytest.skip("shared/data/coco_30k.csv is not beside this checkout")
    rows = read_prompts(path, n=3)
    assert rows[0]["seed"] == 41337 and rows[0]["case_number"] == 0 and len(rows) == 3


def test_bad_plan_strings(tiny_world):
    with pytest.raises(ValueError, match="valid forms"):
        parse_plan(tiny_world, "hybrid")
    with pytest.raises(KeyError, match="valid names"):
        parse_plan(tiny_world, "distilled:nope")


def test_cli_shard_flag_and_merge_errors(tmp_path, capsys):
    from divdistill.generate import main

    with pytest.raises(SystemExit):
        main(["--plan", "base", "--csv", "p.csv", "--out", str(tmp_path), "--shard", "1-2"])
    assert "--shard wants INDEX/COUNT" in capsys.readouterr().err
    assert main(["--merge", "--out", str(tmp_path)]) == 2  # one line, exit status 2 (issue 20)
    assert "divdistill-generate: error: no shard manifests" in capsys.readouterr().err
    with open(tmp_path / "manifest.shard-00000-of-00002.json", "w") as f:
        json.dump({"plan": "base", "images": {}}, f)
    from divdistill.evaluation.store import run_items

    with pytest.raises(FileNotFoundError, match="divdistill-generate --merge"):
        run_items(str(tmp_path))  # unmerged shards: evaluate says how to merge them
