"""The family throughput benchmark runs on tiny models and writes its report."""

from __future__ import annotations

import json

import pytest

from benchmarks import bench_family_speed


def test_reports_each_variant_against_the_real_task_and_the_rssm(tmp_path):
    out = tmp_path / "speed.json"
    report = bench_family_speed.main([
        "--preset", "tiny", "--envs", "1,2", "--seconds", "0.05", "--rounds", "1",
        "--variant", "rssm=rssm", "--variant", 'wide=rssm:{"deter": 64}', "--json", str(out),
    ])
    rows = report["results"]
    assert [r["variant"] for r in rows][1:] == ["rssm", "rssm", "wide", "wide"]
    assert all(r["steps_per_s"] > 0 for r in rows)
    assert rows[3]["vs_rssm"] == pytest.approx(rows[3]["steps_per_s"] / rows[1]["steps_per_s"])
    assert json.loads(out.read_text())["benchmark"] == "family_speed"


def test_a_bad_variant_is_named():
    with pytest.raises(SystemExit):
        bench_family_speed.main(["--variant", "nofamily"])
