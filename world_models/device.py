"""The one device resolver: every ``--device`` option and every model placement goes through it.

``auto`` picks CUDA when torch sees a GPU, else the CPU; ``cpu``, ``cuda`` and ``cuda:N``
name a device. Anything else, or CUDA on a machine without it, is a ``ValueError`` naming
the option, so a command fails before it loads data or builds a model.
"""

from __future__ import annotations

import re

import torch

_NAME = re.compile(r"auto|cpu|cuda(?::\d+)?")


def check_device_name(name: str | torch.device) -> str:
    """`name` normalised (auto, cpu, cuda or cuda:N), without asking whether this machine has
    it (a Ray driver checks names its workers resolve); ValueError for anything else."""
    text = str(name).strip().lower()
    if _NAME.fullmatch(text) is None:
        raise ValueError(f"--device must be auto, cpu, cuda or cuda:N, got {str(name)!r}")
    return text


def resolve_device(name: str | torch.device) -> torch.device:
    """The torch device for ``--device`` value `name` (auto, cpu, cuda, cuda:N, or a device).

    Raises ValueError for an unknown name, for CUDA when torch has none, and for a GPU
    index this machine does not have.
    """
    text = check_device_name(name)
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError(
            f"--device {text}: CUDA is not available here (torch {torch.__version__}); "
            "use --device cpu, or auto to pick CUDA only where there is a GPU"
        )
    device = torch.device(text)
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"--device {text}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device


__all__ = ["check_device_name", "resolve_device"]
