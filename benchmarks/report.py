"""Benchmark reports built only from per-run result JSONs: markdown tables, PNG plots, videos.

`build_report(results_dir, out_dir)` reads every result file (`benchmarks.results_schema`),
aggregates seeds per (suite, task, real-step budget, model family, model preset, method), and writes
``out_dir/README.md`` with PNGs next to it. Aggregation follows Agarwal et al. 2021
(arXiv:2108.13264): IQM over all evaluation episodes of all seeds, with a percentile
bootstrap over seeds. The pure aggregation functions come first, the plumbing after; the
model-families comparison is built on them in `benchmarks.report_families`.

    python -m benchmarks.report RESULTS_DIR OUT_DIR [--baseline ppo_real]
"""

from __future__ import annotations

import argparse
import os
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agents.stats import bootstrap_ci, iqm
from benchmarks import plots
from benchmarks.report_baselines import baseline_ratios, tenx_section
from benchmarks.results_schema import RunResult, load_results
from world_models.atomic import write_text_atomic

METHOD_ORDER = ("random", "ppo_real", "ppo_real_10x", "dqn_real", "dqn_real_10x", "sac_real",
                "sac_real_10x", "dreamer", "ppo_imagined_latent", "ppo_imagined_pixels", "cem", "mppi",
                "random_shooting")
"""Row order in tables; other methods follow alphabetically."""

FIDELITY_EXTRA = {"reward_mae": "Reward MAE", "termination_accuracy": "Termination accuracy",
                  "termination_recall": "Termination recall",
                  "termination_precision": "Termination precision"}
"""Fidelity columns after the PSNRs (a run without a value shows a dash)."""

GroupKey = tuple[str, str, int]
"""(suite, task, real_step_budget): one table."""

RunKey = tuple[str, str, int, str, str, str]
"""(suite, task, real_step_budget, family, preset, method): the seeds of one row."""


# ---------------------------------------------------------------- pure aggregation


def seed_bootstrap_iqm(
    returns_per_seed: Sequence[Sequence[float]], confidence: float = 0.95, resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """IQM of the pooled episodes of all seeds and a percentile bootstrap CI over seeds.

    Each resample draws seeds with replacement and takes the IQM of their pooled episode
    returns. Returns ``(iqm, low, high)``; with one seed the interval is the point.
    """
    per_seed = [np.asarray(r, dtype=np.float64).ravel() for r in returns_per_seed]
    if not per_seed or any(r.size == 0 for r in per_seed):
        raise ValueError("seed_bootstrap_iqm needs at least one seed, each with at least one return")
    point = iqm(np.concatenate(per_seed))
    if len(per_seed) == 1:
        return point, point, point

    def pooled_iqm(indices: np.ndarray) -> float:
        return iqm(np.concatenate([per_seed[int(i)] for i in indices]))

    low, high = bootstrap_ci(np.arange(len(per_seed)), statistic=pooled_iqm, confidence=confidence,
                             resamples=resamples, seed=seed)
    return point, low, high


@dataclass(frozen=True)
class MethodSummary:
    """Seeds of one (suite, task, budget, family, preset, method) aggregated."""

    suite: str
    task: str
    budget: int
    family: str
    preset: str
    method: str
    seeds: tuple[int, ...]
    mean: float
    """Mean over seeds of each seed's mean evaluation return."""
    std: float
    """Sample standard deviation (ddof=1) over seeds of the per-seed means; nan for one seed."""
    iqm: float
    ci_low: float
    ci_high: float
    real_steps: float
    imagined_steps: float
    wall_time: float

    @property
    def group(self) -> GroupKey:
        return (self.suite, self.task, self.budget)


def method_rank(method: str) -> tuple[int, str]:
    """Sort key of a method: its place in `METHOD_ORDER`, others after it alphabetically."""
    return (METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER), method)


