"""The CLIs' one resume mechanism (commandline.load_partial/save_partial, Partial): an interrupted run resumes from
what it saved, other settings start afresh, and a damaged or foreign file is ignored with a warning."""
import json

import pytest
import torch

from divdistill import commandline as C

SETTINGS = {"n": 4, "seeds": (0, 1), "variant": "v"}


class _Killed(Exception):
    pass


def _run(path, settings, keys, calls, kill_at=None):
    """A run computing one result per key, 'killed' (an exception) before key `kill_at`."""
    part = C.Partial(path, settings)
    for k in keys:
        if k == kill_at:
            raise _Killed(k)
        part.get(k, lambda: calls.append(k) or {"value": len(k), "k": k})
    return part


@pytest.mark.parametrize("name", ["run.partial", "run.pt"])
def test_an_interrupted_run_resumes_and_recomputes_nothing_it_saved(tmp_path, name):
    path, calls = str(tmp_path / name), []
    with pytest.raises(_Killed):
        _run(path, SETTINGS, ["a", "b", "c", "d"], calls, kill_at="c")
    assert calls == ["a", "b"]
    part = _run(path, SETTINGS, ["a", "b", "c", "d"], calls)
    assert calls == ["a", "b", "c", "d"]  # a and b came from the file
    assert part.results == {k: {"value": 1, "k": k} for k in "abcd"}
    part.discard()
    assert not (tmp_path / name).exists()


def test_a_settings_change_starts_afresh(tmp_path):
    path, calls = str(tmp_path / "run.partial"), []
    _run(path, SETTINGS, ["a"], calls)
    _run(path, {**SETTINGS, "seeds": [0, 1]}, ["a"], calls)  # a tuple and a list read back alike: same settings
    assert calls == ["a"]
    _run(path, {**SETTINGS, "n": 5}, ["a"], calls)
    assert calls == ["a", "a"]
    assert C.load_partial(path, SETTINGS) == {}  # the file now holds the n = 5 results only


def test_torch_partials_keep_tensors_bit_for_bit(tmp_path):
    path, x = str(tmp_path / "cells.pt"), torch.randn(5, 3)
    C.save_partial(path, SETTINGS, {"cell": {"feats": x, "nfe": 4, "none": None}})
    got = C.load_partial(path, SETTINGS)["cell"]
    assert torch.equal(got["feats"], x) and got["feats"].dtype == x.dtype and got["nfe"] == 4 and got["none"] is None


def test_a_named_field_keeps_a_committed_files_layout(tmp_path):
    path = str(tmp_path / "controls.json")
    C.save_partial(path, SETTINGS, [{"label": "a"}], field="rows")
    with open(path) as f:
        assert json.load(f) == {"settings": {"n": 4, "seeds": [0, 1], "variant": "v"}, "rows": [{"label": "a"}]}
    assert C.load_partial(path, SETTINGS, field="rows") == [{"label": "a"}]


@pytest.mark.parametrize("name,content", [
    ("run.partial", '{"settings": {"n": 4}, "results": {"a": 1'),  # truncated JSON
    ("run.partial", "\x00\x01 not json"),
    ("run.partial", '{"a": [1.0, 2.0]}'),  # foreign: a JSON without settings (e.g. an older cache format)
    ("run.pt", b"PK\x03\x04 half a zip"),  # truncated torch file
    ("run.pt", b""),
])
def test_a_damaged_or_foreign_partial_is_ignored_with_a_warning(tmp_path, name, content):
    p = tmp_path / name
    p.write_bytes(content) if isinstance(content, bytes) else p.write_text(content)
    with pytest.warns(UserWarning, match=r"ignored, starting afresh"):
        part = C.Partial(str(p), SETTINGS)
    assert part.results == {}
    calls = []
    part.get("a", lambda: calls.append("a") or 1)  # the next save replaces the damaged file
    assert calls == ["a"] and C.load_partial(str(p), SETTINGS) == {"a": 1}


def test_without_a_path_results_stay_in_memory(tmp_path):
    part = C.Partial(None, SETTINGS)
    assert part.get("a", lambda: 1) == 1 and "a" in part and part.get("a", lambda: 2) == 1
    C.save_partial(None, SETTINGS, {"a": 1})  # a no-op
    assert C.load_partial(None, SETTINGS) == {} and list(tmp_path.iterdir()) == []
