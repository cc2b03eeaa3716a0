"""The genie controllability benchmark runs end to end on the dot task with tiny models."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from benchmarks import bench_genie_control as bench
from benchmarks import control_metrics as cm
from tests.world_models import genie_tasks as dot

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def test_end_to_end_on_the_dot_task(tmp_path):
    dot.register()
    out = bench.main([
        "--tasks", dot.TASK, "--size", "0", "--overrides", "{}", "--fresh-transitions", "30",
        "--steps", "400", "--preset", "tiny", "--model-steps", "12",
        "--batch-size", "4", "--seq-len", "6", "--holdout-episodes", "2", "--max-windows", "16",
        "--work", str(tmp_path / "work"), "--out-dir", str(tmp_path / "results"),
    ])
    written = json.loads((tmp_path / "results" / "genie_control.json").read_text())
    assert written["benchmark"] == "genie_control" and (tmp_path / "results" / "genie_control.md").exists()
    (result,) = out["results"]
    assert set(result) >= {"task", "dataset", "holdout_episodes", "seconds_per_step", "planned_steps",
                           "models", "goals"}
    latent, oracle = result["models"]["latent"], result["models"]["oracle"]
    assert latent["steps_per_stage"] == {"tokenizer": 4, "latent_actions": 4, "dynamics": 4}
    assert oracle["steps_per_stage"] == {"tokenizer": 4, "dynamics": 8}
    for model in (latent, oracle):
        assert np.isfinite(model["tokenizer_psnr"])
        per_t = model["delta_t_psnr"]["per_t"]
        assert set(per_t) == {"1", "4", "15"}
        assert per_t["1"]["n"] > 0 and np.isfinite(per_t["1"]["mean"])  # actions matter on the dot task
        assert per_t["1"]["low"] <= per_t["1"]["mean"] <= per_t["1"]["high"]
    assert latent["code_usage"]["codes_used"] >= 1
    probe = latent["label_probe"]
    assert set(probe["per_episodes"]) == {"1", "5", "20"}
    assert all(0.0 <= row["accuracy"] <= 1.0 for row in probe["per_episodes"].values())
    assert 0.0 < probe["chance"] <= 1.0
    assert set(latent["lag_check"]) == {"-1", "0", "1"}
    assert result["evaluation_data"]["source"] == "fresh" and result["evaluation_data"]["frames"] > 30
    effects = latent["effect_probe"]
    assert effects["test_transitions"] >= 30 and set(effects["per_episodes"]) == {"1", "5", "20"}
    for row in effects["per_episodes"].values():
        assert 0.0 <= row["accuracy"] <= 1.0 and 0.0 < row["chance"] <= 1.0
    assert set(result["goals"]["delta_t_ratio"]) == {"1", "4", "15"}


def test_window_plan_and_statistics():
    plan = cm.window_plan([3, 6], context=2, horizon=3, max_windows=0)
    assert plan.tolist() == [[0, 0, 1], [1, 0, 3], [1, 1, 3], [1, 2, 2], [1, 3, 1]]
    assert len(cm.window_plan([3, 6], 2, 3, max_windows=2)) == 2
    stats = cm.delta_statistics(np.array([1.0, 2.0, 3.0]))
    assert stats["mean"] == 2.0 and stats["n"] == 3 and stats["low"] <= 2.0 <= stats["high"]
    assert cm.delta_statistics(np.array([]))["n"] == 0
    assert cm.majority_fraction(torch.tensor([0, 1, 1, 1])) == 0.75


def test_stage_planning_and_holdout():
    planned = bench.plan_stage_steps({"tokenizer": 0.1, "latent_actions": 1.0}, 300.0,
                                     {"tokenizer": 1000, "latent_actions": 1000})
    assert planned == {"tokenizer": 1000, "latent_actions": 100}
    assert bench.steps_per_stage(150, {"tokenizer": 100, "latent_actions": 100},
                                 ["tokenizer", "latent_actions", "dynamics"]) == {
        "tokenizer": 100, "latent_actions": 50, "dynamics": 0}
    assert bench.holdout_count([7] * 100, 10) == 10
    assert bench.holdout_count([2500] * 8, 10) == 1


def test_a_frame_size_given_by_hand_names_its_own_dataset():
    task = "vwm/MinAtarBreakoutMinimal-v0"
    assert bench.dataset_id(task, 20_000, 0) == "vwm/minatarbreakoutminimal-v0/random-b20000-s0-v0"
    assert bench.dataset_id(task, 20_000, 0, 40) == "vwm/minatarbreakoutminimal-v0/random-b20000-s0-px40-v0"


def test_lag_zero_is_count_pairs_alignment():
    from world_models import families
    from world_models.data import SequenceDataset
    from world_models.fit_actions import count_pairs

    frames, actions = dot.episodes(3, 6, seed=2)
    offsets = np.arange(4) * 6
    data = SequenceDataset(frames.reshape(-1, dot.SIZE, dot.SIZE, 3).numpy(), actions.reshape(-1).numpy(),
                           np.zeros(18, np.float32), np.zeros(18, bool), offsets, "discrete", 2)
    spec = families.make_spec("genie", (dot.SIZE, dot.SIZE, 3), "discrete", 2, preset="tiny",
                              overrides={"action_mode": "latent"})
    model = families.build_model(spec).eval()
    codes = cm.episode_codes(model, data, range(3))
    a, c = cm.episode_pairs(data, codes, 0)
    b, d = count_pairs(model, data, range(3))
    assert torch.equal(a, b) and torch.equal(c, d)
    shifted, _ = cm.episode_pairs(data, codes, 1)
    assert shifted.numel() == 3 * 4  # the last transition of each episode has no successor
