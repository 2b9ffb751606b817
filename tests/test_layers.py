"""The layout is the architecture: every import of every module runs downward (chapters → book → distill, control,
evaluation → tiny → engine), found by walking each module's imports with `ast`."""
import ast
import pathlib

import pytest

SRC = pathlib.Path(__file__).resolve().parents[1] / "src" / "divdistill"
RANK = {"engine": 0, "tiny": 1, "distill": 2, "control": 2, "evaluation": 2, "book": 3, "chapters": 4, "live": 4}
# the one dispatch from the engine to a world's public loader (and the sdxl loader, engine itself)
ALLOWED = {("worlds", "tiny.loader")}
PEERS_OK = set()  # distill, control and evaluation are peers: none imports another


def _layer(module: str) -> str:
    top = module.split(".")[0]
    return top if top in RANK and (SRC / top).is_dir() else "engine"


def _chapter(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "chapters" and len(parts) > 1 else None


def _imports(path: pathlib.Path):
    """(line, target) for every divdistill import of a file; target relative to divdistill ('' = the package)."""
    rel = path.relative_to(SRC).with_suffix("")
    pkg = list(rel.parts[:-1]) if rel.parts[-1] != "__init__" else list(rel.parts[:-1])
    for n in ast.walk(ast.parse(path.read_text())):
        if isinstance(n, ast.ImportFrom):
            if n.level:
                base = pkg[:len(pkg) - (n.level - 1)]
                mod = ".".join(base + ([n.module] if n.module else []))
            elif n.module and (n.module == "divdistill" or n.module.startswith("divdistill.")):
                mod = n.module.partition(".")[2]
            else:
                continue
            names = [a.name for a in n.names]
            subs = [f"{mod}.{a}".lstrip(".") for a in names if (SRC / (f"{mod}.{a}".lstrip(".")).replace(".", "/")).with_suffix(".py").exists()
                    or (SRC / (f"{mod}.{a}".lstrip(".")).replace(".", "/")).is_dir()]
            for t in subs or [mod]:
                yield n.lineno, t
        elif isinstance(n, ast.Import):
            for a in n.names:
                if a.name.startswith("divdistill."):
                    yield n.lineno, a.name.partition(".")[2]


def _modules():
    return sorted(p for p in SRC.rglob("*.py"))


def _violations(path: pathlib.Path) -> list[str]:
    rel = path.relative_to(SRC).with_suffix("")
    me = ".".join(p for p in rel.parts if p != "__init__")
    if me == "":  # the package's facade: it may only re-export the engine
        return [f"divdistill/__init__.py:{ln} imports {t} (the facade re-exports the engine only)"
                for ln, t in _imports(path) if t and _layer(t) != "engine"]
    out, mine = [], _layer(me)
    for ln, t in _imports(path):
        if not t:  # the facade re-exports the engine: only the engine itself must not go through it
            if mine == "engine":
                out.append(f"{path.relative_to(SRC)}:{ln} (engine) imports the package facade `divdistill`")
            continue
        theirs = _layer(t)
        if (me, t) in ALLOWED or theirs == mine and (mine != "chapters" or _chapter(t) in (None, _chapter(me))):
            continue
        if RANK[theirs] >= RANK[mine]:
            out.append(f"{path.relative_to(SRC)}:{ln} ({mine}) imports {t} ({theirs})")
    return out


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_imports_run_downward(path):
    assert _violations(path) == []


def test_the_checker_sees_an_upward_import(tmp_path, monkeypatch):
    """A world module importing a trainer is caught (the walker is not vacuous)."""
    fake = SRC / "tiny" / "_upward_probe.py"
    monkeypatch.setattr(pathlib.Path, "read_text", lambda self, *a, **k: "from ..distill.loop import fit\n"
                        if self == fake else pathlib.Path.read_bytes(self).decode())
    assert _violations(fake) == ["tiny/_upward_probe.py:1 (tiny) imports distill.loop (distill)"]


def test_the_engine_has_no_chapter_code():
    """The top level holds only the engine modules the README lists."""
    engine = {p.stem for p in SRC.glob("*.py")} - {"__init__", "__main__"}
    assert engine <= {"plan", "sampling", "solvers", "preview", "metrics", "stats", "io", "training", "commandline",
                      "registry", "worlds", "sdxl", "generate", "paper", "switch", "prior"}, engine
