"""Book pipeline: papermill executes notebooks/ into book/, then Jupyter Book 1.x renders _build/html."""
from __future__ import annotations

import argparse
import glob
import os
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def execute(names=None, parameters=None, out_dir=None, kernel: str = "python3") -> dict[str, float]:
    """Execute each source notebook with papermill (default parameters: scale=tiny); returns seconds per notebook.

    A failing cell raises SystemExit naming the notebook and the cell.
    """
    import papermill as pm

    src = sorted(glob.glob(os.path.join(ROOT, "notebooks", "*.ipynb")))
    if names:
        src = [p for p in src if os.path.splitext(os.path.basename(p))[0] in names]
    out_dir = out_dir or os.path.join(ROOT, "book")
    times = {}
    for path in src:
        name = os.path.basename(path)
        t0 = time.time()
        try:
            pm.execute_notebook(path, os.path.join(out_dir, name), parameters=parameters or {}, kernel_name=kernel,
                                cwd=os.path.join(ROOT, "notebooks"), progress_bar=False)
        except pm.PapermillExecutionError as e:
            raise SystemExit(f"notebook {name} failed in cell {e.exec_count} ({e.ename}: {e.evalue})") from e
        times[name] = time.time() - t0
        print(f"executed {name} in {times[name]:.1f} s", flush=True)
    return times


def html() -> None:
    """jupyter-book build with warnings as errors (-n -W --keep-going) → _build/html/index.html."""
    cmd = [os.path.join(os.path.dirname(sys.executable), "jupyter-book"), "build", os.path.join(ROOT, "book"),
           "--config", os.path.join(ROOT, "_config.yml"), "--toc", os.path.join(ROOT, "_toc.yml"),
           "--path-output", ROOT, "-n", "-W", "--keep-going"]
    t0 = time.time()
    subprocess.run(cmd, check=True)
    print(f"rendered the book in {time.time() - t0:.1f} s → {os.path.join(ROOT, '_build', 'html', 'index.html')}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m divdistill.book")
    p.add_argument("what", choices=["execute", "html"])
    a = p.parse_args(argv)
    if a.what == "execute":
        t = execute()
        print(f"executed {len(t)} notebooks in {sum(t.values()):.1f} s")
    else:
        html()
    return 0


if __name__ == "__main__":
    sys.exit(main())
