"""`vwm bench families` end to end at tiny sizes (~15 s): rssm and the test-only windowed family."""

from __future__ import annotations

from dataclasses import replace

import pytest

from benchmarks.cli import main as vwm
from benchmarks.results_schema import family_video_stem, load_results
from benchmarks.suites import CARTPOLE, SUITES, SuiteSettings
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
