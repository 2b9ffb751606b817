"""Claims: verdicts come from confidence intervals; summaries merge by scale; the ledger is built from them alone."""
import json

import numpy as np
import pytest

from divdistill.book import claims
from divdistill.book.build import INSTALL_CELL, execute, input_hash, ledger_markdown, repo_url
from divdistill.book.viz import table


def test_bootstrap_ci_covers_the_mean_and_shrinks_with_n():
    rng = np.random.default_rng(0)
    small, large = claims.bootstrap(rng.normal(1, 1, 20)), claims.bootstrap(rng.normal(1, 1, 2000))
    assert small.lo < small.mean < small.hi and large.lo < 1 < large.hi
    assert (large.hi - large.lo) < (small.hi - small.lo)
    assert claims.bootstrap([2.0]) == claims.Estimate(2.0, 2.0, 2.0, 1)


def test_verdict_reads_the_interval():
    E = claims.Estimate
    assert claims.verdict(E(0.5, 0.1, 0.9, 10), ">") is True
    assert claims.verdict(E(-0.5, -0.9, -0.1, 10), ">") is False
    assert claims.verdict(E(0.1, -0.2, 0.4, 10), ">") is None
    assert claims.verdict(E(-0.5, -0.9, -0.1, 10), "<") is True
    assert claims.verdict(E(0.5, 0.3, 0.9, 10), ">", margin=0.2) is True
    assert claims.verdict(E(float("nan"), float("nan"), float("nan"), 0), ">") is None
    with pytest.raises(ValueError, match="direction"):
        claims.verdict(E(0, 0, 0, 1), ">=")


def test_paired_difference_of_identical_sets_is_zero():
    a = np.arange(10.0)
    d = claims.bootstrap_diff(a, a, paired=True)
    assert d.mean == d.lo == d.hi == 0
    assert claims.verdict(claims.bootstrap_diff(a + 5, a, paired=True), ">") is True


def test_entry_validates_ids_and_holds():
    with pytest.raises(ValueError, match="unknown claim id 'C9'.*valid ids"):
        claims.entry("C9", "p", "o", True, "tiny", 1)
    with pytest.raises(ValueError, match="holds must be"):
        claims.entry("C4", "p", "o", "yes", "tiny", 1)
    assert claims.all_hold([True, True]) is True and claims.all_hold([True, None]) is None
    assert claims.all_hold([True, False, None]) is False


def test_summaries_merge_by_scale_and_feed_the_ledger(tmp_path):
    d = str(tmp_path)
    claims.write_summary("hybrid", [claims.entry("C4", "0.337 vs 0.264", "0.17 vs 0.12", True, "tiny", 100)], d)
    claims.write_summary("hybrid", [claims.entry("C4", "0.337 vs 0.264", "0.33 vs 0.27", None, "sdxl", 50)], d)
    claims.write_summary("hybrid", [claims.entry("C4", "0.337 vs 0.264", "0.18 vs 0.12", False, "tiny", 200)], d)
    data = json.load(open(tmp_path / "hybrid.json"))
    assert sorted((e["scale"], e["n"]) for e in data) == [("sdxl", 50), ("tiny", 200)]
    md = ledger_markdown(d, d)
    for cid in claims.CLAIMS:
        assert f"| {cid} |" in md or f"| [{cid}](" in md
    row = next(ln for ln in md.splitlines() if ln.startswith("| C4 |") and "(tiny)" in ln)
    assert "0.18 vs 0.12 (n=200)" in row and row.startswith("| C4 | ✗ (tiny) |") and "ours (sdxl)" in md
    assert md.count("not yet measured") == len(claims.CLAIMS) - 1
    assert "provisional" not in md
    claims.write_summary("dt", [claims.entry("C2", "p", "o", False, "tiny", 9, note="provisional: this world's "
                                             "teacher fails its acceptance bar on size; n=9")], d)
    md = ledger_markdown(d, d)
    assert "**Every tiny verdict here is provisional.**" in md and "fails its acceptance bar on size. The tiny-world and students chapters show" in md
    assert "- **C2** (tiny, dt): provisional (the caveat above); n=9" in md  # stated once, not per note


def test_table_renders_html_with_paper_columns_marked():
    t = table([{"model": "dmd2", "ours": 0.1234, "paper": 0.264}], paper_columns=["paper"])
    html = t._repr_html_()
    assert html.startswith("<table") and "paper: paper" in html and "text-align:right" in html
    assert "| model | ours | paper: paper |" in t.markdown()
    with pytest.raises(ValueError, match="not table columns"):
        table([{"a": 1}], paper_columns=["b"])


def test_only_long_text_cells_may_wrap():
    """A model list may wrap when the table is wider than the page; '≤ 1.5×' and numbers never do."""
    long = ", ".join(["lcm_ddil_reflected"] * 4)
    html = table([{"bar": "≤ 1.5×", "students": long, "fid": 123456789.0}])._repr_html_()
    assert html.count('class="dd-wrap"') == 1 and f'class="dd-wrap" style="text-align:left">{long}' in html


def test_execution_is_cached_by_content_hash(tmp_path):
    import nbformat

    src = tmp_path / "nb"
    src.mkdir()
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(INSTALL_CELL.format(url=repo_url())),
        nbformat.v4.new_markdown_cell("# T\n\nA paragraph."),
        nbformat.v4.new_code_cell("print(x * 2)")],
        metadata={"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}})
    nbformat.write(nb, str(src / "a.ipynb"))
    out = tmp_path / "out"
    out.mkdir()
    first = execute(parameters={"x": 3, "undeclared": 1}, out_dir=str(out), src_dir=str(src))
    again = execute(parameters={"x": 3}, out_dir=str(out), src_dir=str(src))
    changed = execute(parameters={"x": 4}, out_dir=str(out), src_dir=str(src))
    forced = execute(parameters={"x": 4}, out_dir=str(out), src_dir=str(src), force=True)
    assert [r["a.ipynb"][1] for r in (first, again, changed, forced)] == ["ran", "reused", "ran", "ran"]
    done = nbformat.read(str(out / "a.ipynb"), 4)
    shown = [c for c in done.cells if "remove-cell" not in c.metadata.get("tags", [])]  # the install cell is removed
    assert len(shown) == len(done.cells) - 1 and shown[0].cell_type == "markdown"  # the title first
    assert {"parameters", "hide-input"} <= set(shown[1].metadata["tags"])  # then the parameters, collapsed
    assert done.metadata["divdistill"]["input_hash"] == input_hash(str(src / "a.ipynb"), {"x": 4})


def test_per_prompt_diversity_groups_rows_by_prompt():
    import torch

    from divdistill.metrics import pairwise_diversity, per_prompt_diversity

    feats = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    prompts = ["a", "b", "a", "b", "a", "b"]
    got = per_prompt_diversity(feats, prompts)
    assert list(got) == ["a", "b"]
    assert got["a"] == pairwise_diversity(feats[[0, 2, 4]]) and got["b"] == pairwise_diversity(feats[[1, 3, 5]])
    with pytest.raises(ValueError, match="one prompt per feature row"):
        per_prompt_diversity(feats, prompts[:5])
