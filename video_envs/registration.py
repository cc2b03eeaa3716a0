"""Registration of every vwm environment id with Gymnasium (called on ``import video_envs``).

Entry points are strings and kwargs JSON-serialisable, so ``gym.make`` of a stored spec
(Minari's ``recover_environment``) works and registering imports nothing heavy.
"""

from __future__ import annotations

import difflib
from typing import Any

import gymnasium as gym

CLASSIC_TASKS: dict[str, tuple[str, int]] = {
    "vwm/CartPolePixels-v0": ("video_envs.classic_pixels:CartPolePixelsEnv", 500),
    "vwm/AcrobotPixels-v0": ("video_envs.classic_pixels:AcrobotPixelsEnv", 500),
    "vwm/PendulumPixels-v0": ("video_envs.classic_pixels:PendulumPixelsEnv", 200),
}
"""Pixel classic-control ids: (entry point, max_episode_steps as the originals)."""

MINATAR_GAMES: dict[str, str] = {
    "Asterix": "asterix",
    "Breakout": "breakout",
    "Freeway": "freeway",
    "Seaquest": "seaquest",
    "SpaceInvaders": "space_invaders",
}
"""MinAtar game names in ids -> MinAtar's own module names."""

ATARI_GAMES: dict[str, str] = {
    "Pong": "pong",
    "Breakout": "breakout",
    "SpaceInvaders": "space_invaders",
    "Seaquest": "seaquest",
    "Freeway": "freeway",
}
"""ALE game names in ids -> ALE ROM names (needs the ``vwm[atari]`` extra)."""

TASK_IDS: tuple[str, ...] = (
    *CLASSIC_TASKS,
    *(f"vwm/MinAtar{name}-v0" for name in MINATAR_GAMES),
    *(f"vwm/MinAtar{name}Minimal-v0" for name in MINATAR_GAMES),
    *(f"vwm/MinAtar{name}Minimal40px-v0" for name in MINATAR_GAMES),
)
"""Real task ids that work without optional extras. ``vwm/MinAtarGAME-v0`` acts in MinAtar's
full 6-action set, ``vwm/MinAtarGAMEMinimal-v0`` in the game's minimal set (MinAtar's own
Gymnasium ids call them v0 and v1; e.g. 3 actions in Breakout, where 4 of the 6 full-set
actions do nothing). ``vwm/MinAtarGAMEMinimal40px-v0`` draws that game at 40x40: every grid
cell is exactly 4x4 pixels (at the default 64x64 cells are 6 or 7 pixels wide), so a token
patch of 4 is one cell (the genie family's MinAtar setting, DESIGN section 9)."""

MINATAR_CELL_SIZE = 40
"""Frame side of the ``...Minimal40px`` MinAtar ids: 4 pixels per grid cell."""

ATARI_TASK_IDS: tuple[str, ...] = tuple(f"vwm/{name}Pixels-v0" for name in ATARI_GAMES)
"""Real ALE task ids; making one needs ``pip install 'vwm[atari]'``."""

IMAGINED_ID = "vwm/Imagined-v0"
"""The learned-world-model env (``gym.make(IMAGINED_ID, checkpoint=PATH)``)."""


def _register(env_id: str, **kwargs: Any) -> None:
    if env_id not in gym.registry:
        gym.register(id=env_id, **kwargs)


def register_envs() -> None:
    """Register every vwm id with Gymnasium; calling it again is a no-op."""
    for env_id, (entry_point, max_steps) in CLASSIC_TASKS.items():
        _register(env_id, entry_point=entry_point, max_episode_steps=max_steps)
    for name, game in MINATAR_GAMES.items():
        for suffix, extra in (("", {}), ("Minimal", {"use_minimal_action_set": True}),
                              ("Minimal40px", {"use_minimal_action_set": True, "size": MINATAR_CELL_SIZE})):
            _register(
                f"vwm/MinAtar{name}{suffix}-v0",
                entry_point="video_envs.minatar_pixels:MinAtarPixelsEnv",
                kwargs={"game": game, **extra},
            )
    for name, game in ATARI_GAMES.items():
        _register(
            f"vwm/{name}Pixels-v0",
            entry_point="video_envs.atari_pixels:AtariPixelsEnv",
            kwargs={"game": game},
        )
    _register(
        IMAGINED_ID,
        entry_point="video_envs.imagined:WorldModelEnv",
        vector_entry_point="video_envs.imagined:WorldModelVectorEnv",
    )


def make_real_env(task_id: str, **kwargs: Any) -> gym.Env:
    """``gym.make`` a real vwm task by id, with a helpful error for an unknown id.

    kwargs go to ``gym.make`` (``size=``, ``render_mode=``, ``max_episode_steps=``, ...).
    """
    known = TASK_IDS + ATARI_TASK_IDS
    if task_id not in known:
        close = difflib.get_close_matches(task_id, known, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(
            f"Unknown real task id {task_id!r}.{hint} Known ids: {', '.join(known)} "
            "(the ALE ids need `pip install 'vwm[atari]'`)."
        )
    register_envs()
    return gym.make(task_id, **kwargs)
