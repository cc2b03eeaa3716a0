"""What a benchmark suite is: its settings, its cells, the method names, and their checks.

A suite is a grid: tasks x methods x seeds x real-step budgets x model families x presets
(the named suites are in `benchmarks.suites`).

Methods:
- ``random``: uniformly random actions.
- ``<algo>_real`` / ``<algo>_real_10x``: an SB3 algorithm trained on the real pixel task with
  the budget (or ten times it): the baseline.
- ``dreamer``: the online Dreamer loop (collect, model, actor-critic in imagination) within
  the budget.
- ``dreamer_offline``: Dreamer trained in a model learned from `budget` random real steps.
- ``<algo>_imagined_latent`` / ``<algo>_imagined_pixels``: SB3 trained inside that model.
- ``random_shooting`` / ``cem`` / ``mppi``: planners over that model.

Model-based methods run once per model family and preset; model-free ones (``random``,
``<algo>_real*``) once per preset, under the suite's first family.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from benchmarks.results_schema import DEFAULT_FAMILY, model_label
from world_models.families import family_names, make_spec


@dataclass(frozen=True)
class SuiteSettings:
    """How much work each method gets in a suite."""

    model_steps: int = 1500
    """Gradient steps of the world model learned from random data (offline methods)."""
    model_seconds: float = 0.0
    """When > 0, each family's shared model trains for this many seconds instead of
    `model_steps`, so model families get the same training wall-clock."""
    model_batch: int = 16
    """World-model batch size."""
    model_seq: int = 16
    """World-model window length."""
    imagined_steps: int = 200_000
    """Imagined steps for SB3 and offline Dreamer training inside the model."""
    eval_episodes: int = 20
    """Real episodes of the final evaluation."""
    planner: str = "horizon=12,candidates=128,iterations=3"
    """Planner options (appended to the method name: ``cem:<planner>``)."""
    online: dict[str, Any] = field(default_factory=dict)
    """Overrides of `agents.online.OnlineConfig` for the ``dreamer`` method (none: the
    benchmarked CartPole recipe, which is the loop's default)."""
    dreamer: dict[str, Any] = field(default_factory=dict)
    """Overrides of `agents.dreamer.DreamerConfig`."""
    model_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    """World-model hyper-parameter overrides per family, e.g. ``{"rssm": {"image_size": 32}}``
    (a family without an entry keeps its defaults: the preset, or the online recipe); a
    ``"FAMILY@TASK"`` key adds overrides for one task (e.g. ``{"diffusion@vwm/MinAtarBreakout-v0":
    {"native_grid": 10}}``), applied over the family's."""
    throughput_envs: int = 1024
    """Rows of the imagined vector env when measuring throughput."""
    throughput_seconds: float = 2.0
    """Seconds each throughput measurement runs."""
    pixel_throughput_envs: tuple[int, ...] = ()
    """Also measure imagined frames/s of the pixel imagined vector env at these numbers of
    envs (e.g. (1, 16, 64)), beside the real task's steps/s."""
    video_steps: int = 100
    """Length of the real | imagined video."""
    family_videos: bool = False
    """Write one real | family A | family B ... video per (task, budget, preset, seed) from the
    shared models, after the runs (`benchmarks.shared_model.write_family_videos`)."""
    label_episodes: dict[str, int] = field(default_factory=dict)
    """Families whose shared model learns from the frames and rewards with the actions of
    only this many episodes, as from action-free video plus a few labelled episodes
    (``--ignore-actions --label-episodes N``), then gets its real-action map fitted on
    those episodes (`vwm fit-actions`, LAPO), e.g. ``{"genie": 5}``; only for families
    with latent actions."""


@dataclass(frozen=True)
class Suite:
    """A grid of runs; each (task, method, seed, budget, family, preset) writes one result JSON."""

    name: str
    """Suite name (results go to benchmarks/results/NAME)."""
    tasks: tuple[str, ...]
    """Real task ids."""
    methods: tuple[str, ...]
    """Methods (see the module docstring)."""
    seeds: tuple[int, ...]
    """Seeds."""
    budgets: tuple[int, ...]
    """Real-step budgets."""
    presets: tuple[str, ...] = ("small",)
    """World-model size presets."""
    settings: SuiteSettings = field(default_factory=SuiteSettings)
    """How much work each method gets."""
    families: tuple[str, ...] = ("rssm",)
    """World-model families (`world_models.families`)."""


@dataclass(frozen=True)
class RunSpec:
    """One cell of a suite."""

    suite: str
    task: str
    method: str
    seed: int
    budget: int
    preset: str
    family: str = DEFAULT_FAMILY

    @property
    def model(self) -> str:
        """The model label in names (`benchmarks.results_schema.model_label`)."""
        return model_label(self.family, self.preset)

    def slug(self) -> str:
        """A folder-friendly name."""
        task = self.task.split("/")[-1]
        return f"{task}__{self.method}__{self.budget}__{self.model}__seed{self.seed}"


def model_free(method: str) -> bool:
    """Whether `method` uses no world model (it then runs under the suite's first family only)."""
    return method == "random" or "_real" in method


def uses_shared_model(method: str) -> bool:
    """Whether `method` works inside the shared model learned from random data (every
    model-based method except the online ``dreamer``, which learns its own)."""
    return not model_free(method) and method != "dreamer"


def known_families() -> list[str]:
    """Names of the registered model families."""
    return family_names()


def known_method(method: str) -> bool:
    """Whether `method` is one of the forms the module docstring lists."""
    from agents.sb3 import ALGOS

    if method in ("random", "dreamer", "dreamer_offline", "random_shooting", "cem", "mppi"):
        return True
    algo, _, kind = method.partition("_")
    return algo in ALGOS and kind in ("real", "real_10x", "imagined_latent", "imagined_pixels")


def validate_suite(suite: Suite) -> Suite:
    """Check the suite's methods, families and each family's model overrides; returns the suite.

    Raises ValueError naming the suite, the family and the unknown keys. Suites are only
    validated when run, so a suite may name a family that is not registered yet.
    """
    strange = [m for m in suite.methods if not known_method(m)]
    if strange or not suite.methods or not suite.seeds:
        raise ValueError(f"suite {suite.name!r}: unknown methods {strange} (or no methods or seeds); "
                         "methods are random, dreamer, dreamer_offline, random_shooting, cem, mppi "
                         "and ALGO_real, ALGO_real_10x, ALGO_imagined_latent, ALGO_imagined_pixels")
    known = known_families()
    unknown = [f for f in suite.families if f not in known]
    if unknown or not suite.families:
        raise ValueError(f"suite {suite.name!r}: unknown model families {unknown or '()'}; "
                         f"known families: {known}")
    strays = sorted(key for key in suite.settings.model_overrides
                    if key.split("@")[0] not in suite.families
                    or ("@" in key and key.split("@", 1)[1] not in suite.tasks))
    if strays:
        raise ValueError(f"suite {suite.name!r}: model overrides for {strays}, which the suite does "
                         f"not run (its families: {list(suite.families)}, tasks: {list(suite.tasks)})")
    for key, task_overrides in suite.settings.model_overrides.items():
        family, _, task = key.partition("@")
        overrides = {**suite.settings.model_overrides.get(family, {}), **task_overrides} if task \
            else task_overrides
        for preset in suite.presets:
            try:  # a dry run: the family checks its own hyper-parameter names
                make_spec(family, (64, 64, 3), "discrete", 2, preset=preset, overrides=overrides)
            except ValueError as error:
                raise ValueError(f"suite {suite.name!r}: model overrides for family {family!r} "
                                 f"at preset {preset!r}: {error}") from None
    return suite


def with_options(suite: Suite, families: tuple[str, ...] | None = None,
                 methods: tuple[str, ...] | None = None, seeds: tuple[int, ...] | None = None,
                 tasks: tuple[str, ...] | None = None) -> Suite:
    """`suite` with its families, methods, seeds or tasks replaced by those given (model
    overrides of dropped families and tasks are dropped too), validated. Results of a subset
    land beside the full suite's, so a suite can be run piece by piece."""
    if tasks:
        overrides = {k: o for k, o in suite.settings.model_overrides.items()
                     if "@" not in k or k.split("@", 1)[1] in tasks}
        suite = replace(suite, tasks=tuple(tasks),
                        settings=replace(suite.settings, model_overrides=overrides))
    if families:
        overrides = {f: o for f, o in suite.settings.model_overrides.items() if f.split("@")[0] in families}
        suite = replace(suite, families=tuple(families),
                        settings=replace(suite.settings, model_overrides=overrides))
    if methods:
        suite = replace(suite, methods=tuple(methods))
    if seeds:
        suite = replace(suite, seeds=tuple(int(s) for s in seeds))
    return validate_suite(suite)
