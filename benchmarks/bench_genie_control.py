"""Controllability of the Genie family: latent actions learned from video against an oracle.

Issue 10 targets, per task (default MinAtar Breakout and Freeway in their minimal action
sets, drawn at 40x40 so that a token patch of 4 is one grid cell): 20,000 random real steps
in a local Minari dataset (an existing one is reused), two genie models trained for the
same wall-clock (``--model-seconds``, default 25 minutes) at one preset:

- ``latent``: trained action-free (``ignore_actions``), acting in its LAM codes;
- ``oracle``: the same architecture with the dynamics conditioned on the real actions
  (``dynamics_actions="real"``, no LAM stage).

Before training, the seconds per step of each stage are measured and the tokenizer and LAM
stages get at most a third of the budget each (capped by the preset's step counts), so the
dynamics gets at least a third; the oracle's tokenizer gets as many steps as the latent
model's. Then, on fresh random real episodes (``--fresh-transitions``; random Breakout
episodes last about 10 steps, so the dataset's held-out episodes hold few windows):
delta-t PSNR of both models at t = 1, 4, 15 with 95% bootstrap intervals over windows, the
latent/oracle ratio and the goal check (latent >= 0.7 x oracle, interval above zero); the
label probe of the latent model fitted on its first 1, 5 and 20 training episodes (goal
>= 0.8 at 5), beside the chance level, on the held-out episodes' real actions (the
dataset's first ones, `TrainConfig.holdout_episodes`) and, on the fresh episodes, scored on
effects (`benchmarks.effect_probe`); a lag check of the probe's
alignment; tokenizer PSNR; code usage; steps per stage and seconds. Measurements live in
`benchmarks.control_metrics`.

Run: ``python -m benchmarks.bench_genie_control [--tasks A,B] [--size 40] [--model-seconds 1500]
[--minari-root ROOT] [--overrides JSON] [--out-dir DIR]`` (one torch thread by default).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks import control_metrics as cm
from benchmarks.benchio import report
from benchmarks.effect_probe import as_dataset, effect_episodes, effect_probe
from world_models.atomic import write_json_atomic, write_text_atomic
from world_models.threads import torch_threads

TASKS = ("vwm/MinAtarBreakoutMinimal-v0", "vwm/MinAtarFreewayMinimal-v0")
SIZE = 40
"""Default frame side: each MinAtar grid cell is 4x4 pixels (as the ``...Minimal40px`` ids)."""
OVERRIDES = '{"patch": 4, "reward_image_size": 20}'
"""Default genie overrides at that size: one token per cell, the reward predictor at 20x20."""
TS = (1, 4, 15)
PROBE_EPISODES = (1, 5, 20)
RATIO_GOAL, PROBE_GOAL = 0.7, 0.8
"""Issue goals: latent delta-t PSNR >= 0.7 x the oracle's (interval above 0); probe >= 0.8 at 5 episodes."""
STAGE_SHARE = 1 / 3
"""Largest share of the budget the tokenizer and the LAM stage each get."""
STEP_CAP = 10**9
"""Step limit of a run stopped by the clock."""
FRESH_SEED = 50_000
"""First reset seed of the fresh real episodes (apart from the data's seeds)."""


# ----------------------------------------------------------------------------- pure planning
def plan_stage_steps(seconds_per_step: dict[str, float], budget: float, caps: dict[str, int],
                     share: float = STAGE_SHARE) -> dict[str, int]:
    """Steps of each capped stage: as many as fit in `share` of `budget` seconds at its
    measured seconds per step, at least 1, at most its cap."""
    return {name: max(1, min(int(cap), int(share * budget / max(seconds_per_step[name], 1e-9))))
            for name, cap in caps.items()}


def steps_per_stage(total: int, planned: dict[str, int], order: list[str]) -> dict[str, int]:
    """Steps each stage of `order` ran in a run of `total` steps (the last takes the rest)."""
    out, left = {}, int(total)
    for name in order[:-1]:
        out[name] = min(left, int(planned[name]))
        left -= out[name]
    out[order[-1]] = left
    return out


