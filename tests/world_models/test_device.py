"""The one device resolver behind every --device option."""

from __future__ import annotations

import pytest
import torch

from benchmarks.cli import COMMANDS, build_parser
from benchmarks.cli import main as vwm
from world_models.device import check_device_name, resolve_device

MODEL_COMMANDS = ["collect", "train-model", "train-reward", "fit-actions", "dream", "train-agent",
                  "evaluate", "bench", "run"]


def test_auto_resolves_to_what_this_machine_has():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("CPU") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "tpu", "", "cpu:0 "])
def test_bad_names_are_named_in_the_error(name):
    with pytest.raises(ValueError, match="--device must be auto, cpu, cuda or cuda:N"):
        resolve_device(name)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_cuda_without_cuda_is_a_clear_error():
    with pytest.raises(ValueError, match="CUDA is not available here"):
        resolve_device("cuda")
    assert check_device_name("cuda:1") == "cuda:1"  # a Ray driver may name its workers' GPUs


@pytest.mark.parametrize("command", MODEL_COMMANDS)
def test_every_model_command_defaults_to_auto(command):
    assert command in COMMANDS
    sub = next(a for a in build_parser(command)._actions if a.dest == "command").choices[command]
    option = sub._option_string_actions["--device"]
    assert option.default == "auto" and "cuda:N" in option.help


@pytest.mark.parametrize("argv", [
    ["train-model", "--dataset", "vwm/none/random-v0", "--out", "OUT"],
    ["collect", "--task", "vwm/CartPolePixels-v0", "--dataset", "vwm/cartpole/x-v0"],
    ["evaluate", "--task", "vwm/CartPolePixels-v0"],
    ["dream", "--checkpoint", "nowhere", "--out", "OUT"],
    ["bench", "smoke", "--results", "OUT", "--work", "OUT"],
])
def test_cli_refuses_a_bad_device_before_any_work(argv, tmp_path, capsys):
    argv = [str(tmp_path / "out") if a == "OUT" else a for a in argv]
    assert vwm([*argv, "--device", "gpu"]) == 1
    assert "--device must be auto, cpu, cuda or cuda:N, got 'gpu'" in capsys.readouterr().err