def group_runs(results: Sequence[RunResult]) -> dict[RunKey, list[RunResult]]:
    """Runs keyed by (suite, task, budget, family, preset, method), sorted, seeds in order;
    rejects duplicates."""
    groups: dict[RunKey, list[RunResult]] = defaultdict(list)
    for r in results:
        key = (r.suite, r.task, r.real_step_budget, r.family, r.model_preset, r.method)
        twin = next((o for o in groups[key] if o.seed == r.seed), None)
        if twin is not None:
            raise ValueError(f"duplicate result for {key} seed {r.seed}: {twin.source} and {r.source}")
        groups[key].append(r)
    order = sorted(groups, key=lambda k: (k[0], k[1], k[2], method_rank(k[5]), k[3], k[4]))
    return {k: sorted(groups[k], key=lambda r: r.seed) for k in order}


def summarize(results: Sequence[RunResult], resamples: int = 2000, seed: int = 0) -> list[MethodSummary]:
    """Aggregate runs over seeds: return mean ± std, pooled IQM with a seed-bootstrap CI, costs."""
    out = []
    for (suite, task, budget, family, preset, method), runs in group_runs(results).items():
        means = np.array([np.mean(r.final.returns) for r in runs])
        point, low, high = seed_bootstrap_iqm([r.final.returns for r in runs], resamples=resamples, seed=seed)
        out.append(MethodSummary(
            suite, task, budget, family, preset, method, tuple(r.seed for r in runs), float(means.mean()),
            float(means.std(ddof=1)) if len(runs) > 1 else float("nan"), point, low, high,
            float(np.mean([r.real_steps for r in runs])), float(np.mean([r.imagined_steps for r in runs])),
            float(np.mean([r.wall_time for r in runs])),
        ))
    return out


def aggregate_curves(curves: Sequence[Sequence[Sequence[float]]]) -> plots.Band | None:
    """Mean, min and max over seeds of ``[[real_steps, return], ...]`` curves.

    Curves are linearly interpolated onto the union of their x points inside the range
    they all cover; None when there is no curve or no common range.
    """
    arrs = [np.asarray(c, dtype=np.float64).reshape(-1, 2) for c in curves if len(c)]
    if not arrs:
        return None
    arrs = [a[np.argsort(a[:, 0], kind="stable")] for a in arrs]
    lo, hi = max(a[0, 0] for a in arrs), min(a[-1, 0] for a in arrs)
    grid = np.unique(np.concatenate([a[:, 0] for a in arrs]))
    grid = grid[(grid >= lo) & (grid <= hi)]
    if grid.size == 0:
        return None
    ys = np.stack([np.interp(grid, a[:, 0], a[:, 1]) for a in arrs])  # (S, N)
    return grid, ys.mean(0), ys.min(0), ys.max(0)


def psnr_horizons(fidelity: dict[str, float]) -> dict[int, float]:
    """``{horizon: psnr}`` from the ``psnr_h<k>`` keys of a fidelity record."""
    return {int(m.group(1)): float(v) for k, v in fidelity.items()
            if (m := re.fullmatch(r"psnr_h(\d+)", k)) and v is not None}


def aggregate_psnr(fidelities: Sequence[dict[str, float]]) -> plots.Band | None:
    """Mean, min and max over seeds of PSNR at each horizon all seeds report."""
    per_seed = [psnr_horizons(f) for f in fidelities]
    common = sorted(set.intersection(*(set(p) for p in per_seed))) if per_seed else []
    if not common:
        return None
    ys = np.array([[p[h] for h in common] for p in per_seed])  # (S, H)
    return np.array(common, dtype=np.float64), ys.mean(0), ys.min(0), ys.max(0)


# ---------------------------------------------------------------- markdown plumbing


