"""Book pipeline: papermill executes notebooks/ into book/ (cached by content hash), a ledger is built from the
chapter summaries, and Jupyter Book 1.x renders _build/html."""
from __future__ import annotations

import ast
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time

import nbformat

from . import claims
from .. import commandline as C
from ..io import atomic_write_text

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
NOTEBOOKS = os.path.join(ROOT, "notebooks")
BOOK = os.path.join(ROOT, "book")
HASHED = ("src", "data")  # a notebook re-executes when these, its source or its parameters change
INSTALL_MARK = 'find_spec("divdistill")'
INSTALL_CELL = '''# Colab: when divdistill is not importable, fetch the repository (code + the shipped tiny world) and install it.
# REPO is written from _config.yml (repository.url) by `python -m divdistill.book sync-url`; change it there.
REPO = "{url}"
import importlib.util, subprocess, sys
if importlib.util.find_spec("divdistill") is None:
    subprocess.run(["git", "clone", "--depth", "1", REPO, "/content/divdistill"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", "/content/divdistill"], check=True)
    sys.path.insert(0, "/content/divdistill/src")'''


def repo_url(config: str = os.path.join(ROOT, "_config.yml")) -> str:
    """The repository URL: the one value in _config.yml that launch buttons and install cells share."""
    import yaml

    with open(config) as f:
        url = (yaml.safe_load(f).get("repository") or {}).get("url")
    if not url:
        raise ValueError(f"{config} has no repository.url; set it to the project's public git URL")
    return url


def sync_install_cells(url: str | None = None) -> list[str]:
    """Rewrite every source notebook's Colab install cell (cell 2) from the template and _config.yml's URL."""
    url, changed = url or repo_url(), []
    for path in sorted(glob.glob(os.path.join(NOTEBOOKS, "*.ipynb"))):
        nb = nbformat.read(path, as_version=4)
        cell = nb.cells[1]
        if INSTALL_MARK not in cell.source:
            raise ValueError(f"{path}: cell 2 must be the Colab install cell (it contains {INSTALL_MARK})")
        new = INSTALL_CELL.format(url=url)
        tags = ["remove-input", "hide-output"]
        if cell.source != new or cell.metadata.get("tags") != tags:
            cell.source, cell.metadata["tags"] = new, tags
            atomic_write_text(path, nbformat.writes(nb) + "\n")
            changed.append(os.path.basename(path))
    return changed


def declared_parameters(nb) -> set[str]:
    """Names assigned in a notebook's `parameters` cell."""
    cell = next((c for c in nb.cells if "parameters" in c.metadata.get("tags", [])), None)
    if cell is None:
        return set()
    return {t.id for node in ast.parse(cell.source).body if isinstance(node, ast.Assign) for t in node.targets
            if isinstance(t, ast.Name)}


def _hash_tree(h, top: str) -> None:
    for d, dirs, files in sorted(os.walk(top)):
        dirs[:] = sorted(x for x in dirs if x not in ("__pycache__", ".ipynb_checkpoints"))
        for f in sorted(files):
            if f.endswith((".pyc", ".tmp")) or f == "train_state.pt":
                continue
            p = os.path.join(d, f)
            h.update(os.path.relpath(p, ROOT).encode())
            with open(p, "rb") as fh:
                h.update(hashlib.sha1(fh.read()).digest())


def input_hash(path: str, parameters: dict) -> str:
    """Content hash of what a notebook's output depends on: its source, src/, data/ and its parameters."""
    h = hashlib.sha1()
    with open(path, "rb") as f:
        h.update(f.read())
    for top in HASHED:
        _hash_tree(h, os.path.join(ROOT, top))
    h.update(json.dumps(parameters, sort_keys=True, default=str).encode())
    return h.hexdigest()


def arrange_for_reading(nb) -> None:
    """Rendered page order: the title and summary first, then the run's parameters (collapsed); the Colab install
    cell is removed (the source notebooks keep their Colab-first order)."""
    params = [c for c in nb.cells if {"parameters", "injected-parameters"} & set(c.metadata.get("tags", []))]
    rest = [c for c in nb.cells if c not in params]
    for c in rest:
        if c.cell_type == "code" and INSTALL_MARK in c.source:
            c.metadata["tags"] = sorted(set(c.metadata.get("tags", [])) | {"remove-cell"})
    for c in params:
        c.metadata["tags"] = sorted(set(c.metadata.get("tags", [])) | {"hide-input"})
    title = next((i for i, c in enumerate(rest) if c.cell_type == "markdown"), -1)
    nb.cells = rest[:title + 1] + params + rest[title + 1:]


