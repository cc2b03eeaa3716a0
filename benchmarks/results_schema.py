"""One benchmark run's result as data: the JSON record every report is built from.

A run is one (task, method, seed, real-step budget, model family, model preset). Files
written before model families existed have no ``family`` key: they are read as ``rssm``. Its JSON holds the
learning curve, the final real-env evaluation, step counts, optional model fidelity,
throughput, dream return and video paths, and what is needed to reproduce it (versions,
config and its hash, hardware). Reports read these files and nothing else.

Paths under ``videos`` are relative to the folder of the result JSON that names them.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from world_models.atomic import write_text_atomic

SCHEMA_VERSION = 1

REQUIRED_KEYS: tuple[str, ...] = (
    "schema", "suite", "task", "method", "seed", "real_step_budget", "model_preset", "curve",
    "final", "real_steps", "imagined_steps", "wall_time", "versions", "config", "config_hash",
    "hardware",
)
"""Keys every result JSON must have (the optional ones may be null or absent)."""

OPTIONAL_KEYS: tuple[str, ...] = ("dream_return", "fidelity", "throughput", "videos", "family",
                                   "model_training")
"""Keys that may be null or missing: the report skips what they feed (``family``: rssm)."""

DEFAULT_FAMILY = "rssm"
"""The family of result files that name none (written before families were an axis)."""

FINAL_KEYS: tuple[str, ...] = ("returns", "lengths", "eval_seeds", "mean", "iqm")
"""Keys of the ``final`` real-env evaluation."""


_NUMBER = (int, float)
FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "schema": (int,), "suite": (str,), "task": (str,), "method": (str,), "seed": (int,),
    "real_step_budget": (int,), "model_preset": (str,), "real_steps": (int,), "imagined_steps": (int,),
    "wall_time": _NUMBER, "versions": (dict,), "config": (dict,), "config_hash": (str,),
    "hardware": (dict,), "dream_return": _NUMBER, "fidelity": (dict,), "throughput": (dict,),
    "videos": (dict,), "family": (str,), "model_training": (dict,),
}
"""JSON type of each top-level key (the optional ones may also be null)."""


def _is(value: Any, types: tuple[type, ...]) -> bool:
    return isinstance(value, types) and not isinstance(value, bool)


def _check_types(data: dict[str, Any], where: str) -> None:
    """ValueError naming the first key of `data` whose value has the wrong JSON type."""
    for key, types in FIELD_TYPES.items():
        value = data.get(key)
        if (value is not None or key in REQUIRED_KEYS) and not _is(value, types):
            kind = " or ".join(t.__name__ for t in types)
            raise ValueError(f"{where}: {key!r} must be {kind}, got {value!r:.60}")
    final = data["final"]
    for key in ("returns", "lengths", "eval_seeds"):
        if not isinstance(final[key], list) or not all(_is(v, _NUMBER) for v in final[key]):
            raise ValueError(f"{where}: 'final.{key}' must be a list of numbers")
    for key in ("mean", "iqm"):
        if not _is(final[key], _NUMBER):
            raise ValueError(f"{where}: 'final.{key}' must be a number, got {final[key]!r:.60}")
    if any(not all(_is(v, _NUMBER) for v in pair) for pair in data["curve"]):
        raise ValueError(f"{where}: 'curve' must hold [real_steps, mean_return] number pairs")
    for key in ("fidelity", "throughput", "model_training"):
        if data.get(key) and not all(_is(v, _NUMBER) or v is None for v in data[key].values()):
            raise ValueError(f"{where}: the values of {key!r} must be numbers")


def config_hash(config: dict[str, Any]) -> str:
    """Short (12 hex digits) sha256 of the canonical JSON of `config` (sorted keys, no spaces)."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]


@dataclass
class FinalEval:
    """The final evaluation on the real task: one entry per episode."""

    returns: list[float]
    lengths: list[int]
    eval_seeds: list[int]
    mean: float
    iqm: float


