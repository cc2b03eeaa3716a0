"""`vwm ARGS` in a child process with kill hooks: ``python -m tests.faults.child ARGS``.

Used by the fault tests (`tests.faults.harness`). Each point where a write becomes durable
is an *event*: a rename (``os.rename``/``os.replace``: the commit of an atomic file, or
either rename of a folder swap), a file written with ``Path.write_bytes``/``write_text``
(e.g. the temporary of an atomic JSON, before its rename), a safetensors file written (inside
`save_checkpoint`, an agent save, a loop state commit) and an HDF5 file closed (Minari
datasets); also "locked FOLDER", right after a writer lock is taken. Environment:

- ``VWM_EVENTS=FILE``: append one line per event, ``name<TAB>where`` (the innermost vwm
  functions on the stack), so an uninterrupted run lists its kill points;
- ``VWM_PAUSE_AT=N`` (or ``TEXT#K``: the K-th event whose line contains TEXT) and
  ``VWM_PAUSE_MARK=FILE``: right after that event, write it to FILE and sleep until killed:
  the parent's SIGKILL then lands inside that write.

It also registers two tiny benchmark suites: ``faults`` (random and CEM on a 300-step model)
and ``faults-random`` (random, two seeds).
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from typing import Any

_replace = os.replace
_count = 0
_matches = 0
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _where() -> str:
    """The innermost three vwm functions on the stack, innermost first."""
    frames = [f for f in traceback.extract_stack()[:-3]
              if f.filename.startswith(ROOT) and "/tests/" not in f.filename]
    return " < ".join(f.name for f in reversed(frames[-3:]))


def _pause_here(line: str) -> bool:
    """Whether this event is the one ``VWM_PAUSE_AT`` names."""
    global _matches
    at = os.environ.get("VWM_PAUSE_AT", "")
    if "#" not in at:
        return at.isdigit() and _count == int(at)
    text, k = at.rsplit("#", 1)
    _matches += text in line
    return text in line and _matches == int(k)


def _event(name: str) -> None:
    global _count
    _count += 1
    line = f"{_count}\t{name}\t{_where()}\n"
    log = os.environ.get("VWM_EVENTS")
    if log:
        with open(log, "a") as file:
            file.write(line)
    if _pause_here(line):
        mark = os.environ["VWM_PAUSE_MARK"]
        with open(mark + ".part", "w") as file:
            file.write(line)
        _replace(mark + ".part", mark)
        while True:  # the parent kills us here
            time.sleep(60)


def _name(path: Any) -> str:
    """The last two parts of a path (e.g. ``checkpoint.tmp/model.safetensors``)."""
    parts = os.fspath(path).replace(os.sep, "/").rstrip("/").split("/")
    return "/".join(parts[-2:])


def _base(path: Any) -> str:
    """The last part of a path."""
    return _name(path).rsplit("/", 1)[-1]


def _hook(owner: Any, attribute: str, describe: Any) -> None:
    original = getattr(owner, attribute)

    def hooked(*args: Any, **kwargs: Any) -> Any:
        name = describe(*args)
        result = original(*args, **kwargs)
        _event(name)
        return result

    setattr(owner, attribute, hooked)


def _hook_locks() -> None:
    """An event right after `world_models.locks.writer_lock` takes a lock (before the
    commands import it, so they get the hooked one)."""
    import contextlib

    from world_models import locks

    original = locks.writer_lock

    @contextlib.contextmanager
    def hooked(folder: Any, *args: Any, **kwargs: Any) -> Any:
        with original(folder, *args, **kwargs) as held:
            _event(f"locked {_name(folder)}")
            yield held

    locks.writer_lock = hooked


def install() -> None:
    """Hook the events (see the module docstring)."""
    _hook_locks()
    import pathlib

    import h5py
    import safetensors.torch

    _hook(os, "rename", lambda src, dst, *_: f"rename {_base(src)} -> {_base(dst)}")
    _hook(os, "replace", lambda src, dst, *_: f"replace {_base(src)} -> {_base(dst)}")
    _hook(pathlib.Path, "write_bytes", lambda path, *_: f"write {path.name}")
    _hook(pathlib.Path, "write_text", lambda path, *_, **__: f"write {path.name}")
    _hook(safetensors.torch, "serialize_file", lambda _, file, *__: f"safetensors {_name(file)}")
    _hook(h5py.File, "close", lambda file: f"hdf5 {_name(file.filename) if file.id.valid else '?'}")


def register_suite() -> None:
    """The tiny suites ``faults`` (random and CEM on CartPolePixels, one model of 300 steps)
    and ``faults-random`` (random, seeds 0 and 1)."""
    from benchmarks.suite_spec import Suite, SuiteSettings
    from benchmarks.suites import CARTPOLE, SUITES

    SUITES["faults-random"] = Suite(name="faults-random", tasks=(CARTPOLE,), methods=("random",),
                                    seeds=(0, 1), budgets=(300,), presets=("tiny",),
                                    settings=SuiteSettings(eval_episodes=2))
    SUITES["faults"] = Suite(
        name="faults", tasks=(CARTPOLE,), methods=("random", "cem"), seeds=(0,), budgets=(300,),
        presets=("tiny",),
        settings=SuiteSettings(model_steps=6, model_batch=4, model_seq=8, eval_episodes=2,
                               planner="horizon=2,candidates=8,iterations=1", throughput_envs=8,
                               throughput_seconds=0.05, video_steps=4),
    )


def main(argv: list[str]) -> int:
    """Install the hooks and the suite, then run ``vwm argv``."""
    install()
    register_suite()
    from benchmarks.cli import main as vwm

    return vwm(argv)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
