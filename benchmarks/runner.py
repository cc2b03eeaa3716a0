"""Execute benchmark runs: one (task, method, seed, budget, family, preset) -> one result JSON.

Model-based offline methods share one world model per (task, seed, budget, family, preset),
learned from `budget` random real steps, so they spend the same real experience
(`benchmarks.shared_model`). Every stage
runs its models on the suite's torch device. Finished
runs are skipped, the shared model and the online loop resume, so a killed suite picks up
where it stopped.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch

from agents.evaluate import EvalResult, RandomPolicy, evaluate_policy, load_policy
from benchmarks.benchio import hardware
from benchmarks.dream_return import LatentActor, dream_return
from benchmarks.results_schema import (
    DEFAULT_FAMILY,
    SCHEMA_VERSION,
    FinalEval,
    RunResult,
    config_hash,
    result_filename,
)
from benchmarks.shared_model import (
    SharedModel,
    ensure_model,
    measure_throughput,
    model_overrides,
    write_dream_videos,
    write_family_videos,
)
from benchmarks.suite_spec import RunSpec, Suite, SuiteSettings, model_free, validate_suite
from world_models.atomic import remove_temporaries
from world_models.checkpoint import package_versions
from world_models.device import resolve_device
from world_models.locks import writer_lock


def expand(suite: Suite) -> list[RunSpec]:
    """Every run of a suite (validated), in a stable order. Model-free methods run once, named
    under the default family whatever the suite's families (``--family genie`` reuses them)."""
    validate_suite(suite)
    return [
        RunSpec(suite.name, task, method, seed, budget, preset,
                DEFAULT_FAMILY if model_free(method) else family)
        for task in suite.tasks
        for budget in suite.budgets
        for family in suite.families
        for preset in suite.presets
        for seed in suite.seeds
        for method in suite.methods
        if family == suite.families[0] or not model_free(method)
    ]


def result_path(results_dir: Path, spec: RunSpec) -> Path:
    """Where the result JSON of `spec` goes."""
    return results_dir / result_filename(spec.suite, spec.task, spec.method, spec.budget, spec.family,
                                         spec.preset, spec.seed)


def _is_discrete(task: str) -> bool:
    import video_envs  # noqa: F401

    return isinstance(gym.make(task).action_space, gym.spaces.Discrete)


def method_fits(method: str, task: str) -> bool:
    """Whether `method` can run on `task` (e.g. DQN needs discrete, SAC continuous actions)."""
    from agents.sb3 import CONTINUOUS_ONLY, DISCRETE_ONLY

    algo = method.split("_", 1)[0]
    discrete = _is_discrete(task)
    return not ((discrete and algo in CONTINUOUS_ONLY) or (not discrete and algo in DISCRETE_ONLY))


# ------------------------------------------------------------------ methods


def evaluation_seed(seed: int) -> int:
    """The first real-task seed of the evaluation episodes of a run with seed `seed`."""
    return 100_000 + 1000 * seed


def _final(result: EvalResult) -> FinalEval:
    return FinalEval(result.returns, result.lengths, result.seeds, result.mean, result.iqm)


