"""Load a Stable-Baselines3 model ``.zip`` without running code from it.

An SB3 zip is not a safe format: its ``data`` record is JSON whose non-JSON values (the
spaces, the policy class, schedules, some policy options) are cloudpickles, and SB3's own
``load`` unpickles them, which runs whatever code the file's author put there. So by default
vwm never unpickles a zip (`load_sb3_zip`):

- the weights come from ``policy.pth``, a torch state dict read with
  ``torch.load(weights_only=True)`` (tensors only);
- the observation and action spaces come from vwm itself (the task's env, the world model of an
  imagined agent, the ``.vwm.json`` sidecar vwm writes next to its zips), laid out as SB3 lays
  them out (channel-last images transposed), and checked against the shapes the JSON records;
- the policy class is SB3's ``MlpPolicy`` or ``CnnPolicy`` of the algorithm (PPO, A2C, DQN,
  SAC, TD3), rebuilt with the JSON's policy options; an option that only exists pickled is
  resolved by name when it is a known activation or feature-extractor class, else refused;
- the result, a `ZipPolicy`, predicts as the SB3 model does (DQN's exploration included).

``trust_pickle=True`` (``--trust-pickle`` on the command line) uses SB3's own ``load``
instead, for zips one trusts that this cannot rebuild. The algorithm is read from the sidecar
when there is one, else guessed from the ``data`` record (`sb3_algorithm_guesses`).
"""

from __future__ import annotations

import importlib
import io
import json
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

SB3_ALGOS = ("PPO", "A2C", "DQN", "SAC", "TD3", "DDPG")
"""Stable-Baselines3 algorithm classes tried when loading a model .zip."""

SAFE_CLASS_MODULES = ("torch.nn.modules.activation", "stable_baselines3.common.torch_layers")
"""Modules whose classes a policy option may name (activations, feature extractors)."""

TRAINING_ONLY_OPTIONS = ("optimizer_class", "optimizer_kwargs")
"""Policy options that only matter for training: dropped when rebuilding a policy."""

TRUST_HINT = "pass --trust-pickle (trust_pickle=True) to load it with SB3, which runs code from the file"


def sidecar_path(zip_path: str | Path) -> Path:
    """The JSON file next to an SB3 zip that says how vwm trained it (obs mode, model)."""
    zip_path = Path(zip_path)
    return zip_path.with_name(zip_path.stem + ".vwm.json")


