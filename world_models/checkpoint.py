"""World-model checkpoints: a folder written atomically, loaded without unpickling.

Layout of a checkpoint folder (design section 5)::

    config.json          format version, spec, task, dataset id, step, versions, train config
    model.safetensors    model parameters (written with safetensors' model API, so tied
                         weights are stored once)
    ema.safetensors      EMA parameters, when the model declares ``ema_decay`` (optional);
                         `load_checkpoint` uses them for imagination by default
    contexts.safetensors bank of real start contexts: frames uint8 (N, T, H, W, C), actions
    trainer.safetensors  every stage's optimiser state and the RNG states (numpy in
                         config.json; torch, CUDA here), for resuming (optional)

`save_checkpoint` writes into ``<path>.tmp`` and swaps it in with renames, so a run killed
while saving leaves the previous checkpoint intact (``<path>.old`` is picked up if the kill
fell between the two renames). A save that fails (full disk, read-only folder) raises
`world_models.atomic.SaveError` naming the folder and the cause, removes ``<path>.tmp`` and
leaves the previous checkpoint as it was.
"""

from __future__ import annotations

import json
import platform
import shutil
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, load_model, save_file, save_model
from torch import Tensor, nn

from world_models.atomic import saving, swap_in
from world_models.base import ModelSpec, WorldModel
from world_models.device import resolve_device
from world_models.families import build_model

FORMAT_VERSION = 1
"""Bumped whenever the folder layout or config keys change incompatibly."""

CONFIG_FILE = "config.json"
MODEL_FILE = "model.safetensors"
CONTEXTS_FILE = "contexts.safetensors"
TRAINER_FILE = "trainer.safetensors"
EMA_FILE = "ema.safetensors"


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, or does not match what the caller expects."""


@dataclass
class ContextBank:
    """Real start contexts stored with a model, so imagined envs work without the dataset."""

    frames: Tensor
    """uint8 (N, T, H, W, C)."""
    actions: Tensor
    """(N, T) int64 or (N, T, A) float32, aligned with frames as in `world_models.base`."""

    def __len__(self) -> int:
        return int(self.frames.shape[0])


@dataclass
class Checkpoint:
    """A loaded checkpoint."""

    path: Path
    """The checkpoint folder."""
    model: WorldModel
    """The model, in eval mode, on the requested device (EMA weights unless asked otherwise)."""
    spec: ModelSpec
    """The model's spec."""
    contexts: ContextBank
    """Start contexts (on CPU)."""
    config: dict[str, Any] = field(default_factory=dict)
    """The whole config.json (task, dataset, step, train config, versions)."""

    @property
    def task(self) -> str | None:
        """The real task id the model was trained on."""
        return self.config.get("task")

    @property
    def step(self) -> int:
        """Training step at which the checkpoint was written."""
        return int(self.config.get("step", 0))


def package_versions() -> dict[str, str]:
    """Versions of the packages that matter for reproducing a result."""
    versions = {"python": platform.python_version()}
    for name in ("vwm", "torch", "gymnasium", "stable-baselines3", "numpy", "minari"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "unknown"
    return versions


def resolve_checkpoint_dir(path: str | Path) -> Path:
    """The checkpoint folder for `path`: the folder itself, or ``<run dir>/checkpoint``."""
    path = Path(path)
    for candidate in (path, path / "checkpoint"):
        if (candidate / CONFIG_FILE).is_file():
            return candidate
        old = candidate.with_name(candidate.name + ".old")
        if not candidate.exists() and (old / CONFIG_FILE).is_file():
            return old
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path} does not exist")
    raise CheckpointError(
        f"not a vwm checkpoint: {path} has no {CONFIG_FILE} (nor {path / 'checkpoint'})"
    )