def fmt_num(x: float | None, digits: int = 1) -> str:
    """`x` with `digits` decimals, or an em dash when it is missing or not finite."""
    return "—" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def fmt_steps(n: float) -> str:
    """Compact step count: 950, 50k, 1.23M."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{suffix}"
    return f"{n:.0f}"


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Markdown lines of a table (and a blank line after it)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows] + [""]


def _slug(*parts: object) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "_", "_".join(str(p) for p in parts)).strip("_")


def _label(method: str, model: tuple[str, str], models: set[tuple[str, str]]) -> str:
    return method if len(models) == 1 else f"{method} ({' '.join(model)})"


def mean_of(values: Sequence[float | None]) -> float | None:
    """Mean of the values that are not None (None when there are none)."""
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def _group_section(
    group: GroupKey, runs: dict[RunKey, list[RunResult]],
    rows: list[tuple[MethodSummary, float | None]], out_dir: Path, baseline: str, show_suite: bool,
) -> list[str]:
    """Markdown (and PNGs) for one (suite, task, budget): results, curves, fidelity, dream gap."""
    suite, task, budget = group
    models = {(s.family, s.preset) for s, _ in rows}
    title = f"## {task} — {fmt_steps(budget)} real steps" + (f" (suite `{suite}`)" if show_suite else "")
    lines = [title, ""]
    lines += md_table(
        ["Method", "Family", "Preset", "Seeds", "Return (mean ± std)", "IQM [95% CI]", "Real steps",
         "Imagined steps", "Wall time (s)", f"Ratio to {baseline}"],
        [[s.method, s.family, s.preset, str(len(s.seeds)), f"{fmt_num(s.mean)} ± {fmt_num(s.std)}",
          f"{fmt_num(s.iqm)} [{fmt_num(s.ci_low)}, {fmt_num(s.ci_high)}]", fmt_steps(s.real_steps),
          fmt_steps(s.imagined_steps), fmt_num(s.wall_time), fmt_num(ratio, 2)] for s, ratio in rows],
    )
    keyed = {(s.family, s.preset, s.method): runs[(suite, task, budget, s.family, s.preset, s.method)]
             for s, _ in rows}
    curves = {_label(m, (f, p), models): aggregate_curves([r.curve for r in rs])
              for (f, p, m), rs in keyed.items()}
    curves = {k: v for k, v in curves.items() if v is not None}
    if curves:
        name = f"curves_{_slug(suite, task, budget)}.png"
        plots.plot_learning_curves(curves, out_dir / name, f"{task} ({fmt_steps(budget)} real steps)",
                                    budget=budget)
        lines += [f"![learning curves for {task}]({name})", ""]

    fid = {k: [r for r in rs if r.fidelity] for k, rs in keyed.items()}
    fid = {k: rs for k, rs in fid.items() if rs}
    if fid:
        horizons = sorted({h for rs in fid.values() for r in rs for h in psnr_horizons(r.fidelity)})
        table = []
        for (f, p, m), rs in fid.items():
            psnr = [mean_of([psnr_horizons(r.fidelity).get(h) for r in rs]) for h in horizons]
            extra = [mean_of([r.fidelity.get(k) for r in rs]) for k in FIDELITY_EXTRA]
            table.append([m, f, p, str(len(rs))] + [fmt_num(v, 2) for v in psnr]
                         + [fmt_num(v, 3) for v in extra])
        lines += ["### Model fidelity (open loop)", ""]
        lines += md_table(["Method", "Family", "Preset", "Seeds"] + [f"PSNR h{h} (dB)" for h in horizons]
                        + list(FIDELITY_EXTRA.values()), table)
        bands = {_label(m, (f, p), models): aggregate_psnr([r.fidelity for r in rs])
                 for (f, p, m), rs in fid.items()}
        bands = {k: v for k, v in bands.items() if v is not None}
        if bands:
            name = f"psnr_{_slug(suite, task, budget)}.png"
            plots.plot_psnr(bands, out_dir / name, f"{task}: open-loop PSNR")
            lines += [f"![open-loop PSNR for {task}]({name})", ""]

    dream = []
    for (f, p, m), rs in keyed.items():
        with_dream = [r for r in rs if r.dream_return is not None]
        if with_dream:
            d = float(np.mean([r.dream_return for r in with_dream]))
            reals = [float(np.mean(r.final.returns)) for r in with_dream]
            real = float(np.mean(reals))
            relative = [abs(r.dream_return - x) / max(abs(x), 1e-8)
                        for r, x in zip(with_dream, reals, strict=True)]
            dream.append([m, f, p, str(len(with_dream)), fmt_num(d), fmt_num(real), fmt_num(d - real),
                          f"{100 * np.mean(relative):.0f}% (max {100 * max(relative):.0f}%)"])
    if dream:
        lines += ["### Dream vs real return", "",
                  "Return in the model: the policy plays the first context_len - 1 decisions of its "
                  "first 10 real evaluation episodes on the real task, then continues inside the model "
                  "until the model ends the episode or the time limit (`benchmarks.dream_return`). "
                  "Relative gap: |dream − real| / |real| per seed, mean and max over seeds.", ""]
        lines += md_table(["Method", "Family", "Preset", "Seeds", "Return in the model",
                         "Return on the real task", "Gap (dream − real)", "Relative gap"], dream)
    return lines


def _throughput_section(results: Sequence[RunResult], out_dir: Path) -> list[str]:
    keyed: dict[tuple[str, str, str, str], list[dict[str, float]]] = defaultdict(list)
    for r in results:
        if r.throughput and r.throughput.get("imagined_steps_per_s") and r.throughput.get("real_steps_per_s"):
            keyed[(r.task, r.method, r.family, r.model_preset)].append(r.throughput)
    if not keyed:
        return []
    rows, labels, imag, real = [], [], [], []
    for key in sorted(keyed, key=lambda k: (k[0], method_rank(k[1]), k[2], k[3])):
        task, method, family, preset = key
        i = float(np.mean([t["imagined_steps_per_s"] for t in keyed[key]]))
        e = float(np.mean([t["real_steps_per_s"] for t in keyed[key]]))
        rows.append([task, method, family, preset, fmt_num(i, 0), fmt_num(e, 0), f"{i / e:.1f}x"])
        labels.append(f"{task.split('/')[-1]}\n{method}")
        imag.append(i)
        real.append(e)
    plots.plot_throughput(labels, imag, real, out_dir / "throughput.png")
    return ["## Imagination throughput", ""] + md_table(
        ["Task", "Method", "Family", "Preset", "Imagined steps/s", "Real env steps/s", "Speed-up"], rows,
    ) + ["![imagined vs real throughput](throughput.png)", ""]


def result_link(r: RunResult, rel: str, results_dir: Path, out_dir: Path) -> str:
    """Link, relative to `out_dir`, to `rel`: a path relative to result `r`'s folder."""
    base = r.source.parent if r.source is not None else results_dir
    return Path(os.path.relpath(os.path.abspath(base / rel), os.path.abspath(out_dir))).as_posix()