def execute(names=None, parameters=None, out_dir=None, force: bool = False, kernel: str = "python3",
            src_dir: str = NOTEBOOKS, jobs: int | None = None) -> dict[str, tuple[float, str]]:
    """Execute each source notebook with papermill unless its executed copy is current (same input hash).

    Returns {notebook: (seconds, "ran" | "reused")}. A failing cell raises SystemExit naming notebook and cell.
    Only the parameters a notebook declares are passed to it. `jobs` notebooks run at once (default
    $BOOK_JOBS or 2), each kernel with one torch thread per job so the cores are not oversubscribed.
    """
    src = sorted(glob.glob(os.path.join(src_dir, "*.ipynb")))
    if names:
        unknown = set(names) - {os.path.splitext(os.path.basename(p))[0] for p in src}
        if unknown:
            raise SystemExit(f"unknown notebook(s) {sorted(unknown)}; notebooks: "
                             f"{[os.path.basename(p) for p in src]}")
        src = [p for p in src if os.path.splitext(os.path.basename(p))[0] in names]
    out_dir = out_dir or BOOK
    report, todo = {}, []
    for path in src:
        name = os.path.basename(path)
        params = {k: v for k, v in (parameters or {}).items() if k in declared_parameters(nbformat.read(path, 4))}
        key, out = input_hash(path, params), os.path.join(out_dir, name)
        if not force and os.path.exists(out) and _stored_hash(out) == key:
            report[name] = (0.0, "reused")
            print(f"reused   {name} (unchanged inputs)", flush=True)
        else:
            todo.append((path, params, out, key, src_dir, kernel))
    jobs = max(1, min(int(jobs or os.environ.get("BOOK_JOBS", 2)), len(todo) or 1))
    threads = str(max(1, (os.cpu_count() or 1) // jobs))
    todo = [(*t, threads) for t in todo]
    if jobs == 1:
        results = list(map(_run_one, todo))
    else:
        import concurrent.futures as cf
        import multiprocessing as mp

        with cf.ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) as pool:
            results = []
            for r in pool.map(_run_one, todo):  # in order; a failure stops the book after the running ones
                print(f"executed {r[0]} in {r[1]:.1f} s" if not r[2] else r[2], flush=True)
                results.append(r)
                if r[2]:
                    pool.shutdown(cancel_futures=True)
                    break
    for name, seconds, error in results:
        if error:
            raise SystemExit(error)
        report[name] = (seconds, "ran")
        if jobs == 1:
            print(f"executed {name} in {seconds:.1f} s", flush=True)
    return report


def _run_one(task) -> tuple[str, float, str | None]:
    """Execute one notebook (in a worker process) and write its reader-ordered copy with its input hash."""
    import papermill as pm

    path, params, out, key, src_dir, kernel, threads = task
    os.environ["OMP_NUM_THREADS"] = threads  # inherited by the kernel: torch's intra-op threads
    name, t0 = os.path.basename(path), time.time()
    try:
        nb = pm.execute_notebook(path, None, parameters=params, kernel_name=kernel, cwd=src_dir, progress_bar=False)
    except pm.PapermillExecutionError as e:
        return name, 0.0, f"notebook {name} failed in cell {e.exec_count} ({e.ename}: {e.evalue})"
    arrange_for_reading(nb)
    nb.metadata.setdefault("divdistill", {})["input_hash"] = key
    atomic_write_text(out, nbformat.writes(nb))
    return name, time.time() - t0, None


def _stored_hash(path: str) -> str | None:
    try:
        return nbformat.read(path, as_version=4).metadata.get("divdistill", {}).get("input_hash")
    except Exception:  # a half-written or foreign file is simply re-executed
        return None


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _caveat(e: dict) -> tuple[str, str] | None:
    """(provisional caveat, the rest of the note) of a tiny summary entry whose note opens with one; else None."""
    note = e.get("note") or ""
    if e["scale"] != "tiny" or not note.startswith(claims.PROVISIONAL):
        return None
    caveat, _, rest = note[len(claims.PROVISIONAL):].partition("; ")
    return caveat, rest


def _note(e: dict, caveats: list[str]) -> str:
    """A summary's note for the ledger's notes list, its provisional caveat shortened when the page states it above."""
    got = _caveat(e)
    if got is None or got[0] not in caveats:
        return e["note"]
    return "provisional (the caveat above)" + (f"; {got[1]}" if got[1] else "")


def ledger_markdown(summary_dir: str, book_dir: str) -> str:
    """The claims ledger page: one row per claim id, every number read from the chapters' summary files."""
    from ..tiny.loader import DEFAULT_VARIANT

    mark = {True: "✓", False: "✗", None: "–"}
    by_id = claims.collect(summary_dir)
    sdxl = any(e["scale"] == "sdxl" for got in by_id.values() for _, e in got)  # the sdxl column once a run exists
    head = ["id (chapter)", "holds", "claim", "paper (SDXL)", "ours (tiny)"] + (["ours (sdxl)"] if sdxl else [])
    lines = ["---", "html_theme.sidebar_secondary.remove: true", "---", "", "# Claims ledger", "",
             "Every row is built by `make book` from the chapters' summary files (`book/summaries/*.json`); nothing "
             "here is typed by hand. **Holds** is computed in each chapter from the measured numbers and their 95% "
             "confidence intervals: ✓ the interval supports the claim, ✗ it contradicts it, – inconclusive or not "
             "measured. The id links to the chapter that measured it. `make book` runs every chapter on the tiny "
             f"world's default variant, `{DEFAULT_VARIANT}` (see the tiny-world chapter); the chapters show the "
             "other schedule beside it where it was measured." +
             ("" if sdxl else " No `scale=\"sdxl\"` run has been recorded yet, so only the tiny world's column "
              "is shown."), ""]
    caveats = sorted({c[0] for got in by_id.values() for _, e in got if (c := _caveat(e))})
    lines += [f"**Every tiny verdict here is provisional.** A claim is judged only on good models, and the chapters "
              f"say: {'; '.join(caveats)}. The tiny-world and students chapters show the measurements.", ""] \
        if caveats else []
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for cid, text in claims.CLAIMS.items():
        got = by_id.get(cid, [])
        if not got:
            lines.append("| " + " | ".join([cid, "–", _cell(text), "–", "not yet measured"] + (["–"] if sdxl else []))
                         + " |")
        for nb, e in got:
            link = f"[{cid}]({nb}.ipynb)" if os.path.exists(os.path.join(book_dir, f"{nb}.ipynb")) else cid
            ours = f"{e['ours']} (n={e['n']})"
            cols = [link, f"{mark[e['holds']]} ({e['scale']})", _cell(e["claim"]), _cell(e["paper"]),
                    _cell(ours) if e["scale"] == "tiny" else "–"]
            cols += [_cell(ours) if e["scale"] == "sdxl" else "–"] if sdxl else []
            lines.append("| " + " | ".join(cols) + " |")
    notes = [f"- **{cid}** ({e['scale']}, {nb}): {_note(e, caveats)}" for cid, got in by_id.items() for nb, e in got
             if e.get("note")]
    lines += ["", "## Notes from the chapters", "", *notes] if notes else []
    return "\n".join(lines) + "\n"


def write_ledger(summary_dir: str = os.path.join(BOOK, "summaries"), book_dir: str = BOOK) -> str:
    """Write book_dir/claims.md (only when its text changed, so an unchanged book re-renders nothing)."""
    path, text = os.path.join(book_dir, "claims.md"), ledger_markdown(summary_dir, book_dir)
    if not os.path.exists(path) or open(path).read() != text:
        atomic_write_text(path, text)
    return path


def html(book_dir: str = BOOK, out_root: str = ROOT, toc: str = os.path.join(ROOT, "_toc.yml"),
         config: str = os.path.join(ROOT, "_config.yml"), summary_dir: str | None = None, quiet: bool = False) -> str:
    """Write the claims ledger, then jupyter-book build with warnings as errors → out_root/_build/html."""
    write_ledger(summary_dir or os.path.join(book_dir, "summaries"), book_dir)
    cmd = [os.path.join(os.path.dirname(sys.executable), "jupyter-book"), "build", book_dir, "--config", config,
           "--toc", toc, "--path-output", out_root, "-n", "-W", "--keep-going"]
    t0 = time.time()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL if quiet else None)
    # Sphinx copies static files only when some page is rebuilt: keep the stylesheet current regardless.
    shutil.copytree(os.path.join(book_dir, "_static"), os.path.join(out_root, "_build", "html", "_static"),
                    dirs_exist_ok=True)
    index = os.path.join(out_root, "_build", "html", "index.html")
    print(f"rendered the book in {time.time() - t0:.1f} s → {index}")
    return index