def read_sidecar(zip_path: str | Path) -> dict[str, Any]:
    """The sidecar of `zip_path` as a dict ({} when there is none); ValueError when unreadable."""
    sidecar = sidecar_path(zip_path)
    if not sidecar.is_file():
        return {}
    try:
        meta = json.loads(sidecar.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot read the sidecar {sidecar}: {error}") from None
    if not isinstance(meta, dict):
        raise ValueError(f"the sidecar {sidecar} is not a JSON object")
    return meta


def read_zip_data(path: str | Path) -> dict[str, Any]:
    """The JSON ``data`` record of an SB3 zip (nothing unpickled); ValueError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"policy file not found: {path}")
    try:
        with zipfile.ZipFile(path) as archive:
            data = json.loads(archive.read("data"))
    except (OSError, zipfile.BadZipFile, KeyError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not a Stable-Baselines3 model .zip: {error}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a Stable-Baselines3 model .zip: its data record is not an object")
    return data


def sb3_algorithm_guesses(path: str | Path, data: dict[str, Any] | None = None) -> list[str]:
    """Algorithm class names to try for the zip at `path`, most likely first.

    Raises ValueError when `path` is not a readable SB3 zip.
    """
    data = read_zip_data(path) if data is None else data
    order: list[str] = []
    name = str(read_sidecar(path).get("algo", "")).upper()
    if name in SB3_ALGOS:
        order.append(name)
    policy_class = data.get("policy_class")
    module = str(policy_class.get("__module__", "")) if isinstance(policy_class, dict) else ""
    order += [name for name in SB3_ALGOS if f".{name.lower()}." in module]
    order += ["PPO"] if "clip_range" in data else ["A2C"] if module.endswith(".common.policies") else []
    order += list(SB3_ALGOS)
    return list(dict.fromkeys(order))


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    """``policy.pth`` of the zip, loaded with ``weights_only=True`` (no arbitrary objects)."""
    try:
        with zipfile.ZipFile(path) as archive:
            raw = archive.read("policy.pth")
        weights = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except (OSError, zipfile.BadZipFile, KeyError, RuntimeError, EOFError, ValueError,
            pickle.UnpicklingError) as error:
        text = str(error)
        detail = next((line.strip() for line in text.splitlines() if "Unsupported global" in line), "")
        if detail:  # torch's weights-only unpickler refused an object
            raise ValueError(
                f"policy.pth of {path} holds objects other than tensors, which would run code when "
                f"loaded ({detail:.120}); {TRUST_HINT}"
            ) from None
        reason = "not a torch file of tensors" if "Weights only load failed" in text else _first(error)
        raise ValueError(f"cannot read the policy weights (policy.pth) of {path}: {reason}") from None
    if not isinstance(weights, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weights.items()
    ):
        raise ValueError(f"policy.pth of {path} is not a state dict of tensors")
    return weights


def _first(error: BaseException, lines: int = 1) -> str:
    """The first `lines` lines of an error message on one line (200 characters at most)."""
    text = " ".join(line.strip() for line in str(error).strip().splitlines()[:lines])
    return f"{text or type(error).__name__:.200}"


def _resolve_class(text: str, key: str, path: Path) -> type:
    """A class named ``"<class 'module.Name'>"`` (SB3's text for a pickled class) from a module
    of `SAFE_CLASS_MODULES`, imported by name; ValueError for anything else."""
    match = re.fullmatch(r"<class '([\w.]+)\.(\w+)'>", text)
    if match is None or match.group(1) not in SAFE_CLASS_MODULES:
        raise ValueError(
            f"{path} stores the policy option {key!r} as a pickled object ({text:.80}); {TRUST_HINT}"
        )
    value = getattr(importlib.import_module(match.group(1)), match.group(2), None)
    if not isinstance(value, type):
        raise ValueError(f"{path}: policy option {key!r} names {text!r}, which is not a class")
    return value


def _policy_options(data: dict[str, Any], algo: str, path: Path) -> dict[str, Any]:
    """Keyword arguments of the policy class from the JSON record (see the module docstring)."""
    raw = data.get("policy_kwargs") or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: policy_kwargs is not an object")
    pickled = ":serialized:" in raw  # SB3 pickled the dict; its JSON-able items are copied
    options = {}
    for key, value in raw.items():
        if key.startswith(":") or key in TRAINING_ONLY_OPTIONS:
            continue
        if pickled and isinstance(value, str) and value.startswith("<"):
            value = _resolve_class(value, key, path)
        elif isinstance(value, dict) and ":serialized:" in value:
            raise ValueError(f"{path} stores the policy option {key!r} as a pickled object; {TRUST_HINT}")
        options[key] = value
    if algo in ("PPO", "A2C"):  # on-policy algorithms pass use_sde to the policy themselves
        options["use_sde"] = bool(data.get("use_sde", False))
    return options


def sb3_observation_space(space: spaces.Space) -> spaces.Space:
    """`space` as an SB3 policy sees it: channel-last images transposed to (C, H, W)."""
    from stable_baselines3.common.preprocessing import is_image_space, is_image_space_channels_first
    from stable_baselines3.common.vec_env import VecTransposeImage

    if is_image_space(space) and not is_image_space_channels_first(space):  # type: ignore[arg-type]
        return VecTransposeImage.transpose_space(space)  # type: ignore[arg-type]
    return space


def _check_recorded(data: dict[str, Any], key: str, space: spaces.Space, path: Path) -> None:
    """Compare `space` with what the JSON record says of the zip's own space (shape, n)."""
    record = data.get(key)
    if not isinstance(record, dict):
        return
    shape = record.get("_shape")
    if isinstance(shape, list) and tuple(shape) != tuple(space.shape or ()):
        what = "observes" if key == "observation_space" else "acts in"
        raise ValueError(
            f"{path} holds a policy that {what} shape {tuple(shape)}, but here it gets {space} "
            "(another task, frame stack or observation mode?)"
        )
    if isinstance(space, spaces.Discrete) and "n" in record and str(record["n"]) != str(int(space.n)):
        raise ValueError(f"{path} holds a policy with {record['n']} actions, but here it acts in {space}")


class ZipPolicy:
    """An SB3 policy rebuilt from a zip without unpickling; ``predict`` as the SB3 model's."""

    def __init__(self, algo: str, policy: Any, exploration_rate: float = 0.0,
                 path: Path | None = None) -> None:
        self.algo, self.policy, self.path = algo, policy, path
        self.exploration_rate = float(exploration_rate)
        """DQN's epsilon when acting non-deterministically (0 for the other algorithms)."""

    @property
    def observation_space(self) -> spaces.Space:
        """The space the policy observes (images channel-first, as SB3 stores them)."""
        return self.policy.observation_space

    @property
    def action_space(self) -> spaces.Space:
        """The space the policy acts in."""
        return self.policy.action_space

    def predict(self, observation: Any, state: Any = None, episode_start: Any = None,
                deterministic: bool = False) -> tuple[np.ndarray, Any]:
        """SB3's ``predict`` (with DQN's epsilon-greedy exploration when not deterministic)."""
        if self.algo == "DQN" and not deterministic and np.random.rand() < self.exploration_rate:
            obs = np.asarray(observation)
            n = obs.shape[0] if self.policy.is_vectorized_observation(obs) else None
            samples = [self.action_space.sample() for _ in range(n or 1)]
            return (np.array(samples) if n is not None else np.array(samples[0])), state
        return self.policy.predict(observation, state, episode_start, deterministic)


def rebuild_sb3_zip(path: str | Path, observation_space: spaces.Space, action_space: spaces.Space,
                    device: str = "cpu") -> ZipPolicy:
    """The policy of the zip at `path` for envs with these (env-side) spaces, without unpickling.

    Raises ValueError naming the file when it is not an SB3 zip, its weights are not a plain
    state dict, its spaces differ from these, or no algorithm's policy fits its weights.
    """
    import stable_baselines3 as sb3

    path = Path(path)
    data = read_zip_data(path)
    weights = _read_weights(path)
    obs_space = sb3_observation_space(observation_space)
    _check_recorded(data, "observation_space", obs_space, path)
    _check_recorded(data, "action_space", action_space, path)
    policy_class = data.get("policy_class")
    module = str(policy_class.get("__module__", "")) if isinstance(policy_class, dict) else ""
    cnn = any("cnn" in key.split(".") for key in weights)
    errors = []
    for algo in sb3_algorithm_guesses(path, data):
        cls = getattr(sb3, algo).policy_aliases["CnnPolicy" if cnn else "MlpPolicy"]
        if module and cls.__module__ != module:
            continue  # the record names another family of policies
        try:
            options = _policy_options(data, algo, path)
            policy = cls(obs_space, action_space, lambda _: 0.0, **options)
            policy.load_state_dict(weights)
        except (TypeError, ValueError, RuntimeError, AssertionError) as error:
            if "--trust-pickle" in str(error):
                raise
            errors.append(f"{algo}: {_first(error, lines=2)}")
            continue
        policy.to(device)
        policy.set_training_mode(False)
        epsilon = float(data.get("exploration_rate", 0.0) or 0.0) if algo == "DQN" else 0.0
        return ZipPolicy(algo, policy, epsilon, path)
    raise ValueError(f"cannot rebuild the policy of {path} for {observation_space} and {action_space}: "
                     f"{'; '.join(errors) or 'no SB3 algorithm has its policy class'}")


def load_sb3_zip(path: str | Path, observation_space: spaces.Space | None = None,
                 action_space: spaces.Space | None = None, device: str = "cpu",
                 trust_pickle: bool = False) -> Any:
    """The SB3 model saved at `path`, as something with SB3's ``predict``.

    By default a `ZipPolicy` rebuilt for envs with the given (env-side) spaces, nothing
    unpickled (`rebuild_sb3_zip`); with `trust_pickle`, SB3's own ``load`` of the first
    algorithm class that fits (runs code from the file: only for files one trusts).
    """
    path = Path(path)
    if not trust_pickle:
        if observation_space is None or action_space is None:
            raise ValueError(f"loading {path} without unpickling needs the env's spaces")
        return rebuild_sb3_zip(path, observation_space, action_space, device)
    import stable_baselines3 as sb3

    errors = []
    for name in sb3_algorithm_guesses(path):
        try:
            return getattr(sb3, name).load(str(path), device=device)
        except Exception as error:  # a wrong class fails in many ways
            errors.append(f"{name}: {type(error).__name__}")
    raise ValueError(f"could not load {path} with any of {SB3_ALGOS}: {'; '.join(errors)}")
