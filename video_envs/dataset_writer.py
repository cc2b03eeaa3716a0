"""Writing a Minari dataset all-or-nothing, for `vwm collect` (`video_envs.collect`).

Episodes go into a dataset built in a hidden temporary folder of the Minari root (with
``--append``, a copy of the existing dataset is extended there) which is renamed into place
at the end: a killed run leaves the dataset id absent or complete. The temporary folder is
named after the dataset id and used only by the holder of the id's writer lock
(`world_models.locks.dataset_lock`), so the next writer knows one left behind is a killed
run's: `world_models.locks.recover_dataset` removes it and, when an append was killed
between the two renames of its commit, puts the previous dataset back. A write that fails
(full disk, read-only root) raises `world_models.atomic.SaveError` naming the dataset folder.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

from video_envs.recorder import Episode
from world_models.atomic import saving, swap_in
from world_models.locks import dataset_tmp_root

if TYPE_CHECKING:
    from video_envs.collect import CollectConfig



def _to_buffer(episode: Episode) -> Any:
    """A Minari `EpisodeBuffer` of a recorded episode."""
    from minari.data_collector import EpisodeBuffer

    return EpisodeBuffer(
        seed=episode.seed,
        observations=np.stack(episode.obs),  # (N + 1, H, W, C)
        actions=np.stack(episode.actions),  # (N,) or (N, A)
        rewards=np.asarray(episode.rewards, dtype=np.float64),  # (N,)
        terminations=np.asarray(episode.terminations, dtype=bool),  # (N,)
        truncations=np.asarray(episode.truncations, dtype=bool),  # (N,)
    )


@contextlib.contextmanager
def minari_root(path: Path) -> Iterator[None]:
    """Point ``MINARI_DATASETS_PATH`` at `path` (made absolute: Minari mangles relative
    roots) for the duration (not thread-safe)."""
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(Path(path).resolve())
    try:
        yield
    finally:
        if old is None:
            del os.environ["MINARI_DATASETS_PATH"]
        else:
            os.environ["MINARI_DATASETS_PATH"] = old


class DatasetWriter:
    """Writes episodes into a dataset inside a temporary root, then renames it into place.

    Failed writes raise `SaveError` naming the dataset folder."""

    def __init__(self, cfg: CollectConfig, envs: gym.vector.VectorEnv, root: Path, algorithm: str):
        self.cfg, self.envs, self.root, self.algorithm = cfg, envs, root, algorithm
        self.final = root / cfg.dataset
        self.tmp_root = dataset_tmp_root(root, cfg.dataset)
        self.tmp = self.tmp_root / cfg.dataset
        self.dataset: Any = None
        try:
            with saving(self.final):
                self.tmp_root.mkdir(parents=True)
                if cfg.append and self.final.exists():
                    import minari

                    shutil.copytree(self.final, self.tmp)
                    self.dataset = minari.MinariDataset(self.tmp / "data")
        except BaseException:
            self.cleanup()  # a partial copy (on a full disk: give the space back)
            raise

    def write(self, episodes: list[Episode]) -> None:
        """Add finished episodes to the temporary dataset."""
        if not episodes:
            return
        import minari

        buffers = [_to_buffer(e) for e in episodes]
        with saving(self.final):
            if self.dataset is None:
                with minari_root(self.tmp_root), warnings.catch_warnings():
                    warnings.filterwarnings("ignore", category=UserWarning, module="minari")
                    self.dataset = minari.create_dataset_from_buffers(
                        self.cfg.dataset,
                        buffers,
                        env=self.envs.get_attr("spec")[0],  # the sub-env's spec, sync or async
                        algorithm_name=self.algorithm,
                        description=f"{self.cfg.task} recorded by `vwm collect` with {self.algorithm}",
                        observation_space=self.envs.single_observation_space,
                        action_space=self.envs.single_action_space,
                        jpeg_encoding=self.cfg.jpeg,
                    )
            else:
                self.dataset.update_dataset_from_buffer(buffers)

    def commit(self, metadata: dict[str, Any]) -> int:
        """Rename the temporary dataset into place; returns its episode count."""
        with saving(self.final):
            self.dataset.storage.update_metadata(metadata)
            total = self.dataset.total_episodes
            self.final.parent.mkdir(parents=True, exist_ok=True)
            _ensure_namespace(self.cfg.dataset)
            # append: the old copy is parked in the temporary root, then goes
            swap_in(self.tmp, self.final, old=self.tmp_root / "previous")
        return total

    def cleanup(self) -> None:
        """Remove the temporary root (whatever happened)."""
        shutil.rmtree(self.tmp_root, ignore_errors=True)


def _ensure_namespace(dataset_id: str) -> None:
    """Create the Minari namespace metadata of `dataset_id` in the real root, as Minari does."""
    from minari.dataset.minari_dataset import parse_dataset_id
    from minari.namespace import create_namespace, list_local_namespaces

    namespace = parse_dataset_id(dataset_id)[0]
    if namespace is not None and namespace not in list_local_namespaces():
        create_namespace(namespace)
