"""The model-families part of a benchmark report: families side by side on the same data.

For each (suite, task, budget, preset) whose model-based runs cover two or more families (or
that belongs to the ``families`` suite), two tables and a video:

- the models: open-loop PSNR and SSIM at h = 1, 5, 15, reward MAE, termination precision and
  recall, imagined frames/s of the pixel imagined env at each measured number of envs as a
  ratio to the real task's steps/s (measured in the same run), training wall-clock and steps;
  means over seeds of each seed's shared model;
- the real return of every agent inside each family: mean ± std over seeds and the IQM of
  all evaluation episodes with a seed-bootstrap 95% CI (`benchmarks.report.seed_bootstrap_iqm`);
  model-free methods, which run once, are shown in their own column;
- the real | family A | family B ... video and film strip (`benchmarks.shared_model`).

Built from result JSONs only, like the rest of the report (`benchmarks.report`).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from benchmarks.report import MethodSummary, fmt_num, fmt_steps, md_table, mean_of, method_rank, result_link
from benchmarks.results_schema import RunResult, family_video_stem
from benchmarks.suite_spec import model_free

FAMILIES_SUITE = "families"
"""The suite whose report always gets the families section."""
HORIZONS = (1, 5, 15)
"""Open-loop horizons of the families table."""
FRAME_KEY = re.compile(r"imagined_frames_per_s_n(\d+)")

FamilyGroup = tuple[str, str, int, str]
"""(suite, task, real_step_budget, preset): one families comparison."""


def per_seed_models(runs: Sequence[RunResult]) -> dict[str, list[RunResult]]:
    """family -> one model-based run per seed (every method of a seed shares its model, so any
    one of them carries the model's fidelity, throughput and training cost)."""
    seen: dict[str, dict[int, RunResult]] = defaultdict(dict)
    for r in sorted(runs, key=lambda r: (r.family, r.seed, method_rank(r.method))):
        if not model_free(r.method) and (r.fidelity or r.throughput or r.model_training):
            seen[r.family].setdefault(r.seed, r)
    return {family: list(by_seed.values()) for family, by_seed in seen.items()}


def frame_ratios(throughput: dict[str, float]) -> dict[int, tuple[float, float]]:
    """``{num_envs: (imagined frames/s, ratio to real steps/s)}`` from a throughput record."""
    real = throughput.get("real_steps_per_s")
    out = {}
    for key, value in throughput.items():
        m = FRAME_KEY.fullmatch(key)
        if m and value is not None and real:
            out[int(m.group(1))] = (float(value), float(value) / float(real))
    return out


def model_rows(models: dict[str, list[RunResult]]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the models table: a column per family, a row per metric (means over
    the seeds' shared models)."""
    envs = sorted({n for runs in models.values() for r in runs for n in frame_ratios(r.throughput or {})})
    columns: list[dict[str, str]] = []
    for runs in models.values():
        fid = [r.fidelity or {} for r in runs]
        thr = [r.throughput or {} for r in runs]
        train = [r.model_training or {} for r in runs]
        col = {"Seeds": str(len(runs))}
        col.update({f"PSNR h{h} (dB)": fmt_num(mean_of([f.get(f"psnr_h{h}") for f in fid]), 2)
                    for h in HORIZONS})
        col.update({f"Repeat last frame, PSNR h{h} (dB)":
                    fmt_num(mean_of([f.get(f"psnr_copy_h{h}") for f in fid]), 2) for h in HORIZONS})
        col.update({f"SSIM h{h}": fmt_num(mean_of([f.get(f"ssim_h{h}") for f in fid]), 3) for h in HORIZONS})
        for key, label in (("reward_mae", "Reward MAE"), ("termination_precision", "Termination precision"),
                           ("termination_recall", "Termination recall")):
            col[label] = fmt_num(mean_of([f.get(key) for f in fid]), 3)
        col["Real env steps/s"] = fmt_num(mean_of([t.get("real_steps_per_s") for t in thr]), 0)
        for n in envs:
            pairs = [frame_ratios(t).get(n) for t in thr]
            rate = mean_of([p[0] if p else None for p in pairs])
            ratio = mean_of([p[1] if p else None for p in pairs])
            col[f"Imagined frames/s, {n} env{'s' * (n > 1)} (× real)"] = (
                "—" if rate is None else f"{fmt_num(rate, 0)} ({fmt_num(ratio, 2)}×)")
        for key, label in (("seconds", "Training wall-clock (s)"), ("steps", "Training steps"),
                           ("parameters", "Parameters")):
            col[label] = fmt_num(mean_of([t.get(key) for t in train]), 0)
        labels = mean_of([t.get("label_episodes") for t in train])
        col["Action labels"] = "all" if labels is None else f"{fmt_num(labels, 0)} episodes"
        col["Label probe accuracy"] = fmt_num(mean_of([t.get("label_probe_accuracy") for t in train]), 2)
        columns.append(col)
    metrics = list(columns[0])
    return ["Metric", *models], [[m] + [c[m] for c in columns] for m in metrics]


def return_rows(
    summaries: Sequence[MethodSummary], families: Sequence[str]
) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the returns table: a row per method, a column per family (model-free
    methods in a "no model" column)."""
    cells: dict[str, dict[str, str]] = defaultdict(dict)
    for s in summaries:
        column = s.family if not model_free(s.method) else "no model"
        cells[s.method][column] = (f"{fmt_num(s.mean)} ± {fmt_num(s.std)}; IQM {fmt_num(s.iqm)} "
                                   f"[{fmt_num(s.ci_low)}, {fmt_num(s.ci_high)}]")
    columns = (["no model"] if any("no model" in c for c in cells.values()) else []) + list(families)
    rows = [[method] + [cells[method].get(c, "—") for c in columns]
            for method in sorted(cells, key=method_rank)]
    return ["Method"] + columns, rows


def _videos(runs: Sequence[RunResult], group: FamilyGroup, results_dir: Path, out_dir: Path) -> list[str]:
    """The real | families gif of each seed (columns titled in the video), mp4 and film strip."""
    _, task, budget, preset = group
    lines = []
    for seed in sorted({r.seed for r in runs}):
        anchor = next(r for r in runs if r.seed == seed)
        stem = family_video_stem(task, budget, preset, seed)
        base = anchor.source.parent if anchor.source is not None else results_dir
        links = {ext: result_link(anchor, f"{stem}.{ext}", results_dir, out_dir)
                 for ext in ("gif", "mp4", "png") if (base / f"{stem}.{ext}").is_file()}
        if "gif" in links:
            extra = [f"[{label}]({links[ext]})" for ext, label in (("mp4", "mp4"), ("png", "film strip"))
                     if ext in links]
            lines += [f"Seed {seed}: real | each family, same start and actions " + " · ".join(extra),
                      "", f"![real | families, seed {seed}]({links['gif']})", ""]
    return lines


def families_section(
    results: Sequence[RunResult], summaries: Sequence[MethodSummary], results_dir: Path, out_dir: Path,
) -> list[str]:
    """Markdown of the families comparison (empty when no group compares families)."""
    groups: dict[FamilyGroup, list[RunResult]] = defaultdict(list)
    for r in results:
        groups[(r.suite, r.task, r.real_step_budget, r.model_preset)].append(r)
    show_suite = len({g[0] for g in groups}) > 1
    lines: list[str] = []
    for group in sorted(groups):
        runs = groups[group]
        models = per_seed_models(runs)
        if not models or (len(models) < 2 and group[0] != FAMILIES_SUITE):
            continue
        suite, task, budget, preset = group
        title = f"### {task} — {fmt_steps(budget)} real steps, preset {preset}"
        lines += [title + (f" (suite `{suite}`)" if show_suite else ""), ""]
        lines += md_table(*model_rows(models))
        chosen = [s for s in summaries if (s.suite, s.task, s.budget, s.preset) == group]
        lines += ["Real return (mean ± std over seeds; IQM of all episodes [95% seed-bootstrap CI]):", ""]
        lines += md_table(*return_rows(chosen, list(models)))
        lines += _videos(runs, group, results_dir, out_dir)
    if not lines:
        return []
    intro = ("Every family learned from the same random real steps; fidelity on held-out episodes "
             "(open loop), imagined frames/s of the pixel imagined env against the real task's "
             "steps/s measured in the same run, training wall-clock of the shared model. Means over "
             "seeds.")
    return ["## Model families side by side", "", intro, ""] + lines

