"""Categorical sampling: the inverse-CDF sampler of the RSSM against ``torch.multinomial``.

The RSSM draws one class per categorical latent variable every imagined step: at 1024 envs
with 32 variables of 16 classes that is (1024 * 32, 16) probabilities. Both samplers get
the same probabilities (softmax of Gaussian logits with 1% uniform mix, as the model's
``unimix``) and the same seeded generator; ``torch.multinomial`` needs 2-D input, so a
(B, G, K) batch is flattened to (B * G, K) and its result reshaped back (included in its
time). The two are timed alternately in interleaved rounds (median per call reported), and
a sanity check compares the empirical class frequencies of both with the probabilities.

DESIGN section 9 says inverse CDF was about 2x faster in the imagination step.

Run: ``python -m benchmarks.bench_sampler [--seconds S] [--rounds R] [--threads T] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from torch import Tensor

from benchmarks.benchio import parse_shape, report
from world_models.atomic import write_json_atomic
from world_models.rssm.distributions import sample_index, sample_onehot, unimix_probs

SHAPES: tuple[tuple[int, ...], ...] = ((1024 * 32, 16), (1024, 32, 16))
"""Probability shapes (..., K) benchmarked by default."""


def inverse_cdf(probs: Tensor, generator: torch.Generator) -> Tensor:
    """(..., K) -> (...) indices with the RSSM's sampler."""
    return sample_index(probs, generator)


def multinomial(probs: Tensor, generator: torch.Generator) -> Tensor:
    """(..., K) -> (...) indices with `torch.multinomial` (flattened to 2-D and back)."""
    flat = probs.reshape(-1, probs.shape[-1])
    return torch.multinomial(flat, 1, generator=generator).reshape(probs.shape[:-1])


def inverse_cdf_onehot(probs: Tensor, generator: torch.Generator) -> Tensor:
    """(..., K) one-hot samples as the RSSM step draws them (index + one_hot)."""
    return sample_onehot(probs, generator)


def multinomial_onehot(probs: Tensor, generator: torch.Generator) -> Tensor:
    """(..., K) one-hot samples through `torch.multinomial`."""
    index = multinomial(probs, generator)
    return torch.nn.functional.one_hot(index, probs.shape[-1]).to(probs.dtype)


SAMPLERS: dict[str, tuple[Callable[[Tensor, torch.Generator], Tensor], Callable[..., Tensor]]] = {
    "index": (inverse_cdf, multinomial),
    "onehot": (inverse_cdf_onehot, multinomial_onehot),
}
"""Output kind -> (inverse-CDF sampler, multinomial sampler)."""


def make_probs(shape: tuple[int, ...], seed: int, unimix: float = 0.01) -> Tensor:
    """Random probabilities of `shape` (..., K), mixed with `unimix` uniform as in the RSSM."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(shape, generator=generator) * 2.0
    return unimix_probs(logits, unimix)


def seconds_per_call(fn: Callable[[], Any], seconds: float, warmup: int = 3) -> float:
    """Mean wall time of ``fn()`` over about `seconds` (after `warmup` calls)."""
    for _ in range(warmup):
        fn()
    calls = 0
    start = time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return elapsed / calls


def frequency_error(
    sampler: Callable[[Tensor, torch.Generator], Tensor], probs: Tensor, draws: int, seed: int
) -> float:
    """Largest |empirical frequency - probability| of the first row over `draws` samples."""
    row = probs.reshape(-1, probs.shape[-1])[:1].expand(draws, -1).contiguous()  # (draws, K)
    index = sampler(row, torch.Generator().manual_seed(seed))  # (draws,)
    counts = torch.bincount(index, minlength=probs.shape[-1]).to(probs.dtype) / draws
    return float((counts - row[0]).abs().max())


def run(
    shapes: tuple[tuple[int, ...], ...], seconds: float, rounds: int, seed: int, kinds: list[str]
) -> list[dict[str, Any]]:
    """Time both samplers on every shape and output kind; returns one row per (shape, kind)."""
    rows = []
    for shape in shapes:
        probs = make_probs(shape, seed)
        for kind in kinds:
            fast, slow = SAMPLERS[kind]
            gen_fast = torch.Generator().manual_seed(seed)
            gen_slow = torch.Generator().manual_seed(seed)
            times: dict[str, list[float]] = {"inverse_cdf": [], "multinomial": []}
            with torch.inference_mode():
                for _ in range(rounds):  # alternate so load on the machine hits both alike
                    times["inverse_cdf"].append(seconds_per_call(partial(fast, probs, gen_fast), seconds))
                    times["multinomial"].append(seconds_per_call(partial(slow, probs, gen_slow), seconds))
                err_fast = frequency_error(inverse_cdf, probs, 200_000, seed)
                err_slow = frequency_error(multinomial, probs, 200_000, seed)
            t_fast = statistics.median(times["inverse_cdf"])
            t_slow = statistics.median(times["multinomial"])
            rows.append(
                {
                    "shape": list(shape),
                    "output": kind,
                    "inverse_cdf_ms": t_fast * 1e3,
                    "multinomial_ms": t_slow * 1e3,
                    "speedup": t_slow / t_fast,
                    "inverse_cdf_samples_ms": [t * 1e3 for t in times["inverse_cdf"]],
                    "multinomial_samples_ms": [t * 1e3 for t in times["multinomial"]],
                    "freq_error_inverse_cdf": err_fast,
                    "freq_error_multinomial": err_slow,
                }
            )
            print(
                f"{str(tuple(shape)):>14} {kind:>7} {t_fast * 1e3:12.3f} {t_slow * 1e3:13.3f} "
                f"{t_slow / t_fast:8.2f}x {err_fast:9.4f} {err_slow:9.4f}",
                flush=True,
            )
    return rows


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seconds", type=float, default=1.0, help="seconds timed per sampler, shape and round"
    )
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; the median is reported")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument(
        "--shape", type=parse_shape, action="append", default=None,
        help="probability shape (..., K), e.g. 1024,32,16; repeatable (default: 32768,16 and 1024,32,16)",
    )  # fmt: skip
    parser.add_argument(
        "--output", choices=["index", "onehot", "both"], default="both",
        help="time the class indices, the one-hot samples the RSSM uses, or both",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="seed of the probabilities and generators")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.rounds < 1:
        parser.error("--seconds must be positive and --rounds >= 1")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    shapes = tuple(args.shape) if args.shape else SHAPES
    kinds = ["index", "onehot"] if args.output == "both" else [args.output]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} intra-op threads")
    print(
        f"{'shape':>14} {'output':>7} {'inv-CDF ms':>12} {'multinom. ms':>13} {'speedup':>9} "
        f"{'err invCDF':>9} {'err mult.':>9}"
    )
    rows = run(shapes, args.seconds, args.rounds, args.seed, kinds)
    print("speedup = multinomial time / inverse-CDF time (DESIGN: ~2x); err = max |freq - p| of one row")
    if args.json:
        config = {k: v for k, v in vars(args).items() if k != "shape"} | {"shapes": [list(s) for s in shapes]}
        print(f"wrote {write_json_atomic(args.json, report('bench_sampler', config, rows))}")
    return rows


if __name__ == "__main__":
    main()
