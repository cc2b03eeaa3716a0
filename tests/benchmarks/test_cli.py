"""The `vwm` command line: help lists what a user can pick."""

from __future__ import annotations

import pytest

from benchmarks.cli import main
from world_models.families import family_names


@pytest.mark.parametrize("command", ["train-model", "train-agent", "bench", "run"])
def test_help_lists_the_registered_families(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = capsys.readouterr().out
    assert "--family" in out
    for name in family_names():
        assert f"{name}: presets tiny, small, medium" in out


@pytest.mark.parametrize("command", ["train-agent", "bench", "run"])
def test_commands_that_promise_reproducible_runs_pin_the_threads(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert "--threads" in capsys.readouterr().out


def test_train_agent_runs_with_the_given_thread_count(monkeypatch):
    import torch

    import agents.train_agent as train_agent

    seen = []
    monkeypatch.setattr(train_agent, "_train_agent", lambda cfg: seen.append(torch.get_num_threads()))
    before = torch.get_num_threads()
    train_agent.train_agent_from_config(train_agent.TrainAgentConfig(threads=1))
    assert seen == [1] and torch.get_num_threads() == before


def test_bench_help_lists_every_suite(capsys):
    from benchmarks.suites import SUITES

    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for name in SUITES:
        assert name in out, name
    assert "families (model families side by side" in out
