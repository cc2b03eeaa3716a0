"""Wrong command-line arguments and hostile result JSONs: one-line errors, nothing written.

Every case runs `vwm` in-process from an empty folder and checks: exit status 2 (usage error)
or 1 (a value that cannot work), exactly one line on stderr naming the problem, no traceback,
and no file left behind (no half-made run folder, dataset or report).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_runner import run_vwm

CARTPOLE = "vwm/CartPolePixels-v0"
COLLECT = ["collect", "--task", CARTPOLE, "--dataset", "vwm/cart/random-v0", "--no-progress"]
TRAIN = ["train-model", "--preset", "tiny", "--steps", "2", "--out", "run", "--holdout-episodes", "0",
         "--no-progress", "--no-tensorboard"]
EVALUATE = ["evaluate", "--task", CARTPOLE, "--episodes", "1", "--json"]

BAD_ARGS: list[tuple[list[str], int, str]] = [
    (["nosuch"], 2, "invalid choice: 'nosuch'"),
    ([*COLLECT, "--steps", "abc"], 2, "argument --steps: invalid int value: 'abc'"),
    ([*COLLECT, "--steps", "1.5"], 2, "invalid int value: '1.5'"),
    ([*COLLECT, "--size", "big"], 2, "argument --size: invalid int value"),
    ([*COLLECT, "--num-envs", "-1"], 1, "num_envs must be >= 1, got -1"),
    ([*COLLECT, "--steps", "0"], 1, "steps must be a positive integer"),
    ([*COLLECT, "--size", "-3"], 1, "size must be positive"),
    (["collect", "--task", "vwm/Nope-v0", "--dataset", "vwm/a/b-v0"], 1, "unknown task id 'vwm/Nope-v0'"),
    (["collect", "--task", CARTPOLE, "--dataset", "bad id"], 1, "bad dataset id 'bad id'"),
    ([*COLLECT, "--policy", "nothing.zip"], 1, "policy must be 'random' or the path"),
    ([*TRAIN, "--dataset", "vwm/x/y-v0", "--lr", "abc"], 2, "argument --lr: invalid float value"),
    ([*TRAIN, "--dataset", "vwm/x/y-v0", "--steps", "-5"], 1, "--steps must be >= 1, got -5"),
    ([*TRAIN, "--dataset", "vwm/x/y-v0", "--batch-size", "0"], 1, "--batch-size must be >= 1"),
    ([*TRAIN, "--dataset", "vwm/x/y-v0", "--lr", "nan"], 1, "--lr must be a positive number"),
    ([*TRAIN, "--dataset", "vwm/x/y-v0", "--checkpoint-every", "0"], 1, "--checkpoint-every must be >= 1"),
    ([*TRAIN, "--dataset", "vwm/x/y-v0", "--device", "banana"], 1, "got 'banana'"),
    ([*TRAIN, "--dataset", "vwm/x/y-v0"], 1, "no local Minari dataset 'vwm/x/y-v0'"),
    ([*TRAIN, "--action-space", "weird", "--videos", "missing.mp4"], 1, "no video file or folder"),
    (["train-model", "--preset", "tiny"], 1, "nothing to train on"),
    ([*EVALUATE, "--num-envs", "0"], 1, "num_envs must be >= 1"),
    ([*EVALUATE, "--episodes", "-3"], 1, "episodes must be >= 1"),
    ([*EVALUATE, "--seed", "-1"], 1, "Seed must be greater or equal to zero"),
    (["evaluate", "--task", "vwm/Nope-v0"], 1, "unknown task 'vwm/Nope-v0'"),
    ([*EVALUATE, "--policy", "cem:horizon=abc", "--checkpoint", "ckpt"], 1, "bad value 'abc' for horizon"),
    ([*EVALUATE, "--policy", "missing/x.zip"], 1, "policy file not found"),
    (["train-agent", "--checkpoint", "ckpt", "--algo", "nope"], 1, "unknown --algo 'nope'"),
    (["train-agent", "--checkpoint", "ckpt", "--steps", "-1"], 1, "--steps must be >= 1"),
    (["dream", "--checkpoint", "missing"], 1, "checkpoint not found"),
    (["dream"], 2, "the following arguments are required: --checkpoint"),
    (["bench", "nosuchsuite", "--report"], 1, "unknown suite 'nosuchsuite'"),
    (["bench", "smoke", "--threads", "x"], 2, "invalid int value: 'x'"),
    (["bench", "smoke", "--family", "nope", "--report"], 1, "unknown model families ['nope']"),
    (["run", "--preset", "huge"], 2, "invalid choice: 'huge'"),
    (["train-reward", "--checkpoint", "ckpt"], 2, "required: --dataset"),
]
"""(argv, exit status, fragment of the one-line error) for wrong command-line arguments."""

BAD_OVERRIDES: list[tuple[str, str]] = [
    ("{bad json", "--overrides must be a JSON object"),
    ("[1, 2]", "--overrides must be a JSON object"),
    ('{"bogus": 1}', "unknown hyper-parameters ['bogus']"),
    ('{"deter": "big"}', "'deter' of model family 'rssm' must be of type int"),
    ('{"deter": -5}', "deter must be >= 1"),
    ('{"image_size": 3}', "image_size 3 must divide"),
]
"""``--overrides`` values (on a real dataset) and their errors."""


def assert_one_line_error(code: int, lines: list[str], expected_code: int, fragment: str) -> None:
    assert code == expected_code, (code, lines)
    assert len(lines) == 1 and lines[0].startswith("vwm"), lines
    assert "error:" in lines[0] and fragment in lines[0], lines
    assert "Traceback" not in lines[0]


@pytest.mark.parametrize(("argv", "code", "fragment"), BAD_ARGS,
                         ids=[" ".join(argv[:1] + argv[-2:]) for argv, _, _ in BAD_ARGS])
def test_bad_arguments_give_one_line_errors(argv, code, fragment, tmp_path, monkeypatch, capsys,
                                            _minari_root):
    monkeypatch.chdir(tmp_path)
    assert_one_line_error(*run_vwm(argv, capsys), code, fragment)
    assert not any(tmp_path.iterdir()), list(tmp_path.iterdir())  # nothing half-written
    assert not any(_minari_root.iterdir())


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory) -> tuple[Path, str]:
    """A Minari root holding a 60-step CartPole dataset of 16x16 frames."""
    from video_envs.collect import CollectConfig, collect, minari_root

    root = tmp_path_factory.mktemp("minari_bad_cli")
    with minari_root(root):  # restores MINARI_DATASETS_PATH, set or not
        collect(CollectConfig(task=CARTPOLE, dataset="vwm/cart/random-v0", steps=60, num_envs=2, size=16,
                              progress=False))
    return root, "vwm/cart/random-v0"


@pytest.mark.parametrize(("overrides", "fragment"), BAD_OVERRIDES)
def test_bad_overrides_give_one_line_errors(overrides, fragment, tiny_dataset, tmp_path, monkeypatch, capsys):
    root, dataset = tiny_dataset
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    monkeypatch.chdir(tmp_path)
    code, lines = run_vwm([*TRAIN, "--dataset", dataset, "--overrides", overrides], capsys)
    assert_one_line_error(code, lines, 1, fragment)
    assert not (tmp_path / "run").exists()


def test_usage_error_in_a_real_process_has_no_traceback(tmp_path):
    done = subprocess.run([sys.executable, "-m", "benchmarks.cli", "evaluate", "--task", CARTPOLE,
                           "--episodes", "many"], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "vwm evaluate: error: argument --episodes: invalid int value: 'many' (see vwm evaluate --help)"]


# ------------------------------------------------------------------ result JSONs
def good_result() -> dict:
    """A valid result record (the smallest one the schema accepts)."""
    return {"schema": 1, "suite": "smoke", "task": CARTPOLE, "method": "random", "seed": 0,
            "real_step_budget": 100, "model_preset": "tiny", "curve": [[100, 9.0]],
            "final": {"returns": [9.0, 10.0], "lengths": [9, 10], "eval_seeds": [0, 1], "mean": 9.5,
                      "iqm": 9.5},
            "real_steps": 100, "imagined_steps": 0, "wall_time": 1.0, "versions": {}, "config": {},
            "config_hash": "0" * 12, "hardware": {}}


def edited(**changes) -> bytes:
    record = good_result()
    for key, value in changes.items():
        if key.startswith("final_"):
            record["final"][key[6:]] = value
        elif value is None:
            record.pop(key)
        else:
            record[key] = value
    return json.dumps(record).encode()


BAD_RESULTS: dict[str, tuple[bytes, str]] = {
    "truncated": (json.dumps(good_result()).encode()[:80], "invalid JSON"),
    "empty": (b"", "invalid JSON"),
    "binary": (bytes(range(256)), "not UTF-8"),
    "array": (b"[1, 2]", "expected a JSON object"),
    "missing key": (edited(final=None), "missing required key(s) ['final']"),
    "other schema": (edited(schema=2), "schema 2 is not supported"),
    "unknown key": (edited(extra=1), "unknown key(s) ['extra']"),
    "seed not a number": (edited(seed="abc"), "'seed' must be int"),
    "returns not numbers": (edited(final_returns=["a"]), "'final.returns' must be a list of numbers"),
    "curve not pairs": (edited(curve=[[1, 2, 3]]), "'curve' must be a list of"),
    "curve not numbers": (edited(curve=[["x", 1]]), "'curve' must hold"),
    "wall time not a number": (edited(wall_time=[1]), "'wall_time' must be int or float"),
    "fidelity not numbers": (edited(fidelity={"psnr_h1": "high"}), "values of 'fidelity' must be numbers"),
}
"""Hostile or broken result files and a fragment of their error."""


@pytest.mark.parametrize("name", list(BAD_RESULTS))
def test_bad_result_files_stop_the_report_before_it_is_written(name, tmp_path, capsys):
    content, fragment = BAD_RESULTS[name]
    results = tmp_path / "results"
    results.mkdir()
    (results / "ok.json").write_text(json.dumps(good_result()))
    bad = results / "bad.json"
    bad.write_bytes(content)
    code, lines = run_vwm(["bench", "smoke", "--report", "--results", str(results)], capsys)
    assert_one_line_error(code, lines, 1, fragment)
    assert str(bad) in lines[0]
    assert sorted(p.name for p in results.iterdir()) == ["bad.json", "ok.json"]  # no report folder