def _videos_section(results: Sequence[RunResult], results_dir: Path, out_dir: Path) -> list[str]:
    rows = []
    for r in sorted(results, key=lambda r: (r.task, method_rank(r.method), r.family, r.model_preset,
                                           r.seed)):
        if not r.videos:
            continue
        gif, mp4 = r.videos.get("gif"), r.videos.get("mp4")
        rows.append([r.task, r.method, r.family, r.model_preset, str(r.seed),
                     f"![real vs imagined]({result_link(r, gif, results_dir, out_dir)})" if gif else "—",
                     f"[mp4]({result_link(r, mp4, results_dir, out_dir)})" if mp4 else "—"])
    if not rows:
        return []
    return ["## Real | imagined videos", ""] + md_table(
        ["Task", "Method", "Family", "Preset", "Seed", "Real \\| imagined (gif)", "Video"], rows)


def _repro_section(results: Sequence[RunResult], runs: dict, results_dir: Path) -> list[str]:
    versions: dict[str, set[str]] = defaultdict(set)
    hardware: dict[str, int] = defaultdict(int)
    for r in results:
        for k, v in r.versions.items():
            versions[k].add(str(v))
        hw = r.hardware
        hardware[f"cpu: {hw.get('cpu')}, cores: {hw.get('cores')}, gpu: {hw.get('gpu') or 'none'}"] += 1
    lines = ["## Reproducibility", "", "### Versions", ""]
    lines += md_table(["Package", "Version(s)"],
                    [[k, ", ".join(sorted(v))] for k, v in sorted(versions.items())])
    lines += ["### Hardware", ""] + [f"- {hw} ({n} runs)" for hw, n in sorted(hardware.items())] + [""]
    lines += ["### Runs", ""] + md_table(
        ["Suite", "Task", "Budget", "Method", "Family", "Preset", "Seeds", "Config hash(es)"],
        [[s, t, str(b), m, f, p, ", ".join(str(r.seed) for r in rs),
          ", ".join(sorted({f"`{r.config_hash}`" for r in rs}))] for (s, t, b, f, p, m), rs in runs.items()])
    files = sorted(Path(os.path.relpath(r.source, results_dir)).as_posix() for r in results if r.source)
    return lines + ["### Result files", ""] + [f"- `{f}`" for f in files] + [""]


