"""A benchmark suite as a graph of tasks, for engines that run them in parallel (Ray).

`plan_grid` turns the unfinished runs of a suite into `Node`s in dependency order:

- ``dataset``: the random real steps a (task, budget, seed) shares across model families;
- ``model``: one shared world model per (task, budget, family, preset, seed), after its
  dataset, so two workers never collect the same data or train the same model at once;
- ``run``: one (task, method, seed, budget, family, preset) cell writing one result JSON;
  the methods that work inside the shared model run after its ``model`` node.

Runs whose result JSON exists, shared models already trained and methods that do not fit
the task's action space get no node. `run_node` executes one node wherever the engine puts
it (`benchmarks.ray_grid`); results go through the same atomic JSON writer as the
sequential runner (`benchmarks.runner.run_suite`), and a re-run skips what is done.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from benchmarks.runner import execute, expand, method_fits, result_path
from benchmarks.shared_model import ensure_dataset, ensure_model, load_shared, shared_dataset, shared_folder
from benchmarks.suite_spec import RunSpec, Suite, SuiteSettings, model_free, uses_shared_model
from world_models.device import resolve_device
from world_models.threads import torch_threads

NodeKind = Literal["dataset", "model", "run"]


@dataclass(frozen=True)
class Node:
    """One task of the grid."""

    key: str
    """Unique id (``dataset:...``, ``model:...``, ``run:...``)."""
    kind: NodeKind
    """What it does: collect a shared dataset, train a shared model, or run one cell."""
    spec: RunSpec
    """The cell (for ``dataset`` and ``model``: one of the cells that need it)."""
    deps: tuple[str, ...] = ()
    """Keys of the nodes that must finish first."""

    @property
    def label(self) -> str:
        """A human-readable name for progress lines."""
        s = self.spec
        if self.kind == "dataset":
            return f"data {s.task} budget={s.budget} seed={s.seed}"
        model = "" if model_free(s.method) else f" model={s.family}/{s.preset}"
        if self.kind == "model":
            return f"shared model {s.task} budget={s.budget}{model} seed={s.seed}"
        return f"{s.task} {s.method} seed={s.seed} budget={s.budget}{model}"


@dataclass
class Plan:
    """What `plan_grid` found: the nodes to run and the runs that need none."""

    nodes: list[Node] = field(default_factory=list)
    """Nodes in dependency order (every node after the nodes it depends on)."""
    done: list[Path] = field(default_factory=list)
    """Result JSONs already written (skipped)."""
    unfit: list[RunSpec] = field(default_factory=list)
    """Runs whose method does not fit the task's action space (skipped)."""

    @property
    def runs(self) -> list[Node]:
        """The ``run`` nodes."""
        return [n for n in self.nodes if n.kind == "run"]


@dataclass(frozen=True)
class GridJob:
    """Everything a node needs besides itself (plain data: it travels to remote workers)."""

    settings: SuiteSettings
    """The suite's settings."""
    results: str
    """Folder of result JSONs and videos (absolute, on storage every worker sees)."""
    work: str
    """Folder of datasets, models and agents (absolute, on storage every worker sees)."""
    device: str = "auto"
    """``--device`` name, resolved on the worker that runs the node (``auto`` picks CUDA only
    for nodes that reserved GPUs: `gpus` > 0)."""
    threads: int = 1
    """Torch intra-op threads of a node (and the CPUs an engine reserves for it)."""
    gpus: float = 0.0
    """GPUs an engine reserves for each node."""
    progress: bool = False
    """Show the stages' progress bars."""


def plan_grid(suite: Suite, results_dir: Path, work: Path) -> Plan:
    """The unfinished part of `suite` as nodes in dependency order (see the module docstring)."""
    plan = Plan()
    keys: set[str] = set()

    def add(node: Node) -> str:
        if node.key not in keys:
            keys.add(node.key)
            plan.nodes.append(node)
        return node.key

    for spec in expand(suite):
        path = result_path(results_dir, spec)
        if path.exists():
            plan.done.append(path)
            continue
        if not method_fits(spec.method, spec.task):
            plan.unfit.append(spec)
            continue
        deps: tuple[str, ...] = ()
        if uses_shared_model(spec.method) and load_shared(spec, work) is None:
            data = add(Node(f"dataset:{shared_dataset(spec)}", "dataset", spec))
            deps = (add(Node(f"model:{shared_folder(spec, work).name}", "model", spec, (data,))),)
        add(Node(f"run:{spec.slug()}", "run", spec, deps))
    return plan


def run_node(node: Node, job: GridJob) -> str:
    """Execute one node on this process (a Ray worker); returns what it wrote: the dataset
    id, the shared model's checkpoint, or the result JSON."""
    work, results = Path(job.work), Path(job.results)
    with torch_threads(job.threads):
        device = str(resolve_device("cpu" if job.device == "auto" and job.gpus <= 0 else job.device))
        if node.kind == "dataset":
            return ensure_dataset(node.spec, work, job.progress, device)
        if node.kind == "model":
            shared = ensure_model(node.spec, job.settings, work, results, job.progress, device)
            return str(shared.checkpoint)
        result = execute(node.spec, job.settings, work, results, job.progress, device)
        return str(result.save(result_path(results, node.spec)))


__all__ = ["GridJob", "Node", "Plan", "plan_grid", "run_node"]
