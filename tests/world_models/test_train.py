"""The training loop: checkpoints, resume, evaluation, bad input."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from benchmarks.cli import main as vwm
from tests.conftest import collect_tiny, train_tiny
from world_models.checkpoint import CheckpointError, load_checkpoint
from world_models.train import TrainConfig, train_world_model


def _weights(path):
    return load_file(str(path / "model.safetensors"))


def test_checkpoint_round_trip_and_eval_metrics(tiny_checkpoint):
    loaded = load_checkpoint(tiny_checkpoint, expect_task="vwm/CartPolePixels-v0")
    assert loaded.spec.family == "rssm"
    assert loaded.spec.frame_shape == (64, 64, 3)
    assert loaded.contexts.frames.dtype == torch.uint8
    assert loaded.contexts.frames.shape[2:] == (64, 64, 3)
    assert loaded.step == 30
    config = loaded.config
    for key in ("psnr_h1", "psnr_h5", "ssim_h1", "ssim_h5", "reward_mae", "termination_accuracy",
                "termination_recall", "false_termination_rate"):
        assert key in config["eval"]
    assert config["versions"]["torch"]


def test_resume_matches_uninterrupted_run(tmp_path):
    dataset = collect_tiny(tmp_path / "minari")
    full = train_tiny(dataset, tmp_path / "full", steps=12)
    first = train_tiny(dataset, tmp_path / "split", steps=6)
    resumed = train_tiny(dataset, tmp_path / "split", steps=12, resume=True)
    assert first == resumed
    a, b = _weights(full), _weights(resumed)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


def test_existing_run_needs_resume(tmp_path, tiny_checkpoint):
    out = tmp_path / "run"
    dataset = collect_tiny(tmp_path / "minari")
    train_tiny(dataset, out, steps=2)
    with pytest.raises(FileExistsError, match="--resume"):
        train_tiny(dataset, out, steps=4)


def test_mismatched_task_is_refused(tiny_checkpoint):
    with pytest.raises(CheckpointError, match="trained on task"):
        load_checkpoint(tiny_checkpoint, expect_task="vwm/AcrobotPixels-v0")


def test_missing_and_corrupt_checkpoints(tmp_path, tiny_checkpoint):
    import shutil

    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nowhere")
    broken = tmp_path / "broken"
    shutil.copytree(tiny_checkpoint, broken)
    data = (broken / "model.safetensors").read_bytes()
    (broken / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt checkpoint"):
        load_checkpoint(broken)
    (broken / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="corrupt checkpoint"):
        load_checkpoint(broken)


def test_invalid_spec_in_config_is_a_checkpoint_error(tmp_path, tiny_checkpoint):
    import shutil

    other = tmp_path / "other"
    shutil.copytree(tiny_checkpoint, other)
    config = json.loads((other / "config.json").read_text())
    config["spec"]["feature_dim"] = 0
    (other / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="bad spec.*feature_dim"):
        load_checkpoint(other)


def test_format_version_mismatch(tmp_path, tiny_checkpoint):
    import shutil

    other = tmp_path / "other"
    shutil.copytree(tiny_checkpoint, other)
    config = json.loads((other / "config.json").read_text())
    config["format_version"] = 999
    (other / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="format version 999"):
        load_checkpoint(other)


def test_interrupted_save_keeps_previous_checkpoint(tmp_path, tiny_checkpoint):
    import shutil

    run = tmp_path / "run"
    run.mkdir()
    # a kill between the two renames leaves only checkpoint.old and checkpoint.tmp
    shutil.copytree(tiny_checkpoint, run / "checkpoint.old")
    (run / "checkpoint.tmp").mkdir()
    loaded = load_checkpoint(run)
    assert loaded.path.name == "checkpoint.old"


def test_non_finite_loss_stops_with_message(tmp_path, monkeypatch):
    from world_models.rssm.model import RSSMWorldModel

    original = RSSMWorldModel.compute_loss

    def exploding(self, batch, step=0):
        loss, metrics = original(self, batch, step)
        return loss * float("nan"), metrics

    monkeypatch.setattr(RSSMWorldModel, "compute_loss", exploding)
    with pytest.raises(FloatingPointError, match="non-finite"):
        train_tiny(collect_tiny(tmp_path / "minari"), tmp_path / "run", steps=3)
    assert not (tmp_path / "run" / "checkpoint").exists()


def test_missing_dataset_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no local Minari dataset"):
        train_world_model(TrainConfig(dataset="vwm/none/random-v0", out=str(tmp_path / "x")))


def test_cli_train_model_reports_missing_dataset(tmp_path, capsys):
    code = vwm(["train-model", "--dataset", "vwm/none/random-v0", "--out", str(tmp_path)])
    assert code == 1
    assert "no local Minari dataset" in capsys.readouterr().err


def test_tensorboard_scalars_and_images(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    dataset = collect_tiny(tmp_path / "minari")
    cfg = TrainConfig(dataset=dataset, out=str(tmp_path / "run"), preset="tiny", steps=4,
                      batch_size=4, seq_len=8, holdout_episodes=2, num_contexts=4, eval_every=2,
                      log_every=1, checkpoint_every=4, progress=False)
    train_world_model(cfg)
    events = EventAccumulator(str(tmp_path / "run" / "tb"))
    events.Reload()
    assert "train/loss" in events.Tags()["scalars"]
    assert "eval/psnr_h1" in events.Tags()["scalars"]
    assert "eval/real_vs_open_loop" in events.Tags()["images"]


def test_max_seconds_stops_training_with_a_final_checkpoint_and_eval(tmp_path):
    dataset = collect_tiny(tmp_path / "minari")
    out = tmp_path / "timed"
    checkpoint = train_tiny(dataset, out, steps=1_000_000, max_seconds=0.5)
    loaded = load_checkpoint(checkpoint)
    assert 0 < loaded.step < 1_000_000
    assert loaded.config["train_seconds"] >= 0.5 and "psnr_h1" in loaded.config["eval"]
    again = load_checkpoint(train_tiny(dataset, out, steps=1_000_000, max_seconds=0.5, resume=True))
    assert again.step == loaded.step  # already out of time: nothing more to do
