"""The suite runner: the family axis (names, validation) and the device reaching every stage."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from benchmarks import runner
from benchmarks.cli import build_parser
from benchmarks.cli import main as vwm
from benchmarks.suite_spec import Suite, SuiteSettings, validate_suite, with_options
from benchmarks.suites import CARTPOLE, SUITES, get_suite
from world_models import families


class _Stop(Exception):
    pass


@pytest.mark.parametrize("command", ["collect", "train-model", "train-reward", "fit-actions",
                                     "train-agent", "evaluate", "dream", "bench", "run"])
def test_every_command_takes_a_device(command):
    parser = build_parser(command)
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    assert "--device" in sub._option_string_actions, command


@pytest.mark.parametrize("argv", [["bench", "smoke"], ["run", "--preset", "smoke"]])
def test_bench_and_run_pass_the_device_to_the_runner(argv, tmp_path, monkeypatch):
    seen = []

    def execute(spec, settings, work, results_dir, progress=True, device="cpu"):
        seen.append(device)
        raise _Stop

    monkeypatch.setattr(runner, "execute", execute)
    monkeypatch.setattr(runner, "resolve_device", torch.device)  # no CUDA here: take the name as is
    monkeypatch.setattr("world_models.device.resolve_device", torch.device)  # the CLI's early check
    with pytest.raises(_Stop):
        vwm([*argv, "--device", "cuda:7", "--no-progress", "--work" if argv[0] == "bench" else "--out",
             str(tmp_path), *(["--results", str(tmp_path / "r")] if argv[0] == "bench" else [])])
    assert seen == ["cuda:7"]


def test_execute_hands_the_device_and_family_to_every_stage(tmp_path, monkeypatch):
    import agents.online
    import video_envs.collect
    import world_models.train

    seen = {}

    def online(cfg, agent_cfg=None):
        seen["online"] = (cfg.device, cfg.family, cfg.overrides)
        raise _Stop

    def collect(cfg, policy=None):
        seen["collect"] = cfg.device

    def train(cfg):
        seen["train"] = (cfg.device, cfg.family, cfg.overrides)
        raise _Stop

    monkeypatch.setattr(agents.online, "run_online", online)
    monkeypatch.setattr(video_envs.collect, "collect", collect)
    monkeypatch.setattr(world_models.train, "train_world_model", train)
    monkeypatch.setattr(runner, "resolve_device", torch.device)  # no CUDA here: take the name as is
    settings = SuiteSettings(model_overrides={"rssm": {"image_size": 32}})
    for method in ("dreamer", "cem"):
        spec = runner.RunSpec("t", "vwm/CartPolePixels-v0", method, 0, 100, "tiny")
        with pytest.raises(_Stop):
            runner.execute(spec, settings, tmp_path / "work", tmp_path / "results", False, "cuda:7")
    assert seen == {"online": ("cuda:7", "rssm", '{"image_size": 32}'), "collect": "cuda:7",
                    "train": ("cuda:7", "rssm", '{"image_size": 32}')}


def test_every_suite_is_valid():
    """Suites may name families not registered yet (validated when run): check the rest."""
    for suite in SUITES.values():
        known = tuple(f for f in suite.families if f in families.family_names())
        if known != suite.families:
            with pytest.raises(ValueError, match="unknown model families"):
                validate_suite(suite)
        with_options(suite, known)


def test_unknown_overrides_and_families_are_named():
    suite = replace(get_suite("quick"), settings=SuiteSettings(model_overrides={"rssm": {"bogus": 1}}))
    with pytest.raises(ValueError, match=r"suite 'quick'.*family 'rssm'.*bogus"):
        runner.expand(suite)
    with pytest.raises(ValueError, match=r"unknown model families \['nope'\]"):
        with_options(get_suite("quick"), ("nope",))
    stray = replace(get_suite("quick"), settings=SuiteSettings(model_overrides={"nope": {}}))
    with pytest.raises(ValueError, match=r"\['nope'\], which the suite does not run"):
        validate_suite(stray)


def replace_name(family, name: str):
    """`family` registered under another name (a second family for tests)."""
    family.name = name
    return family


def test_two_families_get_their_own_runs_files_and_folders(monkeypatch, tmp_path):
    from tests.windowed_family import WindowedFamily

    monkeypatch.setitem(families.FAMILIES, "other", replace_name(WindowedFamily(), "other"))
    suite = Suite("s", ("vwm/CartPolePixels-v0",), ("random", "ppo_real", "dreamer", "cem"), (0,), (100,),
                  families=("rssm", "other"),
                  settings=SuiteSettings(model_overrides={"other": {"hidden": 16}}))
    specs = runner.expand(suite)
    assert [(s.method, s.family) for s in specs] == [
        ("random", "rssm"), ("ppo_real", "rssm"), ("dreamer", "rssm"), ("cem", "rssm"),
        ("dreamer", "other"), ("cem", "other")]
    paths = {runner.result_path(tmp_path, s) for s in specs}
    slugs = {s.slug() for s in specs}
    assert len(paths) == len(slugs) == len(specs)
    name = runner.result_path(tmp_path, specs[2]).name  # rssm runs keep their pre-family names
    assert name == "s__vwm_CartPolePixels-v0__dreamer__100__small__seed0.json"
    assert "dreamer__100__other-small__seed0" in specs[4].slug()
    assert runner.model_overrides(suite.settings, "rssm") is None


def test_task_specific_overrides_apply_over_the_family_ones():
    from benchmarks.shared_model import model_overrides

    settings = SuiteSettings(model_overrides={"rssm": {"image_size": 32, "deter": 64},
                                              "rssm@vwm/MinAtarBreakout-v0": {"deter": 128}})
    assert json.loads(model_overrides(settings, "rssm", "vwm/MinAtarBreakout-v0")) == {
        "image_size": 32, "deter": 128}
    assert json.loads(model_overrides(settings, "rssm", CARTPOLE)) == {"image_size": 32, "deter": 64}
    stray = replace(get_suite("quick"), settings=SuiteSettings(
        model_overrides={"rssm@vwm/MinAtarBreakout-v0": {"deter": 128}}))
    with pytest.raises(ValueError, match="which the suite does not run"):
        validate_suite(stray)
    bad = replace(get_suite("quick"), settings=SuiteSettings(
        model_overrides={f"rssm@{CARTPOLE}": {"bogus": 1}}))
    with pytest.raises(ValueError, match="bogus"):
        validate_suite(bad)


@pytest.mark.parametrize(("name", "budget", "discrete"), [
    ("cartpole", 20_000, True), ("acrobot", 20_000, True), ("pendulum", 20_000, False),
    ("minatar", 50_000, True)])
def test_issue_target_suites(name, budget, discrete):
    from agents.dreamer import DreamerConfig
    from agents.online import OnlineConfig

    suite = get_suite(name)
    assert suite.seeds == (0, 1, 2) and suite.budgets == (budget,)
    assert suite.settings.eval_episodes == 20
    fitting = [m for m in suite.methods if runner.method_fits(m, suite.tasks[0])]
    assert fitting == list(suite.methods)  # every listed method runs on the task
    algos = ("ppo", "dqn") if discrete else ("sac", "ppo")
    assert {"random", "dreamer"} | {f"{a}_real{x}" for a in algos for x in ("", "_10x")} == set(suite.methods)
    OnlineConfig(**suite.settings.online)  # the overrides are loop options
    DreamerConfig(**suite.settings.dreamer)
    assert suite.settings.online.get("action_repeat", 1) == {"pendulum": 2, "acrobot": 4}.get(name, 1)


def test_a_suite_runs_piece_by_piece_with_methods_and_seeds():
    suite = with_options(get_suite("cartpole"), methods=("dreamer", "random"), seeds=(1,))
    assert suite.methods == ("dreamer", "random") and suite.seeds == (1,)
    assert {(s.method, s.seed) for s in runner.expand(suite)} == {("dreamer", 1), ("random", 1)}
    breakout = with_options(get_suite("families"), tasks=("vwm/MinAtarBreakout-v0",))
    assert breakout.tasks == ("vwm/MinAtarBreakout-v0",) and "diffusion@vwm/MinAtarBreakout-v0" in \
        breakout.settings.model_overrides
    with pytest.raises(ValueError, match="unknown methods \\['ppo_rael'\\]"):
        with_options(get_suite("cartpole"), methods=("ppo_rael",))
