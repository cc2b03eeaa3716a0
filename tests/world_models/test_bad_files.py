"""Truncated, empty, foreign and mismatched files: checkpoints, Minari datasets and videos.

Each hostile file must give a clear error naming the file (a `CheckpointError` from
`load_checkpoint`, a one-line ``vwm`` error with exit status 1 from the command that reads it)
and leave nothing half-written: no video from ``vwm dream``, no run folder from ``vwm
train-model``, no frame cache and no change to the dataset appended to by ``vwm collect``.
Checkpoint files are also cut at Hypothesis-chosen points.
"""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from gymnasium import spaces
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from tests.cli_runner import run_vwm
from world_models import families
from world_models.checkpoint import CheckpointError, ContextBank, load_checkpoint, save_checkpoint

CARTPOLE = "vwm/CartPolePixels-v0"
BOUNDED = settings(max_examples=20, deadline=None, database=None, derandomize=True,
                   suppress_health_check=[HealthCheck.function_scoped_fixture])


def assert_one_line_error(code: int, lines: list[str], *fragments: str) -> None:
    assert code == 1 and len(lines) == 1 and "error:" in lines[0], (code, lines)
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines)


# ------------------------------------------------------------------ checkpoints
def tiny_checkpoint(path: Path, family: str = "rssm", preset: str = "tiny") -> Path:
    """A tiny untrained CartPole-sized checkpoint (64x64 frames, 2 actions)."""
    spec = families.make_spec(family, (64, 64, 3), "discrete", 2, preset=preset)
    torch.manual_seed(0)
    model = families.build_model(spec).eval()
    k = spec.context_len
    bank = ContextBank(torch.zeros(2, k, 64, 64, 3, dtype=torch.uint8), torch.zeros(2, k, dtype=torch.int64))
    return save_checkpoint(path, model, bank, {"task": CARTPOLE})


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ckpts")
    return {"good": tiny_checkpoint(root / "good"), "diffusion": tiny_checkpoint(root / "other", "diffusion"),
            "small": tiny_checkpoint(root / "small", "rssm", "small")}


def config_with(good: Path, spec: dict | None = None, drop_spec: bool = False, **top) -> bytes:
    """The good config.json with some spec fields and top-level keys changed (or no spec)."""
    config = json.loads((good / "config.json").read_text())
    config.update(top)
    config["spec"] = None if drop_spec else {**config["spec"], **(spec or {})}
    return json.dumps(config).encode()


