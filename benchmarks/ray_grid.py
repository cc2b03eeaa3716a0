"""`vwm bench SUITE --ray [ADDRESS]`: the suite's graph of tasks (`benchmarks.grid`) on Ray.

Each node becomes a Ray task that receives its dependencies' results as arguments, so Ray
starts a cell only after its shared model is trained and a shared model only after its
data is collected; independent cells run in parallel on every CPU (or GPU) of the cluster.
A task that raises is retried (``--ray-retries`` times, also when its worker dies) and then
reported; the cells that needed it are reported as not run, and the rest of the grid goes
on. ``--ray`` alone starts a local Ray for the command; ``--ray ADDRESS`` joins a running
cluster (``auto``: the one ``ray start --head`` runs on this machine, or
``ray://HOST:10001``). On a cluster, the results and work folders must be on storage every
node sees.

Ray is an optional dependency (``pip install -e '.[ray]'``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.grid import GridJob, Node, plan_grid, run_node
from benchmarks.suite_spec import Suite

LOCAL = "local"
"""The ``--ray`` value that starts a local Ray (``--ray`` given without an address)."""

NodeFn = Callable[[Node, GridJob], str]
"""What executes one node on a worker (`benchmarks.grid.run_node`; tests pass fakes)."""


@dataclass
class GridOutcome:
    """How a grid run ended."""

    done: dict[str, str] = field(default_factory=dict)
    """Node key -> what it wrote (result JSON, checkpoint or dataset id)."""
    failed: dict[str, str] = field(default_factory=dict)
    """Node key -> the error that stopped it after its retries."""
    not_run: dict[str, str] = field(default_factory=dict)
    """Node key -> the failed node it needed."""

    @property
    def ok(self) -> bool:
        """Whether every node finished."""
        return not (self.failed or self.not_run)


def import_ray() -> Any:
    """The `ray` module, or a ValueError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ValueError("vwm bench --ray needs Ray, an optional dependency: "
                         "pip install -e '.[ray]' (or pip install ray)") from None
    return ray


def _task(work: NodeFn, node: Node, job: GridJob, retries: int, *dependencies: str) -> str:
    """Body of every Ray task (its dependencies' results arrive resolved, unused)."""
    try:
        return work(node, job)
    except Exception as error:
        print(f"{node.label}: failed ({type(error).__name__}: {error}); Ray retries a failed task "
              f"up to {retries} time(s)", file=sys.stderr, flush=True)
        raise


def _cause(error: BaseException) -> str:
    """The first line of the error a task raised (unwrapped from Ray's wrapper)."""
    cause = getattr(error, "cause", None) or error
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[-1] if text else ''}"


def run_grid_ray(
    suite: Suite, results_dir: Path, work: Path, job: GridJob, address: str = LOCAL,
    retries: int = 2, node_fn: NodeFn = run_node,
) -> GridOutcome:
    """Run the unfinished nodes of `suite` as Ray tasks; returns what finished and failed.

    Joins Ray at `address` (`LOCAL`: a local Ray; already initialised: that one). Each task
    reserves ``job.threads`` CPUs and ``job.gpus`` GPUs and is retried `retries` times.
    """
    ray = import_ray()
    if retries < 0 or job.gpus < 0:
        raise ValueError(f"--ray-retries and --ray-gpus must be >= 0, got {retries}, {job.gpus}")
    plan = plan_grid(suite, results_dir, work)
    for path in plan.done:
        print(f"{path.name}: done already, skipped")
    for spec in plan.unfit:
        print(f"{spec.task} {spec.method}: does not fit this task's action space, skipped")
    if not plan.nodes:  # everything finished already: no Ray to start
        return GridOutcome()
    started = not ray.is_initialized()
    if started:
        ray.init(address=None if address == LOCAL else address, log_to_driver=True)
    outcome = GridOutcome()
    try:
        remote = ray.remote(_task)
        refs: dict[str, Any] = {}
        for node in plan.nodes:
            options = dict(num_cpus=max(1, job.threads), num_gpus=job.gpus, max_retries=retries,
                           retry_exceptions=True, name=node.label)
            refs[node.key] = remote.options(**options).remote(
                node_fn, node, job, retries, *(refs[d] for d in node.deps))
        _collect(ray, plan.nodes, refs, outcome)
    finally:
        if started:
            ray.shutdown()
    return outcome


def _collect(ray: Any, nodes: list[Node], refs: dict[str, Any], outcome: GridOutcome) -> None:
    """Wait for every task, printing one line per finished node, and fill `outcome`."""
    by_ref = {refs[n.key]: n for n in nodes}
    pending = [refs[n.key] for n in nodes]  # dependency order: a failed need is seen first
    total, count = len(nodes), 0
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        node = by_ref[ready[0]]
        count += 1
        try:
            outcome.done[node.key] = ray.get(ready[0])
            print(f"[{count}/{total}] {node.label}: done")
        except Exception as error:  # a task error, a dead worker, a lost node
            needed = next((d for d in node.deps if d in outcome.failed or d in outcome.not_run), None)
            if needed is not None:
                outcome.not_run[node.key] = needed
                print(f"[{count}/{total}] {node.label}: not run, it needs {needed}, which failed")
            else:
                outcome.failed[node.key] = _cause(error)
                print(f"[{count}/{total}] {node.label}: FAILED ({outcome.failed[node.key]})")


__all__ = ["LOCAL", "GridOutcome", "import_ray", "run_grid_ray"]
