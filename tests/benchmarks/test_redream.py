"""`python -m benchmarks.redream` re-measures a finished online run's dream return in place."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.dreamer import DreamerConfig, DreamerPolicy
from agents.online import OnlineConfig, agent_dir, model_dir, run_online
from benchmarks import redream
from benchmarks.dream_return import LatentActor, dream_return
from benchmarks.results_schema import RunResult
from benchmarks.runner import evaluation_seed, result_path
from benchmarks.suite_spec import RunSpec

CHECKED_IN = Path(__file__).parents[2] / "benchmarks/results/cartpole"


def test_redream_rewrites_the_dream_return_of_finished_dreamer_runs(tmp_path, capsys):
    spec = RunSpec("cartpole", "vwm/CartPolePixels-v0", "dreamer", 0, 20_000, "small")
    work, results = tmp_path / "work", tmp_path / "results"
    run_online(OnlineConfig(out=str(work / spec.slug()), seed=0, preset="tiny", prefill=200,
                            steps_per_iteration=200, model_updates=2, agent_updates=2, batch_size=4,
                            seq_len=8, eval_every=0, num_envs=4, progress=False, tensorboard=False,
                            real_steps=400), DreamerConfig(hidden=16, layers=1, batch_size=8, horizon=3))
    template = RunResult.load(result_path(CHECKED_IN, spec))  # a real result, with a former measure
    template.save(result_path(results, spec))
    ppo = RunSpec("cartpole", spec.task, "ppo_real", 0, 20_000, "small")  # not a dreamer run: kept
    RunResult.load(result_path(CHECKED_IN, ppo)).save(result_path(results, ppo))

    redream.main(["cartpole", "--results", str(results), "--work", str(work)])

    policy = DreamerPolicy.load(agent_dir(work / spec.slug()))
    expected = dream_return(policy, LatentActor(policy.agent), model_dir(work / spec.slug()), spec.task,
                            10, evaluation_seed(0))
    updated = RunResult.load(result_path(results, spec))
    assert updated.dream_return == pytest.approx(expected) and expected != template.dream_return
    assert updated.final == template.final  # nothing else changes
    assert RunResult.load(result_path(results, ppo)).dream_return is None
    assert f"dream return {template.dream_return} -> {expected:.1f}" in capsys.readouterr().out