def settings_hash(overrides: dict[str, Any]) -> str:
    """Short hash of a model's overrides, stage step counts left out (they follow a timing
    measurement): its run folder's tag, so a finished run is reused only for equal settings."""
    kept = {k: v for k, v in overrides.items() if k not in ("tokenizer_steps", "lam_steps")}
    return hashlib.sha1(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:8]


def holdout_count(lengths: list[int], wanted: int, max_fraction: float = 0.1) -> int:
    """Episodes to hold out (the first ones): `wanted`, fewer when they would hold more than
    `max_fraction` of the frames (long episodes), at least 1."""
    total, kept, frames = sum(lengths), 0, 0
    for length in lengths[:wanted]:
        if kept and frames + length > max_fraction * total:
            break
        kept, frames = kept + 1, frames + length
    return max(1, kept)


# ----------------------------------------------------------------------------- data and models
def dataset_id(task: str, steps: int, seed: int, size: int | None = None) -> str:
    """Minari id of the random data (the naming of `benchmarks.shared_model.shared_dataset`;
    a frame side given by hand is part of the name)."""
    sized = "" if size is None else f"-px{size}"
    return f"vwm/{task.split('/')[-1].lower()}/random-b{steps}-s{seed}{sized}-v0"


def ensure_dataset(task: str, steps: int, seed: int, work: Path, roots: list[Path],
                   size: int | None = None) -> tuple[str, Path]:
    """(dataset id, Minari root): an existing dataset under one of `roots`, else one
    collected under WORK/minari (frames of side `size`, None: the task's default)."""
    from minari.storage import get_dataset_path

    from video_envs.collect import CollectConfig, collect, minari_root

    name = dataset_id(task, steps, seed, size)
    for root in [*roots, work / "minari"]:
        with minari_root(root):
            if (Path(get_dataset_path(name)) / "data").is_dir():
                return name, root
    with minari_root(work / "minari"):
        collect(CollectConfig(task=task, dataset=name, steps=steps, seed=seed, size=size, progress=False))
    return name, work / "minari"


