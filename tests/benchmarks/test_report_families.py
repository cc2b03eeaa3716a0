"""The families section of the report, from hand-written result JSONs."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.report import build_report
from benchmarks.report_families import frame_ratios
from benchmarks.results_schema import config_hash, family_video_stem

TASK = "vwm/CartPolePixels-v0"


def _record(method: str, family: str, seed: int, returns: list[float]) -> dict:
    model_based = method != "ppo_real"
    psnr = 30.0 if family == "rssm" else 20.0
    config = {"method": method, "family": family}
    return {
        "schema": 1, "suite": "families", "task": TASK, "method": method, "seed": seed,
        "real_step_budget": 1000, "model_preset": "tiny", "curve": [[1000, sum(returns) / len(returns)]],
        "final": {"returns": returns, "lengths": [1] * len(returns), "eval_seeds": list(range(len(returns))),
                  "mean": sum(returns) / len(returns), "iqm": 0.0},
        "real_steps": 1000, "imagined_steps": 10, "wall_time": 1.0, "family": family,
        "fidelity": {"psnr_h1": psnr + seed, "psnr_h5": psnr - 5, "psnr_h15": psnr - 10, "ssim_h1": 0.9,
                     "ssim_h5": 0.8, "ssim_h15": 0.5 + 0.1 * seed, "reward_mae": 0.25,
                     "termination_precision": 0.5, "termination_recall": 0.75} if model_based else None,
        "throughput": {"imagined_steps_per_s": 1e5, "real_steps_per_s": 500.0,
                       "imagined_frames_per_s_n1": 250.0, "imagined_frames_per_s_n16": 2000.0,
                       "imagined_frames_per_s_n64": 5000.0} if model_based else None,
        "model_training": ({"seconds": 60.0 + 2 * seed, "steps": 100, "parameters": 1000}
                           if model_based else None),
        "versions": {"torch": "2.13"}, "config": config, "config_hash": config_hash(config),
        "hardware": {"cpu": "x86_64", "cores": 2, "gpu": None},
    }


def _write(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for seed in (0, 1):
        real = _record("ppo_real", "rssm", seed, [20.0, 30.0])
        (folder / f"ppo_real_{seed}.json").write_text(json.dumps(real))
        for family, ret in (("rssm", 40.0), ("other", 10.0)):
            for method in ("ppo_imagined_latent", "cem"):
                record = _record(method, family, seed, [ret + seed, ret + seed])
                (folder / f"{method}_{family}_{seed}.json").write_text(json.dumps(record))
    stem = family_video_stem(TASK, 1000, "tiny", 0)
    (folder / "videos").mkdir()
    for ext in ("gif", "mp4", "png"):
        (folder / f"{stem}.{ext}").write_bytes(b"not a real video")


def _row(text: str, start: str) -> list[str]:
    line = next(ln for ln in text.splitlines() if ln.startswith(start))
    return [c.strip() for c in line.strip("|").split("|")]


def test_families_tables_from_result_files(tmp_path: Path):
    _write(tmp_path / "results")
    text = build_report(tmp_path / "results", tmp_path / "report").read_text()
    text = text[text.index("## Model families side by side"):]
    assert _row(text, "| Metric |") == ["Metric", "other", "rssm"]  # families in name order
    rows = {row[0]: row[1:] for row in (_row(text, f"| {m} |") for m in (
        "PSNR h1 (dB)", "PSNR h15 (dB)", "SSIM h1", "SSIM h5", "SSIM h15", "Reward MAE",
        "Termination precision", "Termination recall", "Imagined frames/s, 1 env (× real)",
        "Imagined frames/s, 16 envs (× real)", "Imagined frames/s, 64 envs (× real)",
        "Training wall-clock (s)", "Parameters"))}
    assert rows["PSNR h1 (dB)"] == ["20.50", "30.50"] and rows["SSIM h15"] == ["0.550", "0.550"]
    assert rows["Termination precision"][1] == "0.500" and rows["Termination recall"][1] == "0.750"
    assert rows["Imagined frames/s, 16 envs (× real)"][1] == "2000 (4.00×)"
    assert rows["Training wall-clock (s)"] == ["61", "61"] and rows["Parameters"] == ["1000", "1000"]
    assert _row(text, "| Action labels |")[1:] == ["all", "all"]  # none trained from video here
    returns = _row(text, "| Method | no model |")
    assert returns == ["Method", "no model", "other", "rssm"]  # families in name order
    cem = _row(text, "| cem |")
    assert cem[1] == "—" and cem[3].startswith("40.5 ± 0.7; IQM 40.5 [40.0, 41.0]")
    assert _row(text, "| ppo_real |")[1].startswith("25.0 ± 0.0; IQM 25.0")
    assert "(../results/videos/families__CartPolePixels-v0__1000__tiny__seed0.gif)" in text
    assert "[film strip](../results/videos/families__CartPolePixels-v0__1000__tiny__seed0.png)" in text


def test_frame_ratios_need_a_real_rate():
    assert frame_ratios({"imagined_frames_per_s_n4": 100.0, "real_steps_per_s": 50.0}) == {4: (100.0, 2.0)}
    assert frame_ratios({"imagined_frames_per_s_n4": 100.0}) == {}