@dataclass
class RunResult:
    """One run's result; mirrors the JSON record field by field (see the module docstring)."""

    schema: int
    suite: str
    task: str
    method: str
    seed: int
    real_step_budget: int
    """The suite's nominal budget (``ppo_real_10x`` keeps it; its ``real_steps`` is 10x)."""
    model_preset: str
    curve: list[list[float]]
    """``[[real_steps, mean_return], ...]`` in increasing real steps."""
    final: FinalEval
    real_steps: int
    """Real env steps actually used."""
    imagined_steps: int
    wall_time: float
    versions: dict[str, Any]
    config: dict[str, Any]
    config_hash: str
    hardware: dict[str, Any]
    dream_return: float | None = None
    fidelity: dict[str, float] | None = None
    """``psnr_h<k>`` and ``ssim_h<k>`` for open-loop horizons k, ``reward_mae``,
    ``termination_accuracy``, ``termination_precision``, ``termination_recall``, ..."""
    throughput: dict[str, float] | None = None
    """``imagined_steps_per_s`` and ``real_steps_per_s``, optionally
    ``imagined_frames_per_s_n<n>`` (pixel imagined env with n envs)."""
    videos: dict[str, str] | None = None
    """``{"mp4": path, "gif": path}``, relative to the result file's folder."""
    family: str = DEFAULT_FAMILY
    """The world-model family of model-based methods (model-free ones keep the suite's)."""
    model_training: dict[str, float] | None = None
    """The shared model's ``seconds`` (training wall-clock), ``steps`` and ``parameters``."""
    source: Path | None = field(default=None, compare=False)
    """The file this result was loaded from (not part of the JSON)."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON record as a plain dict (without ``source``)."""
        data = asdict(self)
        data.pop("source")
        return data

    def to_json(self, indent: int | None = 1) -> str:
        """The JSON record as text, keys in schema order."""
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str | os.PathLike | None = None) -> RunResult:
        """Validate and build a result; errors name `source` (a file path) when given."""
        where = f"result file {str(source)!r}" if source is not None else "result record"
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected a JSON object, got {type(data).__name__}")
        missing = [k for k in REQUIRED_KEYS if k not in data]
        if missing:
            raise ValueError(f"{where}: missing required key(s) {missing}")
        if data["schema"] != SCHEMA_VERSION:
            raise ValueError(
                f"{where}: schema {data['schema']!r} is not supported (expected {SCHEMA_VERSION})"
            )
        final = data["final"]
        if not isinstance(final, dict):
            raise ValueError(f"{where}: 'final' must be an object, got {type(final).__name__}")
        missing = [k for k in FINAL_KEYS if k not in final]
        if missing:
            raise ValueError(f"{where}: missing required key(s) {missing} in 'final'")
        if not isinstance(final["returns"], list) or not final["returns"]:
            raise ValueError(f"{where}: 'final.returns' must be a non-empty list of episode returns")
        if not isinstance(data["curve"], list) or any(
            not isinstance(p, list | tuple) or len(p) != 2 for p in data["curve"]
        ):
            raise ValueError(f"{where}: 'curve' must be a list of [real_steps, mean_return] pairs")
        known = {f.name for f in fields(cls)} - {"source"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {unknown}")
        _check_types(data, where)
        values = {k: data.get(k) for k in known}
        values["final"] = FinalEval(**{k: final[k] for k in FINAL_KEYS})
        values["curve"] = [[p[0], p[1]] for p in data["curve"]]
        values["family"] = values["family"] or DEFAULT_FAMILY
        return cls(**values, source=Path(source) if source is not None else None)

    @classmethod
    def from_json(cls, text: str, source: str | os.PathLike | None = None) -> RunResult:
        """Parse and validate a JSON record; errors name `source` when given."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            where = f"result file {str(source)!r}" if source is not None else "result record"
            raise ValueError(f"{where}: invalid JSON ({err})") from err
        return cls.from_dict(data, source=source)

    @classmethod
    def load(cls, path: str | os.PathLike) -> RunResult:
        """Read one result file."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as error:
            raise ValueError(f"result file {str(path)!r}: not UTF-8 text ({error})") from None
        return cls.from_json(text, source=path)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the JSON record atomically (temporary name, then rename); returns the path."""
        return write_text_atomic(path, self.to_json() + "\n")

    def filename(self) -> str:
        """A file name unique per (suite, task, method, budget, family, preset, seed)."""
        return result_filename(self.suite, self.task, self.method, self.real_step_budget,
                               self.family, self.model_preset, self.seed)


def result_filename(suite: str, task: str, method: str, budget: int, family: str, preset: str,
                    seed: int) -> str:
    """The result file name of one run (rssm runs keep the name they had before families)."""
    task = "".join(c if c.isalnum() or c in "-." else "_" for c in task)
    return f"{suite}__{task}__{method}__{budget}__{model_label(family, preset)}__seed{seed}.json"


def model_label(family: str, preset: str) -> str:
    """The model label in names: the preset, prefixed by the family unless it is rssm."""
    return preset if family == DEFAULT_FAMILY else f"{family}-{preset}"


def family_video_stem(task: str, budget: int, preset: str, seed: int) -> str:
    """Path, relative to a suite's results folder and without suffix, of its real | family A |
    family B ... video (.mp4, .gif) and film strip (.png) of one (task, budget, preset, seed)."""
    return f"videos/families__{task.split('/')[-1]}__{budget}__{preset}__seed{seed}"


def load_results(folder: str | os.PathLike) -> list[RunResult]:
    """Load every ``*.json`` under `folder` (recursively, sorted by path) as a `RunResult`.

    Hidden files and folders are skipped: they are the temporaries of atomic writes (a run
    killed while saving its result leaves one behind). Raises `FileNotFoundError` when the
    folder does not exist and `ValueError` naming the file when one is not a valid result.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"results folder {str(folder)!r} does not exist")
    return [RunResult.load(p) for p in sorted(folder.rglob("*.json"))
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)]
