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
