"""Imagination throughput of every model family and variant, against the real pixel task.

Issue 9 target: the diffusion family at its fastest setting imagines at least 300 frames/s
with 64 envs on 2 CPU cores; issue 10 adds genie. Every variant (the RSSM, the diffusion
model in pixel and latent space with 1, 2 and 3 sampler steps, genie with 1, 2, 4 and 8
MaskGIT steps, and whatever ``--variant`` adds) is built as an untrained checkpoint at the
chosen preset (speed does not depend on the weights) and stepped through
``gym.make_vec("vwm/Imagined-v0", obs_mode="latent")`` with 1, 16 and 64 envs and random
actions; the real baseline is one ``vwm/CartPolePixels-v0`` env. The configurations run in
interleaved rounds and the median over rounds is reported, as steps/s, as a ratio to the
real task, and as a ratio to the RSSM at the same env count (all measured in the same run).

Run: ``python -m benchmarks.bench_family_speed [--preset small] [--envs 1,16,64]
[--seconds S] [--rounds R] [--threads T] [--variant NAME=FAMILY:JSON ...] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import torch

from benchmarks.bench_imagination import TASK, build_untrained_checkpoint
from benchmarks.benchio import parse_shape, report
from benchmarks.imagination_timing import Measure, make_imagined, single_env, vector_env
from world_models.atomic import write_json_atomic
from world_models.threads import torch_threads

VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "rssm": ("rssm", {}),
    **{f"diffusion-pixel-{n}": ("diffusion", {"variant": "pixel", "sampling_steps": n})
       for n in (1, 2, 3)},
    **{f"diffusion-latent-{n}": ("diffusion", {"variant": "latent", "fold": 1, "sampling_steps": n})
       for n in (1, 2, 3)},
    **{f"genie-maskgit-{n}": ("genie", {"maskgit_steps": n}) for n in (1, 2, 4, 8)},
}
"""Name -> (family, hyper-parameter overrides) of the variants measured by default."""
TARGET_FPS = 300.0
"""Issue target: imagined frames/s of the fastest diffusion setting at 64 envs."""


def parse_variant(text: str) -> tuple[str, tuple[str, dict[str, Any]]]:
    """``NAME=FAMILY`` or ``NAME=FAMILY:{json overrides}`` -> (name, (family, overrides))."""
    name, sep, rest = text.partition("=")
    family, _, overrides = rest.partition(":")
    if not sep or not name or not family:
        raise argparse.ArgumentTypeError(f"--variant needs NAME=FAMILY[:JSON], got {text!r}")
    try:
        values = json.loads(overrides) if overrides else {}
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"--variant {text!r}: bad JSON overrides: {error}") from None
    return name, (family, values)


def run(preset: str, envs: tuple[int, ...], seconds: float, rounds: int,
        variants: dict[str, tuple[str, dict[str, Any]]], seed: int = 0) -> list[dict[str, Any]]:
    """Median steps/s of every (variant, env count) and of the real task, with ratios."""
    with tempfile.TemporaryDirectory() as tmp:
        checkpoints = {
            name: build_untrained_checkpoint(Path(tmp) / name, preset, seed, family, overrides)
            for name, (family, overrides) in variants.items()
        }
        real = Measure("real", 1, single_env(TASK, lambda env, obs: obs, seed))
        measures = {(name, n): Measure(f"{name}@{n}", n, vector_env(
            make_imagined(ckpt, n, "latent", False), n, seed))
            for name, ckpt in checkpoints.items() for n in envs}
        for _ in range(rounds):
            real.run(seconds)
            for measure in measures.values():
                measure.run(seconds)
    rows = [{"variant": "real " + TASK, "num_envs": 1, "steps_per_s": real.median,
             "vs_real": 1.0, "vs_rssm": None}]
    for (name, n), measure in measures.items():
        rssm = measures.get(("rssm", n))
        rows.append({"variant": name, "family": variants[name][0], "overrides": variants[name][1],
                     "num_envs": n, "steps_per_s": measure.median,
                     "vs_real": measure.median / real.median,
                     "vs_rssm": None if rssm is None else measure.median / rssm.median})
    return rows


def print_rows(rows: list[dict[str, Any]]) -> None:
    """A plain table of the rows."""
    print(f"{'variant':<28} {'envs':>5} {'steps/s':>10} {'x real':>8} {'x rssm':>8}")
    for row in rows:
        vs_rssm = "" if row["vs_rssm"] is None else f"{row['vs_rssm']:.2f}"
        print(f"{row['variant']:<28} {row['num_envs']:>5} {row['steps_per_s']:>10.1f} "
              f"{row['vs_real']:>8.2f} {vs_rssm:>8}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """CLI entry point: measure, print, optionally write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--envs", type=parse_shape, default=(1, 16, 64),
                        help="env counts, comma separated (default 1,16,64)")
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median reported)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--variant", type=parse_variant, action="append", default=None,
                        help="NAME=FAMILY[:JSON overrides]; replaces the default variants (repeatable)")
    parser.add_argument("--json", default=None, help="write the report here")
    args = parser.parse_args(argv)
    variants = dict(args.variant) if args.variant else VARIANTS
    with torch_threads(args.threads):
        threads = torch.get_num_threads()
        rows = run(args.preset, args.envs, args.seconds, args.rounds, variants)
    print_rows(rows)
    fastest = max((r["steps_per_s"] for r in rows
                   if r.get("family") == "diffusion" and r["num_envs"] == 64), default=None)
    targets = {"diffusion_fps_64_envs": {"value": fastest, "goal": TARGET_FPS,
                                         "met": fastest is not None and fastest >= TARGET_FPS}}
    if fastest is not None:
        print(f"fastest diffusion setting at 64 envs: {fastest:.0f} frames/s (goal >= {TARGET_FPS:.0f})")
    out = report("family_speed", {"preset": args.preset, "envs": list(args.envs), "seconds": args.seconds,
                                  "rounds": args.rounds, "threads": threads,
                                  "variants": {k: list(v) for k, v in variants.items()}},
                 rows, targets=targets)
    if args.json:
        write_json_atomic(Path(args.json), out)
    return out


if __name__ == "__main__":
    main()