def stage_seconds(data: Any, preset: str, overrides: dict[str, Any], batch: int, seq: int,
                  repeats: int = 3, seed: int = 0) -> dict[str, float]:
    """Seconds per training step of each stage of a fresh genie model (median of `repeats`
    timed steps after one warm-up step)."""
    from world_models.families import build_model, make_spec
    from world_models.trainer import WorldModelTrainer

    spec = make_spec("genie", data.frame_shape, data.action_kind, data.action_dim, data.action_low,
                     data.action_high, preset=preset, overrides=overrides)
    torch.manual_seed(seed)
    model = build_model(spec)
    trainer = WorldModelTrainer(model, 4e-4, 100.0, seed)
    out, start = {}, 0
    for stage in trainer.stages:
        times = []
        for _ in range(repeats + 1):
            trainer.step = start
            began = time.perf_counter()
            trainer.update(data, batch, seq)
            times.append(time.perf_counter() - began)
        out[stage.name] = float(sorted(times[1:])[len(times[1:]) // 2])
        start += int(stage.steps or 0)
    return out


def train(dataset: str, out: Path, overrides: dict[str, Any], args: argparse.Namespace,
          ignore_actions: bool, holdout: int) -> Path:
    """Train (or reuse the finished run in `out`) one genie model; returns its checkpoint."""
    from world_models.train import TrainConfig, train_world_model

    timed = args.model_steps <= 0
    cfg = TrainConfig(dataset=dataset, out=str(out), family="genie", preset=args.preset,
                      overrides=json.dumps(overrides), ignore_actions=ignore_actions,
                      steps=STEP_CAP if timed else args.model_steps,
                      max_seconds=args.model_seconds if timed else 0.0, batch_size=args.batch_size,
                      seq_len=args.seq_len, seed=args.seed, holdout_episodes=holdout, eval_every=0,
                      checkpoint_every=STEP_CAP, resume=True, device=args.device, tensorboard=False,
                      progress=False, num_contexts=16)
    return train_world_model(cfg)


# ----------------------------------------------------------------------------- one task
def run_task(task: str, args: argparse.Namespace) -> dict[str, Any]:
    """Data, both models and every measurement of one task."""
    from video_envs.collect import minari_root
    from world_models.checkpoint import load_checkpoint, read_config
    from world_models.data import SequenceDataset

    work = Path(args.work)
    began = time.perf_counter()
    name, root = ensure_dataset(task, args.steps, args.seed, work, [Path(r) for r in args.minari_root],
                                args.size or None)
    with minari_root(root):
        lengths = SequenceDataset.from_minari(name).episode_lengths.tolist()
        holdout = holdout_count(lengths, args.holdout_episodes)
        labelled = SequenceDataset.from_minari(name, holdout_episodes=holdout)
        video = SequenceDataset.from_minari(name, holdout_episodes=holdout, ignore_actions=True)
    base = json.loads(args.overrides) if args.overrides else {}
    latent_only = json.loads(args.latent_overrides) if args.latent_overrides else {}
    variants = {"latent": {**base, **latent_only, "action_mode": "latent"},
                "oracle": {**base, "dynamics_actions": "real", "action_mode": "real"}}
    from world_models.genie.config import PRESETS

    preset = PRESETS[args.preset].replace(base)
    timing = stage_seconds(video, args.preset, variants["latent"], args.batch_size, args.seq_len,
                           seed=args.seed)
    caps = {"tokenizer": preset.tokenizer_steps, "latent_actions": preset.lam_steps}
    given = {**base, **latent_only}  # step counts set by hand are kept
    fixed = {k: given[v] for k, v in (("tokenizer", "tokenizer_steps"), ("latent_actions", "lam_steps"))
             if v in given}
    if args.model_steps > 0:
        planned = plan_stage_steps({k: 1.0 for k in caps}, args.model_steps, caps)
    else:
        planned = plan_stage_steps(timing, args.model_seconds, caps)
    planned.update(fixed)
    variants["latent"].update(tokenizer_steps=planned["tokenizer"], lam_steps=planned["latent_actions"])
    variants["oracle"].update(tokenizer_steps=planned["tokenizer"])
    data_seconds = time.perf_counter() - began
    result: dict[str, Any] = {
        "task": task, "dataset": name, "minari_root": str(root), "episodes": len(lengths),
        "holdout_episodes": holdout, "holdout_frames": int(sum(lengths[:holdout])),
        "seconds_per_step": timing, "planned_steps": planned, "models": {}, "data_seconds": data_seconds}
    budget = f"{args.model_steps}steps" if args.model_steps > 0 else f"{args.model_seconds:g}s"
    tag = f"{args.preset}_{budget}"
    env_kwargs = {"size": args.size} if args.size else {}
    effects = effect_episodes(task, args.fresh_transitions, FRESH_SEED, env_kwargs)
    evaluation = as_dataset(effects, labelled.action_dim) if effects else labelled.holdout
    result["evaluation_data"] = {"source": "fresh" if effects else "held-out",
                                 "episodes": evaluation.num_episodes, "frames": evaluation.num_frames}
    for model_name, overrides in variants.items():
        out = work / task.split("/")[-1] / f"{model_name}_{tag}_{settings_hash(overrides)}_seed{args.seed}"
        with minari_root(root):
            checkpoint = train(name, out, overrides, args, model_name == "latent", holdout)
        config = read_config(checkpoint)
        model = load_checkpoint(checkpoint, device=args.device).model.eval()
        order = [s.name for s in model.training_stages()]
        stage_plan = {"tokenizer": model.cfg.tokenizer_steps, "latent_actions": model.cfg.lam_steps}
        started = time.perf_counter()
        latent = model_name == "latent"
        entry: dict[str, Any] = {
            "overrides": overrides, "checkpoint": str(checkpoint), "steps": int(config["step"]),
            "steps_per_stage": steps_per_stage(int(config["step"]), stage_plan, order),
            "train_seconds": float(config.get("train_seconds", float("nan"))),
            "open_loop": config.get("eval"), "tokenizer_psnr": cm.tokenizer_psnr(model, labelled.holdout)}
        pool = cm.used_actions(model, evaluation, latent)  # codes or real actions
        if latent:
            entry["code_usage"] = cm.code_usage(pool, model.cfg.n_latent)
        entry["delta_t_psnr"] = cm.delta_t_psnr(model, evaluation, latent, args.ts, args.seed,
                                                args.max_windows, random_pool=pool)
        if latent:
            entry["label_probe"] = cm.label_probe(model, labelled, labelled.holdout, args.probe_episodes)
            entry["lag_check"] = entry["label_probe"].pop("lag_check")
            if effects:
                entry["effect_probe"] = effect_probe(model, labelled, effects, args.probe_episodes)
        entry["eval_seconds"] = time.perf_counter() - started
        result["models"][model_name] = entry
        print(f"{task} {model_name}: {entry['steps']} steps {entry['steps_per_stage']} in "
              f"{entry['train_seconds']:.0f} s; eval {entry['eval_seconds']:.0f} s", flush=True)
    result["goals"] = goals(result, args.ts)
    return result


def goals(result: dict[str, Any], ts: list[int]) -> dict[str, Any]:
    """Latent/oracle delta-t PSNR ratio per t with the issue's check, and the probe goal."""
    lat, ora = (result["models"][m]["delta_t_psnr"]["per_t"] for m in ("latent", "oracle"))
    per_t = {}
    for t in map(str, ts):
        a, b = lat[t], ora[t]
        ratio = a["mean"] / b["mean"] if b["n"] and a["n"] and b["mean"] != 0 else float("nan")
        oracle_controls = bool(b["n"] and b["low"] > 0)  # else the ratio divides noise by noise
        per_t[t] = {"ratio": ratio, "oracle_above_zero": oracle_controls,
                    "met": bool(oracle_controls and ratio >= RATIO_GOAL and a["low"] > 0)}
    probe = result["models"]["latent"]["label_probe"]["per_episodes"].get("5")
    accuracy = None if probe is None else probe["accuracy"]
    return {"delta_t_ratio": per_t, "ratio_goal": RATIO_GOAL, "probe_goal": PROBE_GOAL,
            "probe_at_5": accuracy, "probe_met": accuracy is not None and accuracy >= PROBE_GOAL}


# ----------------------------------------------------------------------------- report
def _fmt(stats: dict[str, Any]) -> str:
    if not stats["n"]:
        return "n=0"
    return f"{stats['mean']:.2f} [{stats['low']:.2f}, {stats['high']:.2f}] n={stats['n']}"


def markdown(results: list[dict[str, Any]], ts: list[int]) -> str:
    """The report's tables as markdown."""
    lines = ["# Genie controllability: latent actions vs the real-action oracle", "",
             "Delta-t PSNR (dB): PSNR with the true actions minus PSNR with random ones (latent: "
             "inferred codes vs draws from the used-code marginal; oracle: real actions vs draws "
             "from their marginal), windows of fresh random real episodes (or, without them, of the "
             "held-out episodes), mean [95% bootstrap CI] n.", "",
             "The ratio latent/oracle means something only where the oracle's interval is above 0.", "",
             "| task | t | latent | oracle | ratio | goal met |", "| --- | --- | --- | --- | --- | --- |"]
    for r in results:
        for t in map(str, ts):
            lat, ora = (r["models"][m]["delta_t_psnr"]["per_t"][t] for m in ("latent", "oracle"))
            g = r["goals"]["delta_t_ratio"][t]
            lines.append(f"| {r['task']} | {t} | {_fmt(lat)} | {_fmt(ora)} | {g['ratio']:.2f} | "
                         f"{'yes' if g['met'] else 'no'} |")
    lines += ["", "Label probe of the latent model: an ActionMap fitted on the first N training "
              "episodes, accuracy on the held-out transitions (raw labels), and on fresh real "
              "transitions scored on effects (a decoded action is right when it gives the same next "
              "frame as the real one, `benchmarks.effect_probe`; identifiable: transitions where the "
              "actions differ at all). Chance: the majority label / the best constant action.", "",
              "| task | N | labelled transitions | accuracy | chance | effect accuracy | chance | "
              "identifiable: effect accuracy | chance | share |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    nan = {"accuracy": float("nan"), "chance": float("nan"), "accuracy_identifiable": float("nan"),
           "chance_identifiable": float("nan"), "identifiable": float("nan")}
    for r in results:
        probe = r["models"]["latent"]["label_probe"]
        effects = r["models"]["latent"].get("effect_probe", {"per_episodes": {}})["per_episodes"]
        for n, row in probe["per_episodes"].items():
            e = effects.get(n, nan)
            lines.append(f"| {r['task']} | {n} ({row['episodes']}) | {row['transitions']} | "
                         f"{row['accuracy']:.3f} | {probe['chance']:.3f} | {e['accuracy']:.3f} | "
                         f"{e['chance']:.3f} | {e['accuracy_identifiable']:.3f} | "
                         f"{e['chance_identifiable']:.3f} | {e['identifiable']:.2f} |")
    lines += ["", "| task | model | steps per stage | train s | tokenizer PSNR | codes used (perplexity) | "
              "lag check (-1/0/+1) |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        for name, m in r["models"].items():
            usage = m.get("code_usage")
            used = f"{usage['codes_used']}/{usage['n_latent']} ({usage['perplexity']:.2f})" if usage else "-"
            lag = "/".join(f"{v:.2f}" for v in m["lag_check"].values()) if "lag_check" in m else "-"
            lines.append(f"| {r['task']} | {name} | {m['steps_per_stage']} | {m['train_seconds']:.0f} | "
                         f"{m['tokenizer_psnr']:.1f} | {used} | {lag} |")
    return "\n".join(lines) + "\n"


def parse_ints(text: str) -> list[int]:
    """``"1,4,15"`` -> [1, 4, 15] (positive integers)."""
    values = [int(v) for v in text.split(",") if v.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """CLI entry point: measure every task, print the tables, write JSON and markdown."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated task ids")
    parser.add_argument("--seed", type=int, default=0, help="data, training and evaluation seed")
    parser.add_argument("--steps", type=int, default=20_000, help="random real steps per task")
    parser.add_argument("--size", type=int, default=SIZE,
                        help="frame side passed to the task as size= (MinAtar: 40 draws each grid cell "
                             "as 4x4 pixels, so a patch of 4 is one cell; 0: the task's own)")
    parser.add_argument("--work", default="runs/bench/genie_control", help="datasets and run folders")
    parser.add_argument("--minari-root", action="append", default=[],
                        help="Minari root holding an existing dataset to reuse (repeatable)")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--model-seconds", type=float, default=1500.0, help="training seconds per model")
    parser.add_argument("--model-steps", type=int, default=0,
                        help="train each model this many steps instead of --model-seconds (0: off)")
    parser.add_argument("--overrides", default=OVERRIDES,
                        help="genie hyper-parameter overrides (JSON), both models")
    parser.add_argument("--latent-overrides", default="",
                        help="overrides (JSON) of the latent model only, e.g. a LAM fix to compare")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=8,
                        help="frames per training window (default 2K: the dynamics reads K = 4 past "
                             "frames, and random Breakout episodes last 7 to 17 frames)")
    parser.add_argument("--holdout-episodes", type=int, default=10,
                        help="held-out episodes (fewer when they exceed 10%% of the frames)")
    parser.add_argument("--ts", type=parse_ints, default=list(TS), help="delta-t PSNR horizons")
    parser.add_argument("--probe-episodes", type=parse_ints, default=list(PROBE_EPISODES))
    parser.add_argument("--fresh-transitions", type=int, default=2000,
                        help="fresh random real transitions (whole episodes) on which delta-t PSNR "
                             "and the effect probe are measured (0: delta-t on the held-out "
                             "episodes, no effect probe)")
    parser.add_argument("--max-windows", type=int, default=256,
                        help="evaluation windows per model, evenly spaced (0: all)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out-dir", default="benchmarks/results/genie_control")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    with torch_threads(args.threads):
        threads = torch.get_num_threads()
        results = [run_task(task, args) for task in args.tasks.split(",") if task]
    table = markdown(results, args.ts)
    print(table)
    config = {k: v for k, v in vars(args).items()} | {"threads": threads}
    out = report("genie_control", config, results, seconds=time.perf_counter() - began)
    folder = Path(args.out_dir)
    write_json_atomic(folder / "genie_control.json", out)
    write_text_atomic(folder / "genie_control.md", table)
    return out


if __name__ == "__main__":
    main()
