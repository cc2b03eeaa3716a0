"""Values of the wrong type for every typed option of every `vwm` command, from Hypothesis.

Each int, float or fixed-choice option of each command gets generated text that is not a value
of its type (words, numbers of the other kind, blanks, signs, control characters, any Unicode): exit status 2,
exactly one line on stderr naming the option and the value, and nothing written.
"""

from __future__ import annotations

import argparse

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.cli import COMMANDS, build_parser
from tests.cli_runner import run_vwm

BOUNDED = settings(max_examples=6, deadline=None, database=None, derandomize=True,
                   suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much])


def typed_options() -> list[tuple[str, str, type | None, tuple | None]]:
    """(command, option, int or float, choices) for every option that takes a typed value."""
    found = []
    for command in COMMANDS:
        parser = build_parser(command)
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        for action in sub.choices[command]._actions:
            if not action.option_strings or action.nargs == 0:
                continue
            if action.choices is not None:
                found.append((command, action.option_strings[0], None, tuple(action.choices)))
            elif action.type in (int, float):
                found.append((command, action.option_strings[0], action.type, None))
    return found


OPTIONS = typed_options()


def not_a_value(kind: type | None, choices: tuple | None) -> st.SearchStrategy[str]:
    """Text that option type `kind` (or its `choices`) refuses (given as ``--option=TEXT``)."""
    def refused(text: str) -> bool:
        if "\x00" in text:  # a real command line cannot hold it
            return False
        if choices is not None:
            return text not in choices
        try:
            kind(text)
        except ValueError:
            return True
        return False

    words = st.text(max_size=12)
    numbers = st.floats(allow_nan=False, allow_infinity=False).map(repr)  # e.g. 1.5 for an int option
    odd = st.sampled_from(["", " ", "1e", "0x10", "1,5", "1 2", "ten", "None", "[]", "\t", "3\n4", "½"])
    return st.one_of(odd, words, numbers).filter(refused)


def test_every_command_has_typed_options():
    commands = {command for command, *_ in OPTIONS}
    assert commands == set(COMMANDS), set(COMMANDS) - commands
    assert len(OPTIONS) > 50


@pytest.mark.parametrize(("command", "option", "kind", "choices"), OPTIONS,
                         ids=[f"{c} {o}" for c, o, *_ in OPTIONS])
def test_wrong_typed_values_give_one_usage_line(command, option, kind, choices, tmp_path, monkeypatch,
                                                capsys, _minari_root):
    monkeypatch.chdir(tmp_path)
    expected = "invalid choice" if choices is not None else f"invalid {kind.__name__} value"

    @BOUNDED
    @given(value=not_a_value(kind, choices))
    def check(value):
        code, lines = run_vwm([command, f"{option}={value}"], capsys)
        assert code == 2, (value, lines)
        assert len(lines) == 1 and lines[0].startswith(f"vwm {command}: error: argument {option}"), lines
        assert expected in lines[0] and repr(value) in lines[0], (value, lines)

    check()
    assert not any(tmp_path.iterdir()) and not any(_minari_root.iterdir())  # nothing written
