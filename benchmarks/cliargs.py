"""Command-line options generated from config dataclasses (one docstring per field)."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import textwrap
import types
import typing
from typing import Any, TypeVar

T = TypeVar("T")


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (``vwm CMD: error: ...``, then a pointer
    to ``--help``) with exit status 2, instead of the whole usage block."""

    def error(self, message: str) -> typing.NoReturn:
        """Print the one-line error and exit with status 2."""
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """The docstring written under each field of a dataclass (its class and bases)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body  # type: ignore[attr-defined]
        for node, nxt in zip(body, body[1:]):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def add_dataclass_arguments(
    parser: argparse.ArgumentParser, cls: type, skip: tuple[str, ...] = (),
    rename: dict[str, str] | None = None, seen: set[str] | None = None,
) -> None:
    """Add one ``--field-name`` option per field of dataclass `cls`, help from its docstring.

    Metadata ``flag`` names the option when the field's name cannot (``async`` is a Python
    keyword); metadata ``const`` makes the option's value optional (``--ray`` alone gives the
    const, ``--ray ADDRESS`` the address; ``metavar`` names the value). A field whose
    metadata has ``flatten`` holds a nested config dataclass: its fields become options too
    (after the outer ones), named as in its metadata's ``rename`` map; a nested field whose
    option the outer class already defines shares that option.
    """
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    seen = set() if seen is None else seen
    rename = rename or {}
    nested = []
    for f in dataclasses.fields(cls):
        if f.name in skip or not f.init:
            continue
        if f.metadata.get("flatten"):
            nested.append(f)
            continue
        dest = rename.get(f.name, f.name)
        if dest in seen:
            continue
        seen.add(dest)
        tp, optional = _unwrap_optional(hints[f.name])
        default = (
            f.default
            if f.default is not dataclasses.MISSING
            else (f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        )
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        positional = bool(f.metadata.get("positional"))
        flag = dest if positional else "--" + f.metadata.get("flag", dest.replace("_", "-"))
        help_text = docs.get(f.name, "")
        if not required:
            help_text += f" (default: {default})"
        kwargs: dict[str, Any] = {"help": help_text}
        if not positional:
            kwargs["dest"] = dest
        origin = typing.get_origin(tp)
        if tp is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif origin in (tuple, list):
            inner = typing.get_args(tp)[0]
            kwargs.update(nargs="+", type=inner)
            if f.metadata.get("repeatable"):  # --x a b --x c -> (a, b, c)
                kwargs["action"] = "extend"
        elif origin is typing.Literal:
            choices = typing.get_args(tp)
            kwargs.update(choices=choices, type=type(choices[0]))
        elif tp in (int, float, str):
            kwargs["type"] = tp
            if "const" in f.metadata:
                kwargs.update(nargs="?", const=f.metadata["const"], metavar=f.metadata.get("metavar"))
        else:
            kwargs["type"] = str
        if positional:
            if not required:
                kwargs.update(nargs="?", default=default)
        elif required:
            kwargs["required"] = True
        else:
            kwargs["default"] = None if kwargs.get("action") == "extend" else default
        parser.add_argument(flag, **kwargs)
    for f in nested:
        add_dataclass_arguments(parser, hints[f.name], rename=f.metadata.get("rename"), seen=seen)


def dataclass_from_args(
    cls: type[T], namespace: argparse.Namespace, rename: dict[str, str] | None = None, **overrides: Any
) -> T:
    """Build `cls` from parsed options (lists become tuples where the field is a tuple; nested
    ``flatten`` fields are built from their own options, see `add_dataclass_arguments`)."""
    hints = typing.get_type_hints(cls)
    rename = rename or {}
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        if f.metadata.get("flatten"):
            values[f.name] = dataclass_from_args(hints[f.name], namespace, f.metadata.get("rename"))
            continue
        dest = rename.get(f.name, f.name)
        if not hasattr(namespace, dest):
            continue
        value = getattr(namespace, dest)
        if value is None and f.metadata.get("repeatable"):
            continue  # not given: the field's default
        tp, _ = _unwrap_optional(hints[f.name])
        if typing.get_origin(tp) is tuple and isinstance(value, list):
            value = tuple(value)
        values[f.name] = value
    values.update(overrides)
    return cls(**values)  # type: ignore[call-arg]
