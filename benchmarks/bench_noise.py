"""Per-row noise: `RowGenerator` normals and uniforms against ``torch.randn`` / ``torch.rand``.

The imagined vector envs draw all model noise from a counter-based `RowGenerator` so that
row i reproduces a single env seeded s + i. A diffusion-style family draws a Gaussian
frame per row and step, (1024, 3, 64, 64) at 1024 envs; the target is within 3x of
``torch.randn`` in time and in peak memory.

Each method runs in a fresh Python process (so peak memory is its own): after a small
warm-up draw, the growth of the process's peak resident set (``resource.getrusage``
``ru_maxrss``) over one full draw is its peak memory, output included; then the median
wall time of `--repeats` draws is its time.

Run: ``python -m benchmarks.bench_noise [--shape 1024,3,64,64] [--repeats R] [--threads T]
[--json PATH]``.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from benchmarks.benchio import parse_shape, report
from world_models.atomic import write_json_atomic

METHODS: tuple[str, ...] = ("torch.randn", "row.normal", "torch.rand", "row.uniform")
"""Methods timed, in order; each RowGenerator method is compared with the torch one before it."""
BASELINE = {"row.normal": "torch.randn", "row.uniform": "torch.rand"}
"""RowGenerator method -> the torch draw it is compared with."""


def draw_fn(method: str, shape: tuple[int, ...]) -> Callable[[], Tensor]:
    """A zero-argument function drawing `shape` with `method`."""
    if method == "torch.randn":
        gen = torch.Generator().manual_seed(0)
        return lambda: torch.randn(shape, generator=gen)
    if method == "torch.rand":
        gen = torch.Generator().manual_seed(0)
        return lambda: torch.rand(shape, generator=gen)
    from world_models.sampling import RowGenerator

    rows = RowGenerator(shape[0])
    rows.seed_rows(torch.ones(shape[0], dtype=torch.bool), torch.arange(shape[0]))
    if method == "row.normal":
        return lambda: rows.normal(shape, "cpu")
    if method == "row.uniform":
        return lambda: rows.uniform(shape, "cpu")
    raise ValueError(f"unknown method {method!r}; known: {METHODS}")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux -> MiB


def child(method: str, shape: tuple[int, ...], repeats: int) -> dict[str, float]:
    """Measure one method in this (fresh) process: peak memory growth and median time."""
    small = draw_fn(method, (shape[0], 1))
    small()  # warm-up: lazy initialisation is not counted
    fn = draw_fn(method, shape)
    before = _peak_mb()
    out = fn()
    peak = _peak_mb() - before
    del out
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return {"time_ms": statistics.median(times) * 1e3, "peak_mb": peak,
            "output_mb": torch.Size(shape).numel() * 4 / 2**20}


def measure(method: str, shape: tuple[int, ...], repeats: int, threads: int) -> dict[str, float]:
    """Run `child` for `method` in a fresh interpreter and return its figures."""
    cmd = [sys.executable, "-m", "benchmarks.bench_noise", "--child", method,
           "--shape", ",".join(map(str, shape)), "--repeats", str(repeats), "--threads", str(threads)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=parse_shape, default=(1024, 3, 64, 64), help="draw shape (B, ...)")
    parser.add_argument("--repeats", type=int, default=7, help="timed draws per method (median reported)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch intra-op threads")
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.child:
        print(json.dumps(child(args.child, args.shape, args.repeats)))
        return []
    print(f"torch {torch.__version__}, {args.threads} intra-op threads, shape {args.shape}")
    print(f"{'method':>12} {'time ms':>9} {'peak MB':>9} {'time x':>7} {'peak x':>7}")
    rows: list[dict[str, Any]] = []
    figures: dict[str, dict[str, float]] = {}
    for method in METHODS:
        fig = measure(method, args.shape, args.repeats, args.threads)
        figures[method] = fig
        base = figures.get(BASELINE.get(method, method), fig)
        row = {"method": method, **fig, "time_ratio": fig["time_ms"] / base["time_ms"],
               "peak_ratio": fig["peak_mb"] / max(base["peak_mb"], 1e-9)}
        rows.append(row)
        print(f"{method:>12} {fig['time_ms']:9.1f} {fig['peak_mb']:9.1f} {row['time_ratio']:6.2f}x "
              f"{row['peak_ratio']:6.2f}x", flush=True)
    print("x = RowGenerator figure / the torch draw's (target: within 3x); peak includes the output")
    if args.json:
        config = {"shape": list(args.shape), "repeats": args.repeats, "threads": args.threads}
        print(f"wrote {write_json_atomic(args.json, report('bench_noise', config, rows))}")
    return rows


if __name__ == "__main__":
    main()
