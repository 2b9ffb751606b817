"""`python -m divdistill.live build [--force]`: the live page's files into _build/html (run by `make book`)."""
from __future__ import annotations

import argparse
import time

from .site import build_site


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m divdistill.live", description=__doc__)
    p.add_argument("what", choices=["build"])
    p.add_argument("--force", action="store_true", help="re-export the ONNX models even if the world is unchanged")
    a = p.parse_args(argv)
    t0 = time.time()
    r = build_site(force=a.force)
    how = "exported" if r["exported"] else "reused (world unchanged)"
    print(f"live page: ONNX {how}, world {r['hash']}; {r['bytes'] / 1e6:.1f} MB into {r['dir']} "
          f"({time.time() - t0:.1f} s{', npm ci ran' if r['npm_ci'] else ''})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