def save_checkpoint(
    path: str | Path,
    model: WorldModel,
    contexts: ContextBank,
    config: dict[str, Any],
    trainer_state: dict[str, Tensor] | None = None,
    ema_model: nn.Module | None = None,
) -> Path:
    """Write a checkpoint folder atomically; `config` must be JSON-serialisable.

    `ema_model` (a copy of the model holding EMA weights) goes to ``ema.safetensors``.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    full_config = {
        "format_version": FORMAT_VERSION,
        "spec": model.spec.to_dict(),
        "versions": package_versions(),
        **config,
    }
    try:
        with saving(path):
            shutil.rmtree(tmp, ignore_errors=True)  # left by a run killed while saving
            tmp.mkdir(parents=True)
            (tmp / CONFIG_FILE).write_text(json.dumps(full_config, indent=2, sort_keys=True))
            save_model(model, str(tmp / MODEL_FILE))  # type: ignore[arg-type]
            if ema_model is not None:
                save_model(ema_model, str(tmp / EMA_FILE))
            save_file({"frames": contexts.frames.cpu().contiguous(),
                       "actions": contexts.actions.cpu().contiguous()}, str(tmp / CONTEXTS_FILE))
            if trainer_state is not None:
                save_file({k: v.cpu().contiguous() for k, v in trainer_state.items()},
                          str(tmp / TRAINER_FILE))
            return swap_in(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # give the space back; the old folder stays
        raise


def read_config(path: str | Path) -> dict[str, Any]:
    """The config.json of a checkpoint, checked for format version and spec."""
    folder = resolve_checkpoint_dir(path)
    try:
        config = json.loads((folder / CONFIG_FILE).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"corrupt checkpoint: cannot read {folder / CONFIG_FILE}: {error}") from None
    if not isinstance(config, dict) or "spec" not in config:
        raise CheckpointError(f"corrupt checkpoint: {folder / CONFIG_FILE} has no model spec")
    version = config.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {folder} has format version {version}, this vwm reads version "
            f"{FORMAT_VERSION}; retrain the model or use the vwm version that wrote it"
        )
    return config


def _load_tensors(file: Path) -> dict[str, Tensor]:
    if not file.is_file():
        raise CheckpointError(f"corrupt checkpoint: {file} is missing")
    try:
        return load_file(str(file))
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"corrupt checkpoint: cannot read {file}: {error}") from None


def load_checkpoint(
    path: str | Path,
    device: str | torch.device = "cpu",
    expect_task: str | None = None,
    expect_family: str | None = None,
    ema: bool = True,
) -> Checkpoint:
    """Load a checkpoint folder (or a run folder holding ``checkpoint/``).

    `device` is a ``--device`` name or a torch device (`world_models.device.resolve_device`).
    With `ema` (default) the model gets the EMA weights when the checkpoint has them (what
    imagination and evaluation use); ``ema=False`` gives the raw trained weights (resuming).

    Raises `CheckpointError` naming the problem when the folder is missing or corrupt, was
    written by another format version, or was trained on a task other than `expect_task`.
    """
    folder = resolve_checkpoint_dir(path)
    config = read_config(folder)
    try:
        spec = ModelSpec.from_dict(config["spec"])
    except (TypeError, KeyError, ValueError, AttributeError) as error:
        raise CheckpointError(f"corrupt checkpoint: bad spec in {folder / CONFIG_FILE}: {error}") from None
    if expect_family is not None and spec.family != expect_family:
        raise CheckpointError(
            f"checkpoint {folder} holds a {spec.family!r} model, expected {expect_family!r}"
        )
    if expect_task is not None and config.get("task") != expect_task:
        raise CheckpointError(
            f"checkpoint {folder} was trained on task {config.get('task')!r}, "
            f"not on {expect_task!r}"
        )
    try:
        model = build_model(spec)
    except ValueError as error:
        raise CheckpointError(f"corrupt checkpoint: the spec in {folder / CONFIG_FILE}: {error}") from None
    load_weights(folder, model, ema=ema)  # type: ignore[arg-type]
    bank = _load_tensors(folder / CONTEXTS_FILE)
    if set(bank) != {"frames", "actions"}:
        raise CheckpointError(
            f"corrupt checkpoint: {folder / CONTEXTS_FILE} holds {sorted(bank)}, not frames and actions"
        )
    contexts = ContextBank(frames=bank["frames"], actions=bank["actions"])
    frames, actions = contexts.frames, contexts.actions
    if frames.dtype != torch.uint8 or tuple(frames.shape[2:]) != tuple(spec.frame_shape):
        raise CheckpointError(
            f"corrupt checkpoint: context frames {frames.dtype} {tuple(frames.shape)} in "
            f"{folder / CONTEXTS_FILE} do not match the model's uint8 frames {spec.frame_shape}"
        )
    expected_actions = (*frames.shape[:2], *spec.action_shape())
    if actions.dtype != spec.action_dtype() or tuple(actions.shape) != expected_actions:
        raise CheckpointError(
            f"corrupt checkpoint: context actions {actions.dtype} {tuple(actions.shape)} in "
            f"{folder / CONTEXTS_FILE} do not match frames {tuple(frames.shape[:2])} of a "
            f"{spec.action_kind} model"
        )
    model.to(resolve_device(device))
    model.eval()
    return Checkpoint(path=folder, model=model, spec=spec, contexts=contexts, config=config)


def load_weights(path: str | Path, model: nn.Module, ema: bool = True) -> bool:
    """Load a checkpoint's weights into `model` (tied weights restored); True if EMA ones.

    Takes the EMA weights when `ema` and the checkpoint has them, else the raw weights.
    Raises `CheckpointError` for a missing, corrupt or mismatching file.
    """
    folder = resolve_checkpoint_dir(path)
    use_ema = ema and (folder / EMA_FILE).is_file()
    file = folder / (EMA_FILE if use_ema else MODEL_FILE)
    if not file.is_file():
        raise CheckpointError(f"corrupt checkpoint: {file} is missing")
    try:
        load_model(model, str(file))
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"corrupt checkpoint: cannot read {file}: {error}") from None
    except RuntimeError as error:  # keys or shapes differ: say how, on one line
        lines = [line.strip() for line in str(error).splitlines() if line.strip()][1:3]
        raise CheckpointError(
            f"corrupt checkpoint: {file} does not match its spec ({' '.join(lines)[:200]})"
        ) from None
    return use_ema


def load_trainer_state(path: str | Path) -> dict[str, Tensor] | None:
    """The optimiser/RNG tensors saved with a checkpoint, or None if it has none."""
    file = resolve_checkpoint_dir(path) / TRAINER_FILE
    return _load_tensors(file) if file.exists() else None


def optimizer_to_tensors(state_dict: dict[str, Any]) -> tuple[dict[str, Tensor], list[dict]]:
    """Split an optimiser `state_dict` into flat tensors and JSON-serialisable param groups."""
    tensors: dict[str, Tensor] = {}
    for index, param_state in state_dict["state"].items():
        for name, value in param_state.items():
            tensor = value if isinstance(value, Tensor) else torch.tensor(value)
            tensors[f"optim.{index}.{name}"] = tensor
    return tensors, state_dict["param_groups"]


def optimizer_from_tensors(tensors: dict[str, Tensor], param_groups: list[dict]) -> dict[str, Any]:
    """Inverse of `optimizer_to_tensors`: an optimiser `state_dict`."""
    state: dict[int, dict[str, Tensor]] = {}
    for key, value in tensors.items():
        if not key.startswith("optim."):
            continue
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = value
    return {"state": state, "param_groups": param_groups}
