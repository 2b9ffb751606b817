"""The notebook convention: output-free sources, a tagged parameters cell, a Colab install cell, and a smoke run."""
import ast
import glob
import os

import nbformat
import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
NOTEBOOKS = sorted(glob.glob(os.path.join(ROOT, "notebooks", "*.ipynb")))
# smoke-size values for the parameters notebooks declare (only names a notebook declares are passed)
SMOKE = {"n_per_prompt": 2, "n_eval": 40, "n_samples": 8, "n_prompts": 2, "n_seeds": 1, "batch_size": 8}


def _params(nb) -> dict:
    src = nb.cells[0].source
    return {t.id: None for node in ast.parse(src).body if isinstance(node, ast.Assign) for t in node.targets
            if isinstance(t, ast.Name)}


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
    first, second = nb.cells[0], nb.cells[1]
    assert first.cell_type == "code" and "parameters" in first.metadata.get("tags", [])
    assert {"scale", "device", "seed"} <= set(_params(nb))
    assert second.cell_type == "code" and "hide-output" in second.metadata.get("tags", [])
    assert "find_spec(\"divdistill\")" in second.source and "pip" in second.source


@pytest.mark.notebooks
@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_executes_at_smoke_size(path, tmp_path):
    import papermill as pm

    nb = nbformat.read(path, as_version=4)
    params = {k: v for k, v in SMOKE.items() if k in _params(nb)}
    pm.execute_notebook(path, str(tmp_path / os.path.basename(path)), parameters=params, kernel_name="python3",
                        cwd=os.path.dirname(path), progress_bar=False)
