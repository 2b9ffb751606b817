"""The notebook convention and the book as a reader sees it: output-free sources, a tagged parameters cell, a Colab
install cell naming the one repository URL, a smoke-size execution of every notebook and an HTML build of the book
that is parsed like a reader's browser would."""
import glob
import json
import math
import os
import re

import nbformat
import pytest

from divdistill.book.build import INSTALL_CELL, declared_parameters, repo_url
from divdistill.book.claims import CLAIMS, FIELDS

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
NOTEBOOKS = sorted(glob.glob(os.path.join(ROOT, "notebooks", "*.ipynb")))
NAMES = [os.path.splitext(os.path.basename(p))[0] for p in NOTEBOOKS]

# smoke-size values for the parameters notebooks declare (only names a notebook declares are passed)
SMOKE = {"n_per_prompt": 2, "n_eval": 40, "n_samples": 8, "n_prompts": 2, "n_seeds": 1, "batch_size": 8, "n_check": 2,
         "quick": True, "base_steps": 8}  # base_steps: the live base samples' DDIM steps (control_transfer: 40 → 31 s)


@pytest.fixture(scope="module")
def smoke_book(tmp_path_factory):
    """Every notebook executed at smoke size (summaries in book/summaries of the copy) and the whole book rendered,
    once: this module's notebook and reader tests share it."""
    from divdistill.book.build import build_copy

    dest = tmp_path_factory.mktemp("book")
    build_copy(str(dest), SMOKE)
    return dest


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ holds no notebooks"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_source_notebook_is_output_free(path):
    nb = nbformat.read(path, as_version=4)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"cell {i} of {path} has outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_parameters_and_install_cells(path):
    nb = nbformat.read(path, as_version=4)
    first, second, third = nb.cells[0], nb.cells[1], nb.cells[2]
    assert first.cell_type == "code" and "parameters" in first.metadata.get("tags", [])
    assert {"scale", "device", "seed"} <= declared_parameters(nb)
    assert second.cell_type == "code" and {"hide-output", "remove-input"} <= set(second.metadata.get("tags", []))
    assert second.source == INSTALL_CELL.format(url=repo_url()), \
        f"{path}: the install cell drifted from _config.yml; run `python -m divdistill.book sync-url`"
    assert third.cell_type == "markdown" and third.source.lstrip().startswith("# "), \
        f"{path}: cell 3 must open the chapter with its title"


@pytest.mark.notebooks
@pytest.mark.parametrize("name", NAMES)
def test_notebook_executes_at_smoke_size(smoke_book, name):
    nb = nbformat.read(str(smoke_book / "book" / f"{name}.ipynb"), as_version=4)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors and nb.metadata["divdistill"]["input_hash"]


@pytest.mark.notebooks
def test_smoke_summaries_are_complete_and_finite(smoke_book):
    paths = glob.glob(str(smoke_book / "book" / "summaries" / "*.json"))
    for path in paths:
        for e in json.load(open(path)):
            assert set(FIELDS) <= set(e) and e["id"] in CLAIMS and e["holds"] in (True, False, None)
            assert e["n"] > 0 and not re.search(r"\bnan\b|\binf\b", e["ours"].lower()), (path, e)


@pytest.mark.notebooks
def test_hybrid_smoke_summary_is_finite(smoke_book):
    with open(smoke_book / "book" / "summaries" / "hybrid_diversity.json") as f:
        summary = json.load(f)
    assert [e["id"] for e in summary] == ["C4", "C5", "C6", "C7", "C8"]
    for e in summary:
        nums = [float(x) for x in re.findall(r"-?\d+\.\d+", e["ours"])]
        assert nums and all(math.isfinite(x) for x in nums) and "–" not in e["ours"], e
        assert e["holds"] in (True, False, None) and e["n"] > 0


def _pages(smoke_book):
    from bs4 import BeautifulSoup

    html_dir = smoke_book / "_build" / "html"
    return {n: BeautifulSoup((html_dir / f"{n}.html").read_text(), "html.parser") for n in NAMES + ["claims", "intro"]}


def _visible_code(cell) -> bool:
    """A code cell whose input a reader sees without clicking (not removed, not collapsed)."""
    inp = cell.find("div", class_="cell_input")
    return inp is not None and inp.find_parent("details") is None


@pytest.mark.notebooks
def test_book_pages_read_as_a_reader_expects(smoke_book):
    for name, page in _pages(smoke_book).items():
        body = page.find("article") or page
        text = body.get_text("\n")
        raw = [ln for ln in text.splitlines() if re.match(r"^\s*\|.*\|\s*$", ln) or re.match(r"^\s*\|?\s*-{3,}\s*\|", ln)]
        assert not raw, f"{name}: raw markdown table text on the page: {raw[:2]}"
        if name in NAMES:
            h1 = body.find("h1")
            assert h1 is not None, f"{name}: no title"
            cells = body.find_all("div", class_="cell")
            first_code = next((c for c in cells if _visible_code(c)), None)
            if first_code is not None:
                order = [el for el in body.find_all(True) if el is h1 or el is first_code]
                assert order[0] is h1, f"{name}: visible code comes before the chapter title"
        for img in body.find_all("img"):
            fig = img.find_parent("figure")
            assert img.get("alt") or (fig is not None and fig.find("figcaption")) or img.find_parent(
                "div", class_="cell_output"), f"{name}: an image without alt text or caption: {str(img)[:120]}"


@pytest.mark.notebooks
def test_result_tables_are_html_tables(smoke_book):
    pages = _pages(smoke_book)
    assert any(p.find("table", class_="dd-table") for p in pages.values()), "no result table rendered as <table>"
    ledger = pages["claims"]
    rows = ledger.find("table").find_all("tr")
    ids = {r.find("td").get_text(strip=True) for r in rows[1:] if r.find("td")}  # "C4", linked to its chapter
    assert set(CLAIMS) <= ids, f"the claims ledger misses {sorted(set(CLAIMS) - ids)}"
    assert pages["intro"].find("a", href=re.compile(r"claims\.html")), "the intro does not link the claims ledger"


def test_smoke_parameters_are_declared_somewhere():
    declared = set().union(*(declared_parameters(nbformat.read(p, 4)) for p in NOTEBOOKS))
    assert set(SMOKE) & declared, "no notebook declares any smoke-size parameter"


@pytest.mark.notebooks
def test_dt_slider_cell_has_a_static_image(smoke_book):
    """The book has no kernel: the DT chapter's slider cell must also render its content as a static figure."""
    nb = nbformat.read(str(smoke_book / "book" / "dt_visualization.ipynb"), as_version=4)
    slider = next(c for c in nb.cells if "dt-slider" in c.metadata.get("tags", []))
    assert any("image/png" in o.get("data", {}) for o in slider.outputs)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_chapter_ends_with_exercises(path):
    """Issue 18: each chapter ends with two or three exercises, each answer a collapsed, computed output."""
    nb = nbformat.read(path, as_version=4)
    heads = [i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and c.source.lstrip().startswith("## ")]
    assert heads and nb.cells[heads[-1]].source.lstrip().startswith("## Exercises"), f"{path}: no final ## Exercises"
    tail = nb.cells[heads[-1] + 1:]
    answers = [c for c in tail if c.cell_type == "code"]
    assert 2 <= len(answers) <= 3, f"{path}: {len(answers)} exercise answers"
    for c in answers:
        assert {"hide-input", "hide-output"} <= set(c.metadata.get("tags", [])), f"{path}: an answer is not collapsed"
    assert tail[-1].cell_type == "code", f"{path}: the last exercise has no answer cell"
