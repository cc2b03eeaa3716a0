"""`vwm bench families` end to end at tiny sizes (~15 s): rssm and the test-only windowed family."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from benchmarks.cli import main as vwm
from benchmarks.results_schema import family_video_stem, load_results
from benchmarks.suite_spec import SuiteSettings
from benchmarks.suites import CARTPOLE, SUITES
from tests.windowed_family import WindowedFamily
from world_models import families

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def tiny_families_suite():
    """The families suite at test sizes (one task, seed and budget, two cheap methods)."""
    return replace(
        SUITES["families"], tasks=(CARTPOLE,), methods=("random", "cem"), seeds=(0,), budgets=(400,),
        presets=("tiny",), families=("rssm", "windowed"),
        settings=SuiteSettings(
            model_steps=4, model_seconds=1.0, model_batch=2, model_seq=6, eval_episodes=2,
            planner="horizon=3,candidates=8,iterations=1", throughput_envs=8, throughput_seconds=0.1,
            pixel_throughput_envs=(1, 4), video_steps=8, family_videos=True),
    )


def test_tiny_families_suite_writes_the_families_report_and_video(tmp_path, monkeypatch):
    monkeypatch.setitem(families.FAMILIES, "windowed", WindowedFamily())
    monkeypatch.setitem(SUITES, "families", tiny_families_suite())
    results = tmp_path / "results"
    code = vwm(["bench", "families", "--results", str(results), "--work", str(tmp_path / "work"),
                "--no-progress"])
    assert code == 0
    runs = load_results(results)
    assert sorted((r.method, r.family) for r in runs) == [
        ("cem", "rssm"), ("cem", "windowed"), ("random", "rssm")]
    for r in runs:
        if r.method == "cem":
            assert {"ssim_h1", "psnr_h1"} <= set(r.fidelity)
            assert r.model_training["seconds"] >= 1.0 and r.model_training["steps"] >= 1
            assert {"imagined_frames_per_s_n1", "imagined_frames_per_s_n4"} <= set(r.throughput)
    stem = family_video_stem(CARTPOLE, 400, "tiny", 0)
    for ext in ("mp4", "gif", "png"):
        assert (results / f"{stem}.{ext}").stat().st_size > 0
    text = (results / "report" / "README.md").read_text()
    families_part = text[text.index("## Model families side by side"):]
    assert "| Metric | rssm | windowed |" in families_part
    assert "| SSIM h1 |" in families_part and "| Termination precision |" in families_part
    assert "| Method | no model | rssm | windowed |" in families_part
    assert f"{stem}.gif" in families_part


def test_label_episodes_train_a_family_on_frames_then_fit_its_actions(tmp_path, monkeypatch):
    """A family listed in `label_episodes` learns without actions (as from video), then its
    real-action map is fitted on that many labelled episodes; its agents act in real actions."""
    suite = tiny_families_suite()
    suite = replace(suite, families=("genie",), settings=replace(suite.settings, label_episodes={"genie": 2},
                                                                  pixel_throughput_envs=()))
    monkeypatch.setitem(SUITES, "families", suite)
    results = tmp_path / "results"
    assert vwm(["bench", "families", "--results", str(results), "--work", str(tmp_path / "work"),
                "--no-progress"]) == 0
    (run,) = [r for r in load_results(results) if r.method == "cem"]
    assert run.family == "genie" and run.model_training["label_episodes"] == 2
    assert 0.0 <= run.model_training["label_probe_accuracy"] <= 1.0
    assert "psnr_h1" in run.fidelity
    fitted = next((tmp_path / "work").glob("model__*genie*/fitted"))
    config = json.loads((fitted / "config.json").read_text())
    assert config["spec"]["hparams"]["action_mode"] == "real" and config["action_fit"]["episodes"] == 2


def test_action_free_suite_builds_every_family_on_its_40px_frames():
    """The headline suite's task draws 40x40 frames: each family builds from the suite's own
    overrides there (genie: one 4x4 token per MinAtar cell), and genie learns from 5 labels."""
    import gymnasium as gym

    import video_envs  # noqa: F401
    from benchmarks.shared_model import model_overrides
    from benchmarks.suite_spec import validate_suite
    from benchmarks.suites import BREAKOUT_CELLS, get_suite
    from world_models.families import build_model, make_spec

    suite = validate_suite(get_suite("action_free"))
    assert suite.tasks == (BREAKOUT_CELLS,) and suite.settings.label_episodes == {"genie": 5}
    env = gym.make(BREAKOUT_CELLS)
    shape, actions = env.observation_space.shape, int(env.action_space.n)
    assert shape == (40, 40, 3) and actions == 3
    for family in suite.families:
        overrides = json.loads(model_overrides(suite.settings, family, BREAKOUT_CELLS) or "{}")
        model = build_model(make_spec(family, shape, "discrete", actions, overrides=overrides))
        frames = torch.zeros(1, model.spec.context_len, *shape, dtype=torch.uint8)
        acts = torch.zeros(1, model.spec.context_len, dtype=torch.long)
        with torch.inference_mode():
            state = model.init_state(frames, acts)
            assert model.decode(state).shape == (1, *shape), family
    genie = json.loads(model_overrides(suite.settings, "genie", BREAKOUT_CELLS))
    assert genie["patch"] == 4
