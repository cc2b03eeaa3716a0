"""Reports from result JSONs: aggregates against hand-computed values, plots, schema checks."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from benchmarks.report import (
    aggregate_curves,
    baseline_ratios,
    build_report,
    main,
    seed_bootstrap_iqm,
    summarize,
)
from benchmarks.report_baselines import normalized_score, positive_ratio
from benchmarks.results_schema import RunResult, config_hash, load_results

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TASK = "vwm/CartPolePixels-v0"

# ppo_real: three identical seeds -> pooled IQM of 10,20,30,40 (x3) = 25, CI collapses.
# dreamer: seeds constant at 10, 20, 60 -> per-seed means 10, 20, 60 (mean 30, std 26.46),
# pooled IQM: drop three 10s and three 60s of 12 -> mean(10, 20, 20, 20, 20, 60) = 25.
RETURNS = {
    "ppo_real": [[10.0, 20.0, 30.0, 40.0]] * 3,
    "dreamer": [[10.0] * 4, [20.0] * 4, [60.0] * 4],
}


def _record(method: str, seed: int, returns: list[float]) -> dict:
    config = {"method": method, "task": TASK, "lr": 3e-4}
    model_based = method == "dreamer"
    return {
        "schema": 1, "suite": "default", "task": TASK, "method": method, "seed": seed,
        "real_step_budget": 50000, "model_preset": "small",
        "curve": [[0, 5.0 + seed], [25000, 10.0 + seed], [50000, float(np.mean(returns))]],
        "final": {"returns": returns, "lengths": [int(r) for r in returns],
                  "eval_seeds": list(range(100, 100 + len(returns))),
                  "mean": float(np.mean(returns)), "iqm": 0.0},
        "real_steps": 50000, "imagined_steps": 1234567 if model_based else 0, "wall_time": 100.0 + seed,
        "dream_return": 50.0 + seed if model_based else None,
        "fidelity": {"psnr_h1": 30.0 + seed, "psnr_h5": 25.0, "psnr_h15": 20.0, "reward_mae": 0.1,
                     "termination_accuracy": 0.9} if model_based else None,
        "throughput": {"imagined_steps_per_s": 100000.0, "real_steps_per_s": 500.0} if model_based else None,
        "videos": {"mp4": f"videos/s{seed}.mp4", "gif": f"videos/s{seed}.gif"} if model_based else None,
        "versions": {"torch": "2.13.0", "gymnasium": "1.2.0"}, "config": config,
        "config_hash": config_hash(config), "hardware": {"cpu": "x86_64", "cores": 2, "gpu": None},
    }


@pytest.fixture
def results_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "results"
    (folder / "videos").mkdir(parents=True)
    for method, per_seed in RETURNS.items():
        for seed, returns in enumerate(per_seed):
            (folder / f"{method}_seed{seed}.json").write_text(json.dumps(_record(method, seed, returns)))
            if method == "dreamer":
                for ext in ("mp4", "gif"):
                    (folder / "videos" / f"s{seed}.{ext}").write_bytes(b"not a real video")
    return folder


def _row(markdown: str, method: str) -> list[str]:
    line = next(ln for ln in markdown.splitlines() if ln.startswith(f"| {method} | rssm | small | 3 | "))
    return [c.strip() for c in line.strip("|").split("|")]


def test_seed_bootstrap_iqm_identical_seeds_collapses_to_point():
    assert seed_bootstrap_iqm(RETURNS["ppo_real"]) == (25.0, 25.0, 25.0)


def test_seed_bootstrap_iqm_bounded_by_seed_values():
    point, low, high = seed_bootstrap_iqm(RETURNS["dreamer"], resamples=500)
    assert point == 25.0
    assert 10.0 <= low < point < high <= 60.0


def test_seed_bootstrap_iqm_single_seed_and_empty():
    assert seed_bootstrap_iqm([[1.0, 2.0, 3.0, 100.0]]) == (2.5, 2.5, 2.5)
    with pytest.raises(ValueError):
        seed_bootstrap_iqm([])


def test_aggregate_curves_interpolates_on_common_range():
    x, mean, low, high = aggregate_curves([[[0, 0.0], [10, 10.0]], [[0, 2.0], [5, 4.0], [20, 4.0]]])
    np.testing.assert_allclose(x, [0, 5, 10])
    np.testing.assert_allclose(mean, [1.0, 4.5, 7.0])
    np.testing.assert_allclose(low, [0.0, 4.0, 4.0])
    np.testing.assert_allclose(high, [2.0, 5.0, 10.0])
    assert aggregate_curves([]) is None


def test_ratio_missing_baseline_is_none(results_dir: Path):
    results = [r for r in load_results(results_dir) if r.method == "dreamer"]
    assert baseline_ratios(summarize(results, resamples=50)) == [None]


def test_report_tables_plots_and_determinism(results_dir: Path, tmp_path: Path):
    out = tmp_path / "report"
    readme = build_report(results_dir, out)
    text = readme.read_text()

    ppo = _row(text, "ppo_real")
    assert ppo[4:] == ["25.0 ± 0.0", "25.0 [25.0, 25.0]", "50k", "0", "101.0", "1.00"]
    dreamer = _row(text, "dreamer")
    assert dreamer[4] == "30.0 ± 26.5"
    low, high = map(float, re.fullmatch(r"25\.0 \[(.+), (.+)\]", dreamer[5]).groups())
    assert 10.0 <= low < 25.0 < high <= 60.0
    assert dreamer[6:] == ["50k", "1.23M", "101.0", "1.20"]  # ratio 30 / 25

    assert "| dreamer | rssm | small | 3 | 51.0 | 30.0 | 21.0 |" in text  # dream vs real
    assert "| dreamer | rssm | small | 3 | 31.00 | 25.00 | 20.00 | 0.100 | 0.900 |" in text  # fidelity
    assert "200.0x" in text  # imagined over real throughput
    for link in re.findall(r"\]\(([^)]+\.(?:gif|mp4))\)", text):
        assert (out / link).is_file(), link
    dreamer_hash = config_hash(_record("dreamer", 0, [1.0])["config"])
    for name in ("ppo_real_seed0.json", "dreamer_seed2.json", dreamer_hash):
        assert name in text

    pngs = sorted(p.name for p in out.glob("*.png"))
    assert len(pngs) == 3 and "throughput.png" in pngs
    for name in pngs:
        assert (out / name).read_bytes()[:8] == PNG_MAGIC
        assert f"]({name})" in text

    first_pngs = {n: (out / n).read_bytes() for n in pngs}
    assert build_report(results_dir, out).read_text() == text
    assert {n: (out / n).read_bytes() for n in pngs} == first_pngs


def test_cli_entry(results_dir: Path, tmp_path: Path, capsys):
    main([str(results_dir), str(tmp_path / "cli"), "--baseline", "dreamer"])
    text = (tmp_path / "cli" / "README.md").read_text()
    assert _row(text, "ppo_real")[-1] == "0.83"  # 25 / 30


def test_empty_results_folder_raises(tmp_path: Path):
    with pytest.raises(ValueError, match="no result files"):
        build_report(tmp_path, tmp_path / "out")


def test_loader_rejects_missing_key_naming_file(results_dir: Path):
    record = _record("dreamer", 7, [1.0])
    del record["config_hash"]
    (results_dir / "broken.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match=r"broken\.json.*config_hash"):
        load_results(results_dir)


def test_loader_rejects_missing_final_key(tmp_path: Path):
    record = _record("dreamer", 0, [1.0])
    del record["final"]["returns"]
    (tmp_path / "bad.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match=r"bad\.json.*returns"):
        load_results(tmp_path)


def test_round_trip_and_config_hash(tmp_path: Path):
    record = _record("dreamer", 1, [3.0, 4.0])
    result = RunResult.from_dict(record)
    assert json.loads(result.to_json()) == {**record, "family": "rssm", "model_training": None}  # old files
    path = result.save(tmp_path / result.filename())
    assert RunResult.load(path) == result
    assert config_hash({"a": 1, "b": [1, 2]}) == config_hash({"b": [1, 2], "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})
    assert len(config_hash({})) == 12


def test_two_families_at_one_preset_keep_apart(tmp_path: Path):
    folder = tmp_path / "results"
    folder.mkdir()
    names = set()
    for family in ("rssm", "other"):
        record = {**_record("dreamer", 0, [10.0 if family == "rssm" else 20.0]), "family": family}
        result = RunResult.from_dict(record)
        names.add(result.filename())
        result.save(folder / result.filename())
    assert len(names) == 2 and "dreamer__50000__small__seed0.json" in " ".join(names)
    assert {r.family for r in load_results(folder)} == {"rssm", "other"}
    text = build_report(folder, tmp_path / "report").read_text()
    assert "| dreamer | rssm | small | 1 | 10.0" in text and "| dreamer | other | small | 1 | 20.0" in text


def test_tenx_section_scores_against_the_best_10x_baseline(tmp_path: Path):
    folder = tmp_path / "results"
    folder.mkdir()
    per_method = {"random": [[10.0] * 4] * 3, "ppo_real_10x": [[110.0] * 4] * 3,
                  "dqn_real_10x": [[60.0] * 4] * 3, "dreamer": RETURNS["dreamer"]}
    for method, per_seed in per_method.items():
        for seed, returns in enumerate(per_seed):
            (folder / f"{method}_seed{seed}.json").write_text(json.dumps(_record(method, seed, returns)))
    text = build_report(folder, tmp_path / "report", resamples=200).read_text()
    assert "### Against the 10x real-env baseline (`ppo_real_10x`, IQM 110.0)" in text  # the best
    line = next(ln for ln in text.splitlines() if ln.startswith("| dreamer | rssm | small | 3 | 25.0 ["))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[5] == "0.23"  # IQM 25 / 110
    score, low, high = map(float, re.fullmatch(r"(\S+) \[(\S+), (\S+)\]", cells[6]).groups())
    assert score == 0.15  # (25 - 10) / (110 - 10)
    assert 0.0 <= low < score < high <= 0.5  # the IQM interval [10, 60] mapped the same way
    assert "| random | rssm | small | 3 | 10.0 [10.0, 10.0] | 0.09 | 0.00 [0.00, 0.00] |" in text
    # without a 10x run there is no such table
    assert "10x real-env" not in build_report(_only(folder, tmp_path, "random", "dreamer"),
                                               tmp_path / "r2", resamples=50).read_text()


def _only(folder: Path, tmp_path: Path, *methods: str) -> Path:
    out = tmp_path / "subset"
    out.mkdir()
    for path in folder.glob("*.json"):
        if path.name.rsplit("_seed", 1)[0] in methods:
            (out / path.name).write_text(path.read_text())
    return out


def test_normalized_score_and_ratio_for_negative_returns():
    # Pendulum-like: random -1200, the 10x baseline -200, a method -500
    assert normalized_score(-500.0, -1200.0, -200.0) == pytest.approx(0.7)
    assert positive_ratio(-500.0, -200.0) is None  # a ratio of negative returns reads backwards
    assert positive_ratio(30.0, 120.0) == 0.25
    assert normalized_score(5.0, 3.0, 3.0) is None


def test_the_ratio_column_is_empty_for_negative_returns(tmp_path: Path):
    folder = tmp_path / "acrobot"
    folder.mkdir()
    for method, returns in (("ppo_real", [-500.0] * 4), ("dreamer", [-100.0] * 4)):
        (folder / f"{method}.json").write_text(json.dumps(_record(method, 0, returns)))
    summaries = summarize(load_results(folder), resamples=50)
    assert baseline_ratios(summaries) == [None, None]  # -100 / -500 = 0.2 would read as worse
