"""Put the live page's files into the built book: the ONNX export (cached), onnxruntime-web's wasm runtime
(installed from web/package-lock.json by `npm ci`) and the page's own JavaScript (web/src)."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
WEB = os.path.join(ROOT, "web")
CACHE = os.path.join(ROOT, "_build", "live")  # ONNX files: build outputs, never committed
SITE_DIR = os.path.join("_static", "live")  # inside the built site
ORT_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")  # wasm backend only
STAMP = ".divdistill-lock-sha"


def npm_ci(web: str = WEB) -> bool:
    """`npm ci` in web/ when node_modules is absent or older than package-lock.json; returns whether it ran."""
    with open(os.path.join(web, "package-lock.json"), "rb") as f:
        want = hashlib.sha256(f.read()).hexdigest()
    stamp = os.path.join(web, "node_modules", STAMP)
    if os.path.exists(stamp) and open(stamp).read() == want:
        return False
    if shutil.which("npm") is None:
        raise RuntimeError("the live page needs npm (Node.js) to install onnxruntime-web from web/package-lock.json; "
                           "install it (Debian: apt-get install -y nodejs npm)")
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts"], cwd=web, check=True)
    with open(stamp, "w") as f:
        f.write(want)
    return True


def _copy(src: str, dst: str) -> None:
    """Copy atomically, keeping the time stamp; skipped when dst already has src's size and time (a warm build)."""
    a = os.stat(src)
    if os.path.exists(dst):
        b = os.stat(dst)
        if (a.st_size, int(a.st_mtime)) == (b.st_size, int(b.st_mtime)):
            return
    tmp = f"{dst}.tmp{os.getpid()}"
    shutil.copy2(src, tmp)
    os.replace(tmp, dst)


def build_site(html_dir: str = os.path.join(ROOT, "_build", "html"), cache: str = CACHE, force: bool = False,
               world=None) -> dict:
    """Export (when the world changed), install onnxruntime-web (when the lock changed), copy all into the site.

    Returns a report: the world's hash, whether it was exported, whether npm ran, the bytes copied."""
    from .export import EVALUATOR, MODELS, build_cache

    if not os.path.isdir(html_dir):
        raise FileNotFoundError(f"no built book at {html_dir}; run `make book` (the live page is copied into it)")
    info, exported = build_cache(cache, world=world, force=force)
    ran_npm = npm_ci()
    out = os.path.join(html_dir, SITE_DIR)
    os.makedirs(out, exist_ok=True)
    dist = os.path.join(WEB, "node_modules", "onnxruntime-web", "dist")
    files = [(os.path.join(dist, f), f) for f in ORT_FILES]
    files += [(os.path.join(WEB, "src", f), f) for f in sorted(os.listdir(os.path.join(WEB, "src")))]
    files += [(os.path.join(cache, f), f) for f in ["world.json", "noise.bin", "text_encoder.onnx"]
              + [f"{m}.onnx" for m in (*MODELS, EVALUATOR)]]
    size = 0
    for src, name in files:
        _copy(src, os.path.join(out, name))
        size += os.path.getsize(src)
    return {"hash": info["hash"], "exported": exported, "npm_ci": ran_npm, "bytes": size, "dir": out}
