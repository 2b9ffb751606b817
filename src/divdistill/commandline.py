"""The CLIs' one convention: --variant, --device (auto: CUDA when present), --threads, --out, provenance of the run,
resumable results (load_partial/save_partial, per key: Partial), and bad input answered by one line `PROG: error: …`
with exit status 2 (--debug: traceback)."""
from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
import warnings

import torch

from .io import atomic_torch_save, atomic_write_json, provenance
from .registry import ModelUnavailableError

# bad input (and a model that cannot be loaded): a clear message, not a traceback
UserError = (ValueError, KeyError, FileNotFoundError, TypeError, ModelUnavailableError)


def parser(prog: str, description: str | None = None, **kw) -> argparse.ArgumentParser:
    """An ArgumentParser named `python -m divdistill.<prog>`, with --debug."""
    p = argparse.ArgumentParser(prog=prog, description=description, **kw)
    p.add_argument("--debug", action="store_true", help="on an error, show the traceback")
    return p


def add_common(p: argparse.ArgumentParser, variant: bool = True, device: bool = True, threads: int | None = 0,
               out: str | None = None) -> argparse.ArgumentParser:
    """The shared options; `out` is the --out help (None: no --out); threads is the default (None: no --threads)."""
    if variant:
        p.add_argument("--variant", default=None, help="tiny-world variant under data/tiny (default: the default one)")
    if device:
        p.add_argument("--device", default="auto", help="torch device; auto = cuda when present, else cpu")
    if threads is not None:
        p.add_argument("--threads", type=int, default=threads, help="torch CPU threads (0: torch's default)")
    if out is not None:
        p.add_argument("--out", default=None, help=out)
    return p


def resolve_device(name: str | None) -> str:
    """'auto'/None → cuda when present, else cpu; 'cuda' on a machine without CUDA is a clear error."""
    if name in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if str(name).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but this machine has no CUDA; valid here: auto, cpu")
    return name


def setup(args: argparse.Namespace) -> argparse.Namespace:
    """Apply the shared options: resolve --device, set --threads (when > 0)."""
    if hasattr(args, "device"):
        args.device = resolve_device(args.device)
    if getattr(args, "threads", 0):
        torch.set_num_threads(args.threads)
    return args


def world_kwargs(args: argparse.Namespace) -> dict:
    """load_world("tiny", ...) keywords from --variant (absent: the loader's default)."""
    return {"variant": args.variant} if getattr(args, "variant", None) else {}


def run_provenance(kind: str, args: argparse.Namespace, wall_time_s: float, **config) -> dict:
    """What every CLI's JSON records about its run: the command line's options, git commit, wall time."""
    opts = {k: v for k, v in vars(args).items() if k != "debug" and not callable(v)}
    return provenance({"kind": kind, **opts, **config}, int(config.get("seed", 0)), 0, wall_time_s)


def _as_json(settings: dict):
    """Settings as they read back from JSON (tuples → lists), so a saved and a live record compare equal."""
    return json.loads(json.dumps(settings, sort_keys=True, default=float))


def load_partial(path: str | None, settings: dict, field: str = "results"):
    """Resumable output: what was saved at `path` (its `field`) when it was made with the same settings, else {}.

    A `.pt` path is a torch file (tensors allowed, loaded weights_only), any other JSON; settings must be JSON-able.
    A file that cannot be read, or holds no settings and `field`, is ignored with a warning and overwritten by the
    next save: saves are atomic, so such a file is damaged or foreign, and computing afresh is always correct.
    """
    if not path or not os.path.exists(path):
        return {}
    try:
        if path.endswith(".pt"):
            rec = torch.load(path, map_location="cpu", weights_only=True)
        else:
            with open(path) as f:
                rec = json.load(f)
    except (ValueError, RuntimeError, EOFError, pickle.UnpicklingError) as e:
        warnings.warn(f"{path}: unreadable partial results ({type(e).__name__}: {str(e)[:80]}); ignored, starting "
                      "afresh", stacklevel=2)
        return {}
    if not isinstance(rec, dict) or "settings" not in rec or field not in rec:
        warnings.warn(f"{path}: not a partial-results file (no 'settings' and {field!r}); ignored, starting afresh",
                      stacklevel=2)
        return {}
    return rec[field] if rec["settings"] == _as_json(settings) else {}


def save_partial(path: str | None, settings: dict, results, field: str = "results") -> None:
    """Write {"settings", field: results} atomically (torch for `.pt`, else JSON), so a killed run resumes from it."""
    if path:
        rec = {"settings": _as_json(settings), field: results}
        atomic_torch_save(rec, path) if path.endswith(".pt") else atomic_write_json(path, rec)


class Partial:
    """Per-key resumable results (load_partial/save_partial): `get(key, compute)` returns the saved value, or runs
    compute() and saves the file at once, so a killed run loses at most the key in progress. Keys are strings; path
    None keeps the results in memory only."""

    def __init__(self, path: str | None, settings: dict):
        self.path, self.settings = path, settings
        self.results = load_partial(path, settings)

    def __contains__(self, key: str) -> bool:
        return key in self.results

    def get(self, key: str, compute):
        """The result under `key`: the saved one, else compute() (then saved)."""
        if key not in self.results:
            self.results[key] = compute()
            save_partial(self.path, self.settings, self.results)
        return self.results[key]

    def discard(self) -> None:
        """Remove the file once the run's final output is written."""
        if self.path and os.path.exists(self.path):
            os.remove(self.path)


def fail(prog: str, err: BaseException, debug: bool = False) -> int:
    """Print `PROG: error: …` (one line, like argparse) and return 2; with debug re-raise for the traceback."""
    if debug:
        raise err
    msg = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
    print(f"{prog}: error: {' '.join(str(msg).split())}", file=sys.stderr)
    return 2


def main_guard(prog: str, main, argv=None) -> int:
    """Run main(argv); bad input (ValueError, KeyError, FileNotFoundError, TypeError) → one line and exit 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return main(argv) or 0
    except UserError as e:
        return fail(prog, e, "--debug" in argv)
