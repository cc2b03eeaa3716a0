"""Load a Stable-Baselines3 model ``.zip`` without being told its algorithm.

The algorithm is read from the ``.vwm.json`` sidecar vwm writes next to its zips when there
is one, else guessed from the zip's ``data`` record (the policy class's module names DQN, SAC,
TD3 and DDPG; PPO saves a ``clip_range``, A2C does not); the guesses are tried in order.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

SB3_ALGOS = ("PPO", "A2C", "DQN", "SAC", "TD3", "DDPG")
"""Stable-Baselines3 algorithm classes tried when loading a model .zip."""


def sidecar_path(zip_path: str | Path) -> Path:
    """The JSON file next to an SB3 zip that says how vwm trained it (obs mode, model)."""
    zip_path = Path(zip_path)
    return zip_path.with_name(zip_path.stem + ".vwm.json")


def sb3_algorithm_guesses(path: str | Path) -> list[str]:
    """Algorithm class names to try for the zip at `path`, most likely first.

    Raises ValueError when `path` is not a readable SB3 zip.
    """
    path = Path(path)
    order: list[str] = []
    sidecar = sidecar_path(path)
    if sidecar.is_file():
        name = str(json.loads(sidecar.read_text()).get("algo", "")).upper()
        if name in SB3_ALGOS:
            order.append(name)
    try:
        with zipfile.ZipFile(path) as archive:
            data = json.loads(archive.read("data"))
    except (OSError, zipfile.BadZipFile, KeyError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not a Stable-Baselines3 model .zip: {error}") from None
    module = str(data.get("policy_class", {}).get("__module__", ""))
    order += [name for name in SB3_ALGOS if f".{name.lower()}." in module]
    order += ["PPO"] if "clip_range" in data else ["A2C"] if module.endswith(".common.policies") else []
    order += list(SB3_ALGOS)
    return list(dict.fromkeys(order))


def load_sb3_zip(path: str | Path, device: str = "cpu") -> Any:
    """The SB3 model saved at `path`, loaded with the first algorithm class that fits."""
    import stable_baselines3 as sb3

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"policy file not found: {path}")
    errors = []
    for name in sb3_algorithm_guesses(path):
        try:
            return getattr(sb3, name).load(str(path), device=device)
        except Exception as error:  # a wrong class fails in many ways
            errors.append(f"{name}: {type(error).__name__}")
    raise ValueError(f"could not load {path} with any of {SB3_ALGOS}: {'; '.join(errors)}")
