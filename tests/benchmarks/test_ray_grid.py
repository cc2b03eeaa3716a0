"""Benchmark grids as task graphs (`benchmarks.grid`) and on Ray (`benchmarks.ray_grid`)."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from benchmarks.cli import main as vwm
from benchmarks.grid import GridJob, Node, plan_grid
from benchmarks.runner import expand, result_path
from benchmarks.shared_model import shared_folder
from benchmarks.suite_spec import with_options
from benchmarks.suites import get_suite

SMOKE = get_suite("smoke")
TWO_FAMILIES = with_options(SMOKE, ("rssm", "diffusion"))


def _kinds(nodes: list[Node]) -> list[str]:
    return [n.kind for n in nodes]


def test_plan_orders_data_then_shared_models_then_their_runs(tmp_path):
    plan = plan_grid(TWO_FAMILIES, tmp_path / "results", tmp_path / "work")
    nodes = {n.key: n for n in plan.nodes}
    assert _kinds(plan.nodes).count("dataset") == 1  # one dataset for both families
    models = [n for n in plan.nodes if n.kind == "model"]
    assert sorted(m.spec.family for m in models) == ["diffusion", "rssm"]
    order = [n.key for n in plan.nodes]
    for node in plan.nodes:
        assert all(order.index(d) < order.index(node.key) for d in node.deps), node.key
        if node.kind == "model":
            assert [nodes[d].kind for d in node.deps] == ["dataset"]
        if node.kind == "run":
            uses_model = node.spec.method in ("ppo_imagined_latent", "cem")
            assert [nodes[d].kind for d in node.deps] == (["model"] if uses_model else [])
            if uses_model:
                assert nodes[node.deps[0]].spec.family == node.spec.family
    assert len(plan.runs) == len(expand(TWO_FAMILIES))


def test_plan_skips_finished_runs_and_trained_models(tmp_path):
    results, work = tmp_path / "results", tmp_path / "work"
    specs = expand(SMOKE)
    finished = next(s for s in specs if s.method == "cem")
    result_path(results, finished).parent.mkdir(parents=True)
    result_path(results, finished).write_text("{}")
    folder = shared_folder(finished, work)
    folder.mkdir(parents=True)
    (folder / "shared.json").write_text(json.dumps({
        "checkpoint": str(folder / "checkpoint"), "real_steps": 1, "wall_time": 1.0, "fidelity": None,
        "throughput": None, "videos": None}))
    plan = plan_grid(SMOKE, results, work)
    assert plan.done == [result_path(results, finished)]
    assert "dataset" not in _kinds(plan.nodes) and "model" not in _kinds(plan.nodes)
    assert sorted(n.spec.method for n in plan.runs) == sorted(s.method for s in specs if s != finished)


def test_ray_missing_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    code = vwm(["bench", "smoke", "--ray", "--results", str(tmp_path / "r"), "--work", str(tmp_path / "w")])
    assert code == 1
    assert "pip install -e '.[ray]'" in capsys.readouterr().err


def test_ray_option_takes_an_optional_address():
    from benchmarks.cli import build_parser

    parser = build_parser("bench")
    assert parser.parse_args(["bench", "smoke", "--ray"]).ray == "local"
    assert parser.parse_args(["bench", "smoke", "--ray", "auto"]).ray == "auto"
    assert parser.parse_args(["bench", "smoke"]).ray is None


# ------------------------------------------------------------------ on a local 2-CPU Ray


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def fake_node(node: Node, job: GridJob) -> str:
    """A fake executor: logs when each node ran; the diffusion model always fails and the
    ppo_real run fails on its first attempt."""
    log = Path(job.work) / "log"
    log.mkdir(parents=True, exist_ok=True)
    name = node.key.replace("/", "_").replace(":", "_")
    attempts = len(list(log.glob(f"{name}.*.json")))
    start = time.time()
    time.sleep(0.3)
    record = {"key": node.key, "start": start, "end": time.time()}
    (log / f"{name}.{attempts}.json").write_text(json.dumps(record))
    if node.kind == "model" and node.spec.family == "diffusion":
        raise RuntimeError("diffusion model diverged")
    if node.spec.method == "ppo_real" and attempts == 0:
        raise RuntimeError("flaky worker")
    return node.key


def test_ray_runs_the_graph_in_order_retries_and_reports_failures(local_ray, tmp_path):
    from benchmarks.ray_grid import run_grid_ray

    results, work = tmp_path / "results", tmp_path / "work"
    job = GridJob(TWO_FAMILIES.settings, str(results), str(work), "cpu", threads=1)
    outcome = run_grid_ray(TWO_FAMILIES, results, work, job, retries=1, node_fn=fake_node)
    plan = plan_grid(TWO_FAMILIES, results, work)
    model = next(n.key for n in plan.nodes if n.kind == "model" and n.spec.family == "diffusion")
    blocked = {n.key for n in plan.nodes if model in n.deps}
    assert list(outcome.failed) == [model] and "diffusion model diverged" in outcome.failed[model]
    assert set(outcome.not_run) == blocked and len(blocked) == 2
    assert set(outcome.done) == {n.key for n in plan.nodes} - blocked - {model}
    runs: dict[str, list[dict]] = {}
    for file in (work / "log").glob("*.json"):
        record = json.loads(file.read_text())
        runs.setdefault(record["key"], []).append(record)
    assert len(runs[model]) == 2  # tried, retried once, reported
    assert len(runs[next(n.key for n in plan.nodes if n.spec.method == "ppo_real")]) == 2
    assert not blocked & set(runs)  # never started without their model
    for node in plan.nodes:  # nothing started before what it needs had finished
        for dep in node.deps:
            if dep in outcome.done:
                assert min(r["start"] for r in runs[node.key]) >= max(r["end"] for r in runs[dep])


@pytest.mark.slow
def test_vwm_bench_smoke_on_a_local_ray(local_ray, tmp_path, capsys):
    argv = ["bench", "smoke", "--ray", "--threads", "1", "--device", "auto", "--results", str(tmp_path / "r"),
            "--work", str(tmp_path / "w")]
    assert vwm(argv) == 0, capsys.readouterr()
    written = sorted(p.name for p in (tmp_path / "r").glob("*.json"))
    assert written == sorted(result_path(Path(), s).name for s in expand(SMOKE))
    assert (tmp_path / "r" / "report" / "README.md").exists()
    assert vwm(argv) == 0
    assert capsys.readouterr().out.count("done already, skipped") == len(written)


def test_grid_job_travels_as_plain_data():
    import pickle

    job = GridJob(replace(SMOKE.settings), "/r", "/w")
    assert pickle.loads(pickle.dumps(job)) == job


def test_auto_device_on_a_worker_means_cuda_only_with_a_reserved_gpu(tmp_path, monkeypatch):
    import benchmarks.grid as grid

    seen = []
    monkeypatch.setattr(grid, "ensure_dataset", lambda spec, work, progress, device: seen.append(device))
    monkeypatch.setattr(grid, "resolve_device", lambda name: name)  # no GPU here: keep the name
    node = next(n for n in plan_grid(SMOKE, tmp_path / "r", tmp_path / "w").nodes if n.kind == "dataset")
    for device, gpus in (("auto", 0.0), ("auto", 0.5), ("cuda:1", 0.0)):
        grid.run_node(node, GridJob(SMOKE.settings, str(tmp_path / "r"), str(tmp_path / "w"), device,
                                    gpus=gpus))
    assert seen == ["cpu", "auto", "cuda:1"]