def build_report(
    results_dir: str | os.PathLike, out_dir: str | os.PathLike, baseline: str = "ppo_real",
    resamples: int = 2000,
) -> Path:
    """Write ``out_dir/README.md`` and its PNGs from the result JSONs under `results_dir`.

    `baseline` is the method whose mean return, at the same task and budget, divides each
    method's mean in the ratio column. Raises ValueError when there is no result file.
    """
    results_dir, out_dir = Path(results_dir), Path(out_dir)
    results = load_results(results_dir)
    if not results:
        raise ValueError(f"no result files (*.json) under {str(results_dir)!r}: nothing to report")
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = group_runs(results)
    summaries = summarize(results, resamples=resamples)
    tables: dict[GroupKey, list[tuple[MethodSummary, float | None]]] = defaultdict(list)
    for s, ratio in zip(summaries, baseline_ratios(summaries, baseline)):
        tables[s.group].append((s, ratio))
    show_suite = len({r.suite for r in results}) > 1
    lines = [
        "# vwm benchmark report", "",
        f"Built from {len(results)} result files. Return: mean ± std over seeds of each seed's mean "
        "real-env evaluation return. IQM: interquartile mean of all evaluation episodes of all seeds, "
        f"95% percentile bootstrap CI over seeds ({resamples} resamples). Real/imagined steps and wall "
        "time: mean per seed (real steps actually used). Ratio: mean return over "
        f"`{baseline}`'s at the same budget (only where both are positive).",
        "",
    ]
    for group, rows in tables.items():
        lines += _group_section(group, runs, rows, out_dir, baseline, show_suite)
        lines += tenx_section([summary for summary, _ in rows])
    from benchmarks.report_families import families_section  # it builds on this module

    lines += families_section(results, summaries, results_dir, out_dir)
    lines += _throughput_section(results, out_dir)
    lines += _videos_section(results, results_dir, out_dir)
    lines += _repro_section(results, runs, results_dir)
    return write_text_atomic(out_dir / "README.md", "\n".join(lines))


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m benchmarks.report RESULTS_DIR OUT_DIR [--baseline METHOD]``."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.report", description=__doc__.splitlines()[0])
    parser.add_argument("results_dir", help="folder of per-run result JSONs (searched recursively)")
    parser.add_argument("out_dir", help="folder to write README.md and the PNGs into")
    parser.add_argument("--baseline", default="ppo_real", help="real-env method for the ratio column")
    args = parser.parse_args(argv)
    print(build_report(args.results_dir, args.out_dir, baseline=args.baseline))


if __name__ == "__main__":
    main()