def execute(spec: RunSpec, settings: SuiteSettings, work: Path, results_dir: Path,
            progress: bool = True, device: str = "cpu") -> RunResult:
    """Run one cell of a suite and return its result (not yet saved); `device` is resolved
    here (`world_models.device`), where the cell runs."""
    import video_envs  # noqa: F401

    device = str(resolve_device(device))
    torch.manual_seed(spec.seed)
    run_dir = work / spec.slug()
    eval_seed = evaluation_seed(spec.seed)
    repeat = int(settings.online.get("action_repeat", 1)) if spec.method == "dreamer" else 1
    episodes = settings.eval_episodes
    fields: dict[str, Any] = {"curve": [], "imagined_steps": 0, "real_steps": 0}
    start = time.perf_counter()
    method = spec.method
    if method == "random":
        policy = RandomPolicy(gym.make(spec.task).action_space, spec.seed)
    elif "_real" in method:
        from agents.sb3 import SB3Config, train_sb3_real

        algo = method.split("_", 1)[0]
        steps = spec.budget * (10 if method.endswith("_10x") else 1)
        cfg = SB3Config(algo=algo, steps=steps, seed=spec.seed, num_envs=8,
                        eval_every=max(steps // 5, 1), eval_episodes=min(episodes, 5),
                        progress=progress, device=device)
        out = train_sb3_real(spec.task, cfg, run_dir)
        policy = load_policy(out["path"], spec.task, device=device)
        fields.update(curve=[list(p) for p in out["history"]], real_steps=out["real_steps"])
    elif method == "dreamer":
        from agents.dreamer import DreamerConfig, DreamerPolicy
        from agents.online import OnlineConfig, agent_dir, model_dir, run_online

        cfg = OnlineConfig(task=spec.task, out=str(run_dir), real_steps=spec.budget,
                           family=spec.family, preset=spec.preset, seed=spec.seed, progress=progress,
                           overrides=model_overrides(settings, spec.family, spec.task), device=device,
                           **settings.online)
        online_start = time.perf_counter()
        record = run_online(cfg, DreamerConfig(**settings.dreamer))
        # a resumed loop ran partly in earlier processes: count their time too
        start -= record["wall_time"] - (time.perf_counter() - online_start)
        policy = DreamerPolicy.load(agent_dir(run_dir), device)
        checkpoint = model_dir(run_dir)  # the online model: its speed and a dream video
        fields.update(throughput=measure_throughput(checkpoint, spec.task, settings.throughput_envs,
                                                    settings.throughput_seconds, device,
                                                    settings.pixel_throughput_envs),
                      videos=write_dream_videos(checkpoint, spec, settings, results_dir, device, "dreamer"))
        if record.get("termination"):  # the model's ends on the last held-out real episodes
            from agents.online import TERMINATION_KEYS

            last = dict(zip(TERMINATION_KEYS, record["termination"][-1][1:], strict=True))
            fields["fidelity"] = {k: v for k, v in last.items() if v is not None}
        fields.update(curve=record["curve"], real_steps=record["real_steps"],
                      imagined_steps=record["imagined_steps"],
                      dream_return=dream_return(policy, LatentActor(policy.agent), model_dir(run_dir),
                                                spec.task, min(episodes, 10), eval_seed,
                                                action_repeat=repeat, device=device))
    else:
        shared = ensure_model(spec, settings, work, results_dir, progress, device)
        fields.update(real_steps=shared.real_steps, fidelity=shared.fidelity,
                      throughput=shared.throughput, videos=shared.videos, model_training=shared.training)
        policy = _offline_method(spec, settings, shared, run_dir, fields, episodes, eval_seed, progress,
                                 device)
    result = evaluate_policy(policy, spec.task, episodes, seed=eval_seed, policy_name=method,
                             action_repeat=repeat)  # as the online loop acted
    wall = time.perf_counter() - start
    curve = fields.pop("curve") or [[fields["real_steps"], result.mean]]
    if curve[-1][0] < fields["real_steps"]:
        curve.append([fields["real_steps"], result.mean])
    config = {"spec": asdict(spec), "settings": asdict(settings)}
    return RunResult(
        schema=SCHEMA_VERSION, suite=spec.suite, task=spec.task, method=method, seed=spec.seed,
        real_step_budget=spec.budget, model_preset=spec.preset, curve=curve,
        final=_final(result), wall_time=wall, versions=package_versions(), config=config,
        config_hash=config_hash(config), hardware=hardware(), family=spec.family, **fields,
    )


def _offline_method(spec: RunSpec, settings: SuiteSettings, shared: SharedModel, run_dir: Path,
                    fields: dict[str, Any], episodes: int, eval_seed: int, progress: bool,
                    device: str = "cpu") -> Any:
    """Train/build a policy inside the shared model; fills imagined steps and the dream return
    (`benchmarks.dream_return`, from the first real evaluation seeds, `eval_seed` on)."""
    method = spec.method
    if method in ("random_shooting", "cem", "mppi"):
        from agents.planning import Planner
        from agents.planning_config import parse_planner_spec

        cfg = parse_planner_spec(f"{method}:{settings.planner}")
        if cfg.method == "random":  # same imagined steps per action as CEM/MPPI
            cfg = replace(cfg, num_candidates=cfg.num_candidates * cfg.iterations, iterations=1)
        planner = Planner.from_checkpoint(shared.checkpoint, cfg, device=device)
        fields["imagined_steps"] = planner.imagined_steps_per_action  # per real action
        return planner
    if method == "dreamer_offline":
        from agents.dreamer import DreamerConfig, DreamerPolicy
        from agents.train_agent import train_dreamer_offline

        agent, loaded, _ = train_dreamer_offline(str(shared.checkpoint), run_dir / "agent",
                                                 settings.imagined_steps, spec.seed, device,
                                                 agent_cfg=DreamerConfig(**settings.dreamer),
                                                 progress=progress)
        fields["imagined_steps"] = settings.imagined_steps
        policy = DreamerPolicy(agent, loaded.model)
        fields["dream_return"] = dream_return(policy, LatentActor(agent), shared.checkpoint, spec.task,
                                              min(episodes, 10), eval_seed, device=device)
        return policy
    if "_imagined_" in method:
        from agents.sb3 import SB3Config, train_sb3_in_imagination

        algo, _, obs_mode = method.split("_", 2)
        cfg = SB3Config(algo=algo, obs_mode=obs_mode, steps=settings.imagined_steps,
                        seed=spec.seed, eval_episodes=min(episodes, 5), progress=progress, device=device)
        out = train_sb3_in_imagination(shared.checkpoint, cfg, run_dir, spec.task)
        fields["imagined_steps"] = out["imagined_steps"]
        from agents.sb3 import load_sb3_model

        model = load_sb3_model(out["path"], spec.task, device)[0]
        policy = load_policy(out["path"], spec.task, device=device)
        fields["dream_return"] = dream_return(
            policy, model, shared.checkpoint, spec.task, min(episodes, 10), eval_seed, obs_mode,
            cfg.frame_stack if obs_mode == "pixels" else 1, device=device)
        return policy
    raise ValueError(f"unknown method {method!r}")


def run_suite(suite: Suite, results_dir: Path, work: Path, progress: bool = True,
              device: str = "cpu") -> list[Path]:
    """Run every unfinished cell of `suite` with models on `device`; returns the result files
    (finished and new).

    Holds the writer locks of `results_dir` and `work` (`world_models.locks`): a second suite
    writing either folder is refused."""
    with suite_locks(results_dir, work):
        return _run_suite(suite, results_dir, work, progress, device)


@contextlib.contextmanager
def suite_locks(results_dir: Path, work: Path) -> Iterator[None]:
    """Hold the writer locks of a suite's `results_dir` and `work` folders for the block (a
    second suite writing either is refused), with the temporaries a killed write left in the
    results folder cleared."""
    hint = "; or pass other --results/--work folders"
    with contextlib.ExitStack() as locks:
        locks.enter_context(writer_lock(results_dir, f"results folder {results_dir}", hint))
        if Path(work).resolve() != Path(results_dir).resolve():
            locks.enter_context(writer_lock(work, f"work folder {work}", hint))
        for folder in (results_dir, results_dir / "videos"):  # left by a killed write
            remove_temporaries(folder)
        yield


def _run_suite(suite: Suite, results_dir: Path, work: Path, progress: bool, device: str) -> list[Path]:
    device = str(resolve_device(device))
    paths = []
    specs = expand(suite)
    for i, spec in enumerate(specs, 1):
        path = result_path(results_dir, spec)
        label = (f"[{i}/{len(specs)}] {spec.task} {spec.method} seed={spec.seed} budget={spec.budget}"
                 + ("" if model_free(spec.method) else f" model={spec.family}/{spec.preset}"))
        if path.exists():
            print(f"{label}: done already, skipped")
            paths.append(path)
            continue
        if not method_fits(spec.method, spec.task):
            print(f"{label}: does not fit this task's action space, skipped")
            continue
        print(f"{label}: running")
        result = execute(spec, suite.settings, work, results_dir, progress, device)
        result.save(path)
        print(f"{label}: real return {result.final.mean:.1f} (IQM {result.final.iqm:.1f}), "
              f"{result.wall_time / 60:.1f} min")
        paths.append(path)
    if suite.settings.family_videos:
        for video in write_family_videos(suite, results_dir, work, device):
            print(f"real | families video: {video}")
    return paths
