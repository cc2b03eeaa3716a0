"""SB3 policy zips are pickles: `vwm evaluate` / `vwm collect` must not run code from them.

Zips trained by vwm's own SB3 trainer (PPO, A2C, DQN, SAC; TD3 in the slow set) are loaded the
default way (weights only, policy rebuilt from JSON, sidecar and the task) and with SB3's own
``load`` (``--trust-pickle``): same weights, same actions. Hostile zips plant a payload that
creates a file when unpickled, in an extra data entry, in every pickled entry and in
``policy.pth``; broken zips are empty, truncated, foreign or for another task. By default the
payload never runs and broken files give a one-line error naming the file, with nothing written.
"""

from __future__ import annotations

import base64
import json
import pickle
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from agents.evaluate import evaluate_policy
from agents.sb3 import SB3Config, load_sb3_model, load_sb3_policy, train_sb3_in_imagination, train_sb3_real
from benchmarks.cli import main
from video_envs.sb3_zip import ZipPolicy, sidecar_path
from world_models import families
from world_models.checkpoint import ContextBank, save_checkpoint

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
CARTPOLE, PENDULUM = "vwm/CartPolePixels-v0", "vwm/PendulumPixels-v0"
OFF_POLICY = {"learning_starts": 8, "buffer_size": 64, "batch_size": 8, "train_freq": 4}
RECIPES = {  # name: (task, algo, frame stack, SB3 sizes); all trained a few steps on the real task
    "ppo": (CARTPOLE, "ppo", 1, {"n_steps": 8, "batch_size": 16, "n_epochs": 1}),
    "a2c": (CARTPOLE, "a2c", 4, {"n_steps": 4}),
    "dqn": (CARTPOLE, "dqn", 2, {**OFF_POLICY, "target_update_interval": 8}),
    "sac": (PENDULUM, "sac", 1, {**OFF_POLICY, "policy_kwargs": {"net_arch": [16]}}),
    "td3": (PENDULUM, "td3", 2, OFF_POLICY),
}


