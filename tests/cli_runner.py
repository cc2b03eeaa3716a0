"""Run the `vwm` command line in-process from tests."""

from __future__ import annotations

from benchmarks.cli import main


def run_vwm(argv: list[str], capsys) -> tuple[int, list[str]]:
    """Exit status and stderr lines of `vwm ARGV` run in-process."""
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    return code, [line for line in capsys.readouterr().err.splitlines() if line.strip()]
