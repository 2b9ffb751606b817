"""Benchmark: torch's OpenMP wait policy (spin vs sleep at barriers) on idle cores and beside a busy one.

Why it matters here: the project's long runs (a teacher training on one core) share a 2-core machine with tests and
book builds. torch's OpenMP threads spin at every barrier by default, so a 2-thread job beside a busy core waits
for a thread that has no core. Each configuration runs in its own process (the policy is read when torch loads
OpenMP); the busy core is a pure Python loop at the same priority. Prints the median seconds per step (the tiny
teacher UNet, forward + backward, batch 32) over the repeats and the ratios. One thread per job
(`OMP_NUM_THREADS=1`, what `--threads 1` and the book's parallel kernels use) avoids the question.

    python benchmarks/omp_wait_policy.py [--iters 8] [--repeats 3] [--threads 2]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time


def _child(iters: int) -> None:
    """Median seconds of one forward+backward of the tiny teacher UNet (width 16, batch 32)."""
    import torch

    from divdistill.tiny.teacher import unet_config
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(**unet_config(16, 64))
    x, t, emb = torch.randn(32, 3, 32, 32), torch.randint(0, 1000, (32,)), torch.randn(32, 8, 64)  # (B, C, H, W)
    times = []
    for _ in range(iters + 1):  # the first step warms up
        t0 = time.perf_counter()
        unet(x, t, encoder_hidden_states=emb).sample.square().mean().backward()
        times.append(time.perf_counter() - t0)
    print(statistics.median(times[1:]))


def _run(policy: str | None, threads: int, iters: int) -> float:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env["OMP_NUM_THREADS"] = str(threads)
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    out = subprocess.run([sys.executable, __file__, "--child", "--iters", str(iters)], env=env, check=True,
                         capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iters", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        return _child(a.iters)
    res = {}
    for load in ("idle", "one core busy"):
        busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if load != "idle" else None
        try:
            for policy in (None, "PASSIVE"):
                runs = [_run(policy, a.threads, a.iters) for _ in range(a.repeats)]
                res[load, policy or "default"] = statistics.median(runs)
        finally:
            if busy:
                busy.kill()
                busy.wait()
    for (load, policy), s in res.items():
        print(f"{load:>14} | OMP_WAIT_POLICY={policy:<8} | {s * 1000:8.1f} ms/step (median of {a.repeats})")
    for load in ("idle", "one core busy"):
        print(f"{load}: default / PASSIVE = {res[load, 'default'] / res[load, 'PASSIVE']:.2f}x")


if __name__ == "__main__":
    main()