class Payload:
    """Unpickles into ``open(marker, "w")``: a file appears when the pickle runs."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def zips(tmp_path_factory):
    """name -> (task, zip path) of an agent trained by vwm (on first use)."""
    made: dict[str, tuple[str, Path]] = {}

    def get(name: str) -> tuple[str, Path]:
        if name not in made:
            if name == "latent":
                made[name] = (CARTPOLE, latent_agent(tmp_path_factory.mktemp("latent")))
            else:
                task, algo, stack, sizes = RECIPES[name]
                cfg = SB3Config(algo=algo, steps=16, num_envs=2, frame_stack=stack, eval_episodes=1,
                                algo_kwargs=dict(sizes), progress=False)
                made[name] = (task, Path(train_sb3_real(task, cfg, tmp_path_factory.mktemp(name))["path"]))
        return made[name]

    return get


def latent_agent(out: Path) -> Path:
    """A DQN trained a few steps inside a tiny untrained RSSM of CartPole (latent observations)."""
    spec = families.make_spec("rssm", (64, 64, 3), "discrete", 2, preset="tiny")
    torch.manual_seed(0)
    model = families.build_model(spec).eval()
    frames = torch.zeros(2, spec.context_len, 64, 64, 3, dtype=torch.uint8)
    ckpt = out / "ckpt"
    save_checkpoint(ckpt, model, ContextBank(frames, torch.zeros(2, spec.context_len, dtype=torch.int64)),
                    {"task": CARTPOLE})
    cfg = SB3Config(algo="dqn", obs_mode="latent", steps=16, num_envs=2, eval_episodes=1,
                    algo_kwargs={**OFF_POLICY, "target_update_interval": 8}, progress=False)
    return Path(train_sb3_in_imagination(ckpt, cfg, out / "agent")["path"])


def assert_same_policy(task: str, path: Path) -> None:
    """The pickle-free policy has SB3's weights and acts exactly as SB3's own load."""
    safe = load_sb3_model(path, task)[0]
    trusted = load_sb3_model(path, task, trust_pickle=True)[0]
    assert isinstance(safe, ZipPolicy) and not isinstance(trusted, ZipPolicy)
    assert safe.observation_space == trusted.observation_space
    assert safe.action_space == trusted.action_space
    expected = trusted.policy.state_dict()
    assert safe.policy.state_dict().keys() == expected.keys()
    for key, value in safe.policy.state_dict().items():
        assert torch.equal(value, expected[key]), key
    space = safe.observation_space
    rng = np.random.default_rng(0)
    if space.dtype == np.uint8:
        obs = rng.integers(0, 256, (5, *space.shape), dtype=np.uint8)
    else:
        obs = rng.normal(size=(5, *space.shape)).astype(np.float32)
    for deterministic in (True, False):
        got = []
        for model in (safe, trusted):
            torch.manual_seed(1)
            np.random.seed(1)
            got.append(model.predict(obs, deterministic=deterministic)[0])
        np.testing.assert_array_equal(got[0], got[1])
    results = [evaluate_policy(load_sb3_policy(path, task, trust_pickle=trust), task, episodes=2, num_envs=2,
                               env_kwargs={"max_episode_steps": 30})
               for trust in (False, True)]
    assert results[0].returns == results[1].returns


@pytest.mark.parametrize("name", ["ppo", "a2c", "dqn", "sac", "latent"])
def test_vwm_zip_loads_without_pickle_and_acts_as_sb3_load(name, zips):
    assert_same_policy(*zips(name))


@pytest.mark.slow
def test_td3_zip_loads_without_pickle_and_acts_as_sb3_load(zips):
    assert_same_policy(*zips("td3"))


# ------------------------------------------------------------------ hostile and broken zips
def rewrite(src: Path, dst: Path, replace: dict[str, bytes]) -> Path:
    """Copy zip `src` to `dst` (with its sidecar) with some members replaced."""
    with zipfile.ZipFile(src) as old, zipfile.ZipFile(dst, "w") as new:
        for item in old.namelist():
            new.writestr(item, replace.get(item, old.read(item)))
    if sidecar_path(src).is_file():
        shutil.copy(sidecar_path(src), sidecar_path(dst))
    return dst


def plant(src: Path, dst: Path, marker: Path, everywhere: bool) -> Path:
    """`src` with a payload in a new data entry, and (`everywhere`) in every pickled entry."""
    data = json.loads(zipfile.ZipFile(src).read("data"))
    payload = base64.b64encode(pickle.dumps(Payload(marker))).decode()
    data["vwm_payload"] = {":type:": "<class 'builtins.object'>", ":serialized:": payload}
    if everywhere:
        for value in data.values():
            if isinstance(value, dict) and ":serialized:" in value:
                value[":serialized:"] = payload
    return rewrite(src, dst, {"data": json.dumps(data).encode()})


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().err


def evaluate_argv(task: str, policy: Path, *extra: str) -> list[str]:
    return ["evaluate", "--task", task, "--policy", str(policy), "--episodes", "1", "--num-envs", "1",
            "--json", *extra]


def test_payload_in_a_zip_runs_only_with_trust_pickle(zips, tmp_path, capsys, _minari_root):
    task, legit = zips("ppo")
    marker = tmp_path / "pwned"
    hostile = plant(legit, tmp_path / "hostile.zip", marker, everywhere=False)
    everywhere = plant(legit, tmp_path / "everywhere.zip", marker, everywhere=True)
    for path in (hostile, everywhere):  # evaluate and collect load it, the payload never runs
        assert run_cli(evaluate_argv(task, path), capsys)[0] == 0
        dataset = f"vwm/cartpole/{path.stem}-v0"
        assert main(["collect", "--task", task, "--dataset", dataset, "--policy", str(path),
                     "--steps", "8", "--num-envs", "2", "--no-progress"]) == 0
        assert not marker.exists()
    obs = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    np.testing.assert_array_equal(load_sb3_policy(everywhere, task).predict(obs, deterministic=True)[0],
                                  load_sb3_policy(legit, task).predict(obs, deterministic=True)[0])
    assert run_cli(evaluate_argv(task, hostile, "--trust-pickle"), capsys)[0] == 0
    assert marker.exists()  # the payload is real: SB3's own load runs it


def broken_zips(task: str, legit: Path, other: Path, folder: Path, marker: Path) -> dict[str, Path]:
    """Hostile or broken variants of `legit` (`other`: a zip trained on another task)."""
    raw = legit.read_bytes()
    torch_payload = folder / "payload.pth"
    torch.save({"weight": Payload(marker)}, torch_payload)
    data = json.loads(zipfile.ZipFile(legit).read("data"))
    data["policy_kwargs"] = {":type:": "<class 'dict'>", ":serialized:": "", "activation_fn":
                             "<class 'subprocess.Popen'>"}
    files = {"empty": b"", "truncated": raw[: len(raw) // 2], "text": b"not a zip at all\n"}
    paths = {}
    for name, content in files.items():
        paths[name] = folder / f"{name}.zip"
        paths[name].write_bytes(content)
    with zipfile.ZipFile(folder / "foreign.zip", "w") as archive:
        archive.writestr("readme.txt", "hello")
    paths["foreign"] = folder / "foreign.zip"
    paths["data not json"] = rewrite(legit, folder / "nojson.zip", {"data": b"{oops"})
    paths["weights pickle payload"] = rewrite(legit, folder / "pth.zip",
                                              {"policy.pth": torch_payload.read_bytes()})
    paths["weights garbage"] = rewrite(legit, folder / "garbage.zip", {"policy.pth": b"\x00" * 64})
    paths["weights of another shape"] = rewrite(legit, folder / "shape.zip", {
        "policy.pth": zipfile.ZipFile(other).read("policy.pth")})
    paths["class outside the allow-list"] = rewrite(legit, folder / "popen.zip",
                                                    {"data": json.dumps(data).encode()})
    paths["another task"] = other
    return paths


def test_broken_and_hostile_zips_give_one_line_errors(zips, tmp_path, capsys, _minari_root):
    task, legit = zips("ppo")
    other = zips("sac")[1]
    marker = tmp_path / "pwned"
    broken = broken_zips(task, legit, other, tmp_path, marker)
    for name, path in broken.items():
        code, err = run_cli(evaluate_argv(task, path), capsys)
        lines = err.strip().splitlines()
        assert code == 1 and len(lines) == 1 and "Traceback" not in err, (name, err)
        assert lines[0].startswith("vwm evaluate: error:") and path.name in lines[0], (name, err)
        dataset = "vwm/cartpole/broken-v0"
        code, err = run_cli(["collect", "--task", task, "--dataset", dataset, "--policy", str(path),
                             "--steps", "8", "--no-progress"], capsys)
        assert code == 1 and path.name in err and "Traceback" not in err, (name, err)
        assert not any(_minari_root.iterdir()), f"{name}: collect left {list(_minari_root.iterdir())}"
    assert not marker.exists()
    assert "--trust-pickle" in run_cli(evaluate_argv(task, broken["weights pickle payload"]), capsys)[1]