def hostile_checkpoints(files: dict[str, Path]) -> dict[str, tuple[str, bytes | None]]:
    """name -> (file replaced, its new bytes or None to delete it)."""
    good = files["good"]
    model = (good / "model.safetensors").read_bytes()
    other_family = (files["diffusion"] / "model.safetensors").read_bytes()
    other_preset = (files["small"] / "model.safetensors").read_bytes()
    contexts = (good / "contexts.safetensors").read_bytes()
    hparams = json.loads((good / "config.json").read_text())["spec"]["hparams"]
    return {
        "model truncated": ("model.safetensors", model[: len(model) // 2]),
        "model empty": ("model.safetensors", b""),
        "model text": ("model.safetensors", b"not safetensors at all"),
        "model header claims 4 EiB": ("model.safetensors", struct.pack("<Q", 2**62) + b"{}"),
        "model of another family": ("model.safetensors", other_family),
        "model of another preset": ("model.safetensors", other_preset),
        "model missing": ("model.safetensors", None),
        "contexts truncated": ("contexts.safetensors", contexts[:100]),
        "contexts missing": ("contexts.safetensors", None),
        "config truncated": ("config.json", (good / "config.json").read_bytes()[:300]),
        "config empty": ("config.json", b""),
        "config binary": ("config.json", bytes(range(256))),
        "config a JSON array": ("config.json", b"[]"),
        "config without spec": ("config.json", config_with(good, drop_spec=True)),
        "config of another format": ("config.json", config_with(good, format_version=99)),
        "config of an unknown family": ("config.json", config_with(good, {"family": "nope"})),
        "config hparams unbuildable": ("config.json",
                                       config_with(good, {"hparams": {**hparams, "deter": -5}})),
        "config frame shape not numbers": ("config.json", config_with(good, {"frame_shape": "abc"})),
        "config frame shape of other weights": ("config.json",
                                                config_with(good, {"frame_shape": [32, 32, 3]})),
    }


FOREIGN_CONTEXTS = {  # contexts.safetensors holding the wrong tensors
    "contexts of other keys": {"x": torch.zeros(3)},
    "contexts of float frames": {"frames": torch.zeros(2, 4, 64, 64, 3),
                                 "actions": torch.zeros(2, 4, dtype=torch.int64)},
    "contexts of float actions": {"frames": torch.zeros(2, 4, 64, 64, 3, dtype=torch.uint8),
                                  "actions": torch.zeros(2, 4)},
}


def test_hostile_checkpoint_files_are_named_and_write_nothing(checkpoints, tmp_path, capsys):
    cases = hostile_checkpoints(checkpoints)
    tried = 0
    for name in [*cases, *FOREIGN_CONTEXTS]:
        folder = tmp_path / name.replace(" ", "_")
        shutil.copytree(checkpoints["good"], folder)
        if name in FOREIGN_CONTEXTS:
            file = "contexts.safetensors"
            save_file(FOREIGN_CONTEXTS[name], str(folder / file))
        else:
            file, content = cases[name]
            if content is None:
                (folder / file).unlink()
            else:
                (folder / file).write_bytes(content)
        with pytest.raises(CheckpointError) as excinfo:
            load_checkpoint(folder)
        assert str(folder) in str(excinfo.value), name
        assert "\n" not in str(excinfo.value), name
        video = tmp_path / f"{folder.name}.mp4"
        code, lines = run_vwm(["dream", "--checkpoint", str(folder), "--steps", "3", "--out", str(video)],
                              capsys)
        assert_one_line_error(code, lines, str(folder))
        assert not video.exists()
        tried += 1
    assert tried == 22


@pytest.mark.parametrize("file", ["model.safetensors", "contexts.safetensors", "config.json"])
def test_checkpoint_files_cut_anywhere_are_refused(file, checkpoints, tmp_path):
    raw = (checkpoints["good"] / file).read_bytes()
    folder = tmp_path / "cut"
    shutil.copytree(checkpoints["good"], folder)

    @BOUNDED
    @given(cut=st.integers(0, len(raw) - 1))
    def check(cut):
        (folder / file).write_bytes(raw[:cut])
        with pytest.raises(CheckpointError, match=file):
            load_checkpoint(folder)

    check()


# ------------------------------------------------------------------ Minari datasets
@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory) -> Path:
    """A Minari root with one good 60-step CartPole dataset of 16x16 frames."""
    from video_envs.collect import CollectConfig, collect, minari_root

    root = tmp_path_factory.mktemp("minari_bad_files")
    with minari_root(root):  # restores MINARI_DATASETS_PATH, set or not
        collect(CollectConfig(task=CARTPOLE, dataset="vwm/good/random-v0", steps=60, num_envs=2, size=16,
                              progress=False))
    return root


def foreign_hdf5(folder: Path) -> bytes:
    path = folder / "foreign.h5"
    with h5py.File(path, "w") as file:
        file.create_dataset("hello", data=np.zeros(3))
    return path.read_bytes()


def space_json(space: spaces.Space) -> str:
    from minari.serialization import serialize_space

    return serialize_space(space)


HOSTILE_DATASETS = {  # name -> (metadata.json changes, or main_data.hdf5 rewrite), error fragment
    "frames of another shape": ({"observation_space": space_json(spaces.Box(0, 255, (32, 32, 3), np.uint8))},
                                "32, 32, 3)"),
    "vector observations": ({"observation_space": space_json(spaces.Box(-1, 1, (4,), np.float32))},
                            "does not hold uint8 (H, W, C) frames"),
    "multi-discrete actions": ({"action_space": space_json(spaces.MultiDiscrete([2, 2]))},
                               "neither Discrete nor a 1-D Box"),
    "more steps claimed": ({"total_steps": 1000}, "fewer steps than its metadata"),
    "no episodes": ({"total_episodes": 0}, "holds no episodes"),
    "metadata not JSON": ("{oops", "cannot read Minari dataset"),
    "metadata empty": ("", "cannot read Minari dataset"),
    "hdf5 truncated": (lambda raw, folder: raw[: len(raw) // 2], "truncated file"),
    "hdf5 empty": (lambda raw, folder: b"", "cannot read Minari dataset"),
    "hdf5 foreign": (lambda raw, folder: foreign_hdf5(folder), "'episode_0' doesn't exist"),
    "hdf5 text": (lambda raw, folder: b"hello\n" * 20, "cannot read Minari dataset"),
}


def hostile_dataset(root: Path, name: str) -> str:
    change, _ = HOSTILE_DATASETS[name]
    dataset = f"vwm/bad{list(HOSTILE_DATASETS).index(name)}/random-v0"
    folder = root / dataset
    shutil.copytree(root / "vwm/good/random-v0", folder)
    if isinstance(change, dict):
        meta = json.loads((folder / "data/metadata.json").read_text())
        meta.update(change)
        (folder / "data/metadata.json").write_text(json.dumps(meta))
    elif isinstance(change, str):
        (folder / "data/metadata.json").write_text(change)
    else:
        data = folder / "data/main_data.hdf5"
        data.write_bytes(change(data.read_bytes(), folder))
    return dataset


@pytest.mark.parametrize("name", list(HOSTILE_DATASETS))
def test_hostile_datasets_stop_training_before_anything_is_written(name, dataset_root, tmp_path, monkeypatch,
                                                                  capsys):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(dataset_root))
    dataset = hostile_dataset(dataset_root, name)
    out = tmp_path / "run"
    code, lines = run_vwm(["train-model", "--dataset", dataset, "--preset", "tiny", "--steps", "2", "--out",
                           str(out), "--holdout-episodes", "0", "--no-progress", "--no-tensorboard"], capsys)
    assert_one_line_error(code, lines, dataset, HOSTILE_DATASETS[name][1])
    assert not out.exists()
    namespace = (dataset_root / dataset).parent
    assert sorted(p.name for p in namespace.iterdir()) == ["random-v0"]  # no frame cache left


def test_append_with_other_frames_leaves_the_dataset_as_it_was(dataset_root, monkeypatch, capsys):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(dataset_root))
    folder = dataset_root / "vwm/good/random-v0"
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    code, lines = run_vwm(["collect", "--task", CARTPOLE, "--dataset", "vwm/good/random-v0", "--append",
                           "--size", "32", "--steps", "10", "--no-progress"], capsys)
    assert_one_line_error(code, lines, "cannot append to 'vwm/good/random-v0'", "(16, 16, 3)")
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before
    assert not [p for p in dataset_root.iterdir() if p.name.startswith(".vwm-tmp-")]


# ------------------------------------------------------------------ videos that are not videos
def not_videos(folder: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file or folder, error fragment)."""
    from PIL import Image

    from video_envs.video import write_video

    noise = np.random.default_rng(0).integers(0, 255, (10, 32, 32, 3), np.uint8)
    good = write_video(folder / "good.mp4", noise, fps=10)
    raw = good.read_bytes()
    files = {"text.mp4": b"this is not a video\n", "empty.mp4": b"", "truncated.mp4": raw[: len(raw) // 3],
             "header-only.mp4": raw[:64], "json.gif": b'{"a": 1}', "noise.mp4": bytes(range(256)) * 20}
    cases = {}
    for name, content in files.items():
        (folder / name).write_bytes(content)
        cases[name] = (folder / name, f"cannot read video {folder / name}")
    write_video(folder / "one-frame.gif", np.zeros((1, 16, 16, 3), np.uint8), fps=5)
    cases["one-frame.gif"] = (folder / "one-frame.gif", "fewer than 2 frames")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "picture.gif")
    cases["picture.gif"] = (folder / "picture.gif", "fewer than 2 frames")
    (folder / "no-videos").mkdir()
    cases["folder without videos"] = (folder / "no-videos", "no .mp4/.gif files in folder")
    return cases


def test_files_that_are_not_videos_stop_training(tmp_path, capsys):
    cases = not_videos(tmp_path)
    assert len(cases) == 9
    for name, (path, fragment) in cases.items():
        out = tmp_path / f"run-{name}"
        code, lines = run_vwm(["train-model", "--videos", str(path), "--preset", "tiny", "--steps", "2",
                               "--out", str(out), "--holdout-episodes", "0", "--no-progress",
                               "--no-tensorboard"], capsys)
        assert_one_line_error(code, lines, fragment, path.name)
        assert not out.exists(), name