def build_copy(dest: str, parameters: dict, force: bool = True) -> str:
    """A complete book in `dest` (the markdown pages, notebooks executed with `parameters`, summaries in
    dest/book/summaries): what the tests render at smoke size. Returns the index.html path."""
    book = os.path.join(dest, "book")
    os.makedirs(os.path.join(book, "summaries"), exist_ok=True)
    for md in glob.glob(os.path.join(BOOK, "*.md")):
        if os.path.basename(md) != "claims.md":
            shutil.copy(md, book)
    shutil.copytree(os.path.join(BOOK, "_static"), os.path.join(book, "_static"), dirs_exist_ok=True)
    summaries = os.path.join(book, "summaries")
    execute(parameters={**parameters, "summary_dir": summaries}, out_dir=book, force=force)
    return html(book, dest, summary_dir=summaries, quiet=True)


def main(argv=None) -> int:
    """`python -m divdistill.book execute | html | ledger | sync-url`; bad input: one line, exit 2."""
    return C.main_guard("python -m divdistill.book", _main, argv)


def _main(argv) -> int:
    p = C.parser("python -m divdistill.book")
    p.add_argument("what", choices=["execute", "html", "ledger", "sync-url"])
    p.add_argument("--force", action="store_true", help="re-execute every notebook even if its inputs are unchanged")
    p.add_argument("--only", nargs="*", help="execute only these notebooks (names without .ipynb)")
    a = p.parse_args(argv)
    if a.what == "execute":
        t = execute(a.only, force=a.force)
        ran = [n for n, (_, how) in t.items() if how == "ran"]
        print(f"executed {len(ran)} notebook(s) in {sum(s for s, _ in t.values()):.1f} s; reused {len(t) - len(ran)}")
    elif a.what == "html":
        html()
    elif a.what == "ledger":
        print(write_ledger())
    else:
        print("updated:", sync_install_cells() or "nothing")
    return 0


if __name__ == "__main__":
    sys.exit(main())
