"""The teacher's size diagnosis (chapters/tiny_world/size.py): the named-side flags, the three sources on the
committed teacher (seeded, so repeatable), pooled shares, the start gap and its summary, and clear errors."""
import pytest
import torch

from divdistill.chapters.tiny_world.report import size_summary, size_table_rows
from divdistill.chapters.tiny_world.size import SOURCES, on_named_side, pooled, size_rows, start_gap
from divdistill.tiny.evaluator import SMALL_LARGE_SPLIT, load_evaluator


def test_named_side_reads_the_split():
    r = torch.tensor([SMALL_LARGE_SPLIT - 0.1, SMALL_LARGE_SPLIT, SMALL_LARGE_SPLIT + 3])
    assert on_named_side(r, 1).tolist() == [0.0, 1.0, 1.0]
    assert on_named_side(r, 0).tolist() == [1.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="0 \\(small\\) or 1 \\(large\\)"):
        on_named_side(r, 2)


@pytest.fixture(scope="module")
def rows(tiny_world):
    ev = load_evaluator(tiny_world.extras["evaluator_root"])
    prompts = ("a large square", "a small orange triangle")
    return ev, prompts, size_rows(tiny_world, ev, n=3, seed=0, prompts=prompts)


def test_three_sources_per_prompt_repeatable(tiny_world, rows):
    ev, prompts, got = rows
    assert [(r["prompt"], r["source"]) for r in got] == [(p, s) for p in prompts for s in SOURCES]
    assert all(r["n"] == 3 and len(r["on named side"]) == 3 for r in got)
    assert {r["named"] for r in got} == {"small", "large"}
    # the two teacher starts are different inputs to the same plan: their images differ
    by = {(r["prompt"], r["source"]): r for r in got}
    assert any(by[(p, SOURCES[1])]["mean size"] != by[(p, SOURCES[2])]["mean size"] for p in prompts)
    assert size_rows(tiny_world, ev, n=3, seed=0, prompts=prompts[:1]) == got[:3]  # same seed, same output
    with pytest.raises(ValueError, match="names no size"):
        size_rows(tiny_world, ev, n=1, prompts=("a red circle",))


def test_pooled_gap_and_summary_from_constructed_rows():
    def row(source, named, flags):
        return {"prompt": f"a {named} shape", "named": named, "source": source, "n": len(flags),
                "on named side": flags, "mean size": 8.0}

    rows = [row(SOURCES[0], "large", [1.0] * 40), row(SOURCES[1], "large", [1.0] * 20 + [0.0] * 20),
            row(SOURCES[2], "large", [1.0] * 39 + [0.0]), row(SOURCES[0], "small", [1.0] * 40),
            row(SOURCES[1], "small", [1.0] * 39 + [0.0]), row(SOURCES[2], "small", [1.0] * 39 + [0.0])]
    p = pooled(rows, SOURCES[1], "large")
    assert p["share"] == 0.5 and p["n"] == 40 and p["lo"] < 0.5 < p["hi"]
    assert pooled(rows, SOURCES[1])["share"] == pytest.approx(59 / 80)
    assert start_gap(rows, "large").lo > 0.2 and start_gap(rows, "small").mean == 0.0
    d = {"split": SMALL_LARGE_SPLIT, "rows": rows,
         "pooled": [pooled(rows, s, w) for s in SOURCES for w in (None, "small", "large")]}
    text = size_summary(d)
    assert "not in rendering it" in text
    assert size_table_rows(d)[0] == {"prompt": "a large shape", "data": "1.00 (8.0)",
                                     "teacher, prior": "0.50 (8.0)", "teacher, real layout": "0.97 (8.0)"}
    flat = [dict(r, **{"on named side": [1.0] * r["n"]}) for r in rows]
    d_flat = {**d, "rows": flat, "pooled": [pooled(flat, s, w) for s in SOURCES for w in (None, "small", "large")]}
    assert "not the first steps' alone" in size_summary(d_flat)
    noisy = [1.0] * 30 + [0.0] * 10  # "small": the same noisy share from both starts
    one = [row(SOURCES[0], "large", [1.0] * 40), row(SOURCES[1], "large", [1.0] * 34 + [0.0] * 6),
           row(SOURCES[2], "large", [1.0] * 40), row(SOURCES[0], "small", [1.0] * 40),
           row(SOURCES[1], "small", noisy), row(SOURCES[2], "small", noisy)]  # only "large" gains
    d_one = {**d, "rows": one, "pooled": [pooled(one, s, w) for s in SOURCES for w in (None, "small", "large")]}
    assert "clearly so for “large”" in size_summary(d_one)
    assert size_summary(None).startswith("No size diagnosis")
    with pytest.raises(ValueError, match="no rows for source"):
        pooled(rows, "the moon")
