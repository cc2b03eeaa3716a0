"""`vwm run --preset smoke`: the whole pipeline end to end, and resuming a suite."""

from __future__ import annotations

import json

import pytest

from benchmarks import runner
from benchmarks.cli import main as vwm
from benchmarks.results_schema import load_results


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    import os

    out = tmp_path_factory.mktemp("smoke")
    cwd = os.getcwd()
    os.chdir(out.parent)
    try:  # a relative --out, as users type it
        assert vwm(["run", "--preset", "smoke", "--out", out.name, "--no-progress"]) == 0
    finally:
        os.chdir(cwd)
    return out


def test_smoke_pipeline_writes_report_with_table_plot_video(smoke_run):
    report = (smoke_run / "report" / "README.md").read_text()
    assert "| Method |" in report
    for method in ("random", "ppo_real", "dreamer", "ppo_imagined_latent", "cem"):
        assert f"| {method} |" in report
    pngs = list((smoke_run / "report").glob("*.png"))
    assert pngs and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    videos = list((smoke_run / "results" / "videos").glob("*"))
    assert {v.suffix for v in videos} == {".mp4", ".gif"}
    assert all(v.stat().st_size > 0 for v in videos)
    results = load_results(smoke_run / "results")
    assert len(results) == 5
    for r in results:
        assert len(r.final.returns) == 3
        assert r.versions["torch"] and r.config_hash and r.hardware["cores"]


def test_rerun_skips_finished_runs(smoke_run, monkeypatch, capsys):
    def fail(*args, **kwargs):
        raise AssertionError("a finished run was executed again")

    monkeypatch.setattr(runner, "execute", fail)
    before = {p: p.read_text() for p in (smoke_run / "results").glob("*.json")}
    assert vwm(["run", "--preset", "smoke", "--out", str(smoke_run), "--no-progress"]) == 0
    assert "done already" in capsys.readouterr().out
    assert before == {p: p.read_text() for p in (smoke_run / "results").glob("*.json")}


def test_killed_suite_resumes_missing_runs(smoke_run, tmp_path, monkeypatch):
    """Removing one result (a run killed before saving) re-runs only that one."""
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(smoke_run, copy)
    missing = next((copy / "results").glob("*__random__*.json"))
    missing.unlink()
    executed = []
    original = runner.execute

    def spy(spec, *args, **kwargs):
        executed.append(spec.method)
        return original(spec, *args, **kwargs)

    monkeypatch.setattr(runner, "execute", spy)
    assert vwm(["run", "--preset", "smoke", "--out", str(copy), "--no-progress"]) == 0
    assert executed == ["random"]
    assert json.loads(missing.read_text())["method"] == "random"


def test_bench_report_only_and_unknown_suite(smoke_run, tmp_path, capsys):
    assert vwm(["bench", "smoke", "--results", str(smoke_run / "results"), "--report"]) == 0
    assert (smoke_run / "results" / "report" / "README.md").is_file()
    assert vwm(["bench", "nope", "--results", str(tmp_path)]) == 1
    assert "unknown suite" in capsys.readouterr().err
