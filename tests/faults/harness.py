"""Run `vwm` in real child processes and SIGKILL them at chosen points (`tests.faults.child`).

A kill point is either an event (the child pauses right after that write and is killed
there: inside a checkpoint write, between the two renames of a folder swap, ...) or a delay
in seconds (wherever the child happens to be). `kill_then_finish` kills a command at each
point (each in a fresh folder), then runs it again to the end.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def child_env(minari_root: Path, **extra: str) -> dict[str, str]:
    """The environment of a child: one thread, the repository importable, its Minari root."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VWM_")}
    env.update(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               SDL_VIDEODRIVER="dummy", MINARI_DATASETS_PATH=str(minari_root), **extra)
    return env


@dataclass
class Kill:
    """Where one child was killed (or that it finished first)."""

    point: str
    """``event N`` or ``after S s``."""
    landed: str
    """The event it was killed in (``name<TAB>where``), ``running`` for a timed kill, or
    ``finished`` when the child ended before the point came."""
    returncode: int | None = None
    stderr: str = ""
    stdout: str = ""
    seconds: float = 0.0
    """Wall time of the child."""
    events: list[str] = field(default_factory=list)
    """The events the child got through (``name<TAB>where``), the kill point's last."""

    def count(self, text: str) -> int:
        """How many of the child's events mention `text`."""
        return sum(text in e for e in self.events)


def kill_at(args: list[str], cwd: Path, env: dict[str, str], event: int | str | None = None,
            delay: float | None = None, timeout: float = 300) -> Kill:
    """Start ``vwm ARGS`` and SIGKILL it right after event `event` (a number, or ``TEXT#K``:
    the K-th event mentioning TEXT) or after `delay` seconds; with neither, let it finish
    (an uninterrupted run, listing its events)."""
    stamp = time.monotonic_ns()
    mark, log, err, out = (cwd / f"{kind}-{stamp}.txt" for kind in ("pause", "events", "stderr", "stdout"))
    extra = {"VWM_PAUSE_AT": str(event), "VWM_PAUSE_MARK": str(mark)} if event else {}
    extra["VWM_EVENTS"] = str(log)
    with open(err, "w") as stderr, open(out, "w") as stdout:
        child = subprocess.Popen([sys.executable, "-m", "tests.faults.child", *args], cwd=cwd,
                                 env={**env, **extra}, stdout=stdout, stderr=stderr)
    point = f"event {event}" if event else f"after {delay:.2f} s" if delay is not None else "none"
    start = time.monotonic()
    landed = "finished"
    try:
        while child.poll() is None:
            if event and mark.exists() or delay is not None and time.monotonic() - start >= delay:
                child.send_signal(signal.SIGKILL)
                child.wait()
                landed = mark.read_text().split("\t", 1)[1].strip() if event else "running"
                break
            if time.monotonic() - start > timeout:
                raise TimeoutError(f"vwm {args} neither paused nor finished in {timeout} s")
            time.sleep(0.02)
        events = [line.split("\t", 1)[1] for line in log.read_text().splitlines()] if log.exists() else []
        return Kill(point, landed, child.returncode, err.read_text(), out.read_text(),
                    time.monotonic() - start, events)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        for file in (mark, log, err, out):
            file.unlink(missing_ok=True)


def start_paused(args: list[str], cwd: Path, env: dict[str, str], event: str,
                 timeout: float = 300) -> subprocess.Popen:
    """Start ``vwm ARGS`` and return once it pauses right after `event` (``TEXT#K``, as in
    `kill_at`); the caller kills it."""
    mark = cwd / f"pause-{time.monotonic_ns()}.txt"
    child = subprocess.Popen([sys.executable, "-m", "tests.faults.child", *args], cwd=cwd,
                             env={**env, "VWM_PAUSE_AT": event, "VWM_PAUSE_MARK": str(mark)},
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    start = time.monotonic()
    while not mark.exists():
        if child.poll() is not None:
            raise AssertionError(f"vwm {args} ended before {event}: {child.stderr.read()}")
        if time.monotonic() - start > timeout:
            child.kill()
            raise TimeoutError(f"vwm {args} did not reach {event} in {timeout} s")
        time.sleep(0.02)
    return child


def kill_points(seed: int, reference: Kill, count: int = 3) -> list[tuple[str, float]]:
    """`count` seeded kill points for a command whose uninterrupted run was `reference`:
    event numbers among its events, and one timed kill between half and 95% of its wall time
    (the first part is mostly start-up)."""
    rng = random.Random(seed)
    events = rng.sample(range(1, len(reference.events) + 1), min(count - 1, len(reference.events)))
    points: list[tuple[str, float]] = [("event", e) for e in events]
    points.insert(rng.randrange(len(points) + 1), ("time", rng.uniform(0.5, 0.95) * reference.seconds))
    return points


def kill_then_finish(make_args: Callable[[Path, bool], list[str]], cwd: Path, env: dict[str, str] | None,
                     points: list[tuple[str, float]], check: Callable[[Path, Kill], None] | None = None,
                     ) -> list[tuple[Path, Kill, Kill]]:
    """For each kill point, in a fresh folder ``cwd/trial<i>``: run ``vwm make_args(folder,
    False)`` killed at the point, call ``check(folder, kill)``, then run ``vwm
    make_args(folder, True)`` (the resuming command) to the end. `env` None: each trial gets
    ``child_env(folder / "minari")``. Returns (folder, kill, end) per point."""
    trials = []
    for i, (kind, value) in enumerate(points):
        folder = cwd / f"trial{i}"
        folder.mkdir()
        trial_env = env if env is not None else child_env(folder / "minari")
        kill = kill_at(make_args(folder, False), folder, trial_env,
                       event=int(value) if kind == "event" else None, delay=value if kind == "time" else None)
        if check is not None:
            check(folder, kill)
        trials.append((folder, kill, kill_at(make_args(folder, True), folder, trial_env)))
    return trials


def describe(kills: list[Kill]) -> str:
    """One line per kill: the point and where it landed (for test output and reports)."""
    def where(kill: Kill) -> str:
        if kill.landed != "running":
            return kill.landed
        last = kill.events[-1].split("\t")[0] if kill.events else "start"
        return f"running, {len(kill.events)} events in (last: {last})"

    return "\n".join(f"{kill.point}: {where(kill)}" for kill in kills)
