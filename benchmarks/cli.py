"""The `vwm` command: one subcommand per pipeline stage, options from config dataclasses."""

from __future__ import annotations

import argparse
import importlib
import sys
import typing
from typing import NamedTuple

from benchmarks.cliargs import OneLineParser, add_dataclass_arguments, dataclass_from_args
from world_models.locks import LockedError


class Command(NamedTuple):
    """Where a subcommand lives: ``module.config_class`` and ``module.function(cfg)``."""

    module: str
    config: str
    function: str
    help: str


COMMANDS: dict[str, Command] = {
    "collect": Command(
        "video_envs.collect", "CollectConfig", "collect_from_config",
        "Record a real task into a local Minari dataset.",
    ),
    "train-model": Command(
        "world_models.train", "TrainConfig", "train_from_config",
        "Train a video world model on a dataset.",
    ),
    "train-reward": Command(
        "world_models.train_reward", "TrainRewardConfig", "train_reward_from_config",
        "Fit a reward/termination predictor overlay onto any model checkpoint.",
    ),
    "fit-actions": Command(
        "world_models.fit_actions", "FitActionsConfig", "fit_actions_from_config",
        "Map a genie model's latent actions to a task's real actions from a few labelled episodes.",
    ),
    "dream": Command(
        "video_envs.dream", "DreamConfig", "dream_from_config",
        "Real | imagined side-by-side video from one start and the same actions.",
    ),
    "train-agent": Command(
        "agents.train_agent", "TrainAgentConfig", "train_agent_from_config",
        "Train an agent inside a world model (Dreamer, SB3) or online.",
    ),
    "evaluate": Command(
        "agents.evaluate", "EvaluateConfig", "evaluate_from_config",
        "Evaluate a policy on the real task.",
    ),
    "bench": Command(
        "benchmarks.bench", "BenchConfig", "bench_from_config",
        "Run a benchmark suite (resumable) and build its report.",
    ),
    "run": Command(
        "benchmarks.pipeline", "RunConfig", "run_from_config",
        "The whole pipeline on a default task: collect, model, agents, evaluation, report.",
    ),
}


def _load(command: Command):
    try:
        module = importlib.import_module(command.module)
        return getattr(module, command.config), getattr(module, command.function)
    except (ImportError, AttributeError):
        if importlib.util.find_spec(command.module) is not None:
            raise
        return None


def _takes_family(config: type) -> bool:
    """Whether a command's config (or a config nested in it) has a model-family option."""
    import dataclasses

    fields = dataclasses.fields(config)
    return any(f.name in ("family", "families") for f in fields) or any(
        f.metadata.get("flatten") and _takes_family(typing.get_type_hints(config)[f.name]) for f in fields
    )


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; options are generated only for subcommand `only` (fast --help)."""
    parser = OneLineParser(
        prog="vwm",
        description="Learned video world models as Gymnasium environments.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, command in COMMANDS.items():
        p = sub.add_parser(name, help=command.help, description=command.help)
        if name == only:
            loaded = _load(command)
            if loaded is not None:
                add_dataclass_arguments(p, loaded[0])
                if _takes_family(loaded[0]):
                    from world_models.families import describe_families

                    p.epilog = describe_families()
                    p.formatter_class = argparse.RawDescriptionHelpFormatter
    return parser


def user_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean bad input (options, files, env ids), reported as one line with exit
    status 1: ValueError (CheckpointError included), OSError (missing or unreadable files),
    FloatingPointError (a diverged run), Gymnasium's errors (a bad seed, an unknown id) and
    `LockedError` (another process writes the same folder); `SaveError` is an OSError."""
    from gymnasium.error import Error as GymnasiumError

    return (ValueError, OSError, FloatingPointError, GymnasiumError, LockedError)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `vwm` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    only = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(only if only in COMMANDS else None)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    loaded = _load(COMMANDS[args.command])
    if loaded is None:
        print(f"vwm {args.command}: not built yet in this version of vwm.", file=sys.stderr)
        return 2
    config_cls, function = loaded
    cfg = dataclass_from_args(config_cls, args)
    try:
        if isinstance(getattr(cfg, "device", None), str):
            from world_models.device import resolve_device

            resolve_device(cfg.device)  # a bad --device is a one-line error, whatever the command
        result = function(cfg)
    except Exception as error:
        if not isinstance(error, user_errors()):
            raise  # a bug: keep the traceback
        message = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
        print(f"vwm {args.command}: error: {message}", file=sys.stderr)  # one line
        return 1
    return int(result) if isinstance(result, int) else 0


if __name__ == "__main__":
    raise SystemExit(main())
