"""MPC planners on the synthetic world model, whose optimum (move to the target) is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agents.planning import Planner
from agents.planning_config import PlannerConfig, format_planner_spec, parse_planner_spec
from agents.planning_math import plan_returns
from tests.conftest import tiny_family_model
from tests.synthetic import SyntheticWorldModel, synthetic_spec
from world_models.families import family_names

torch.set_num_threads(1)

METHODS = ["random", "cem", "mppi"]


class LineEnv:
    """The 'real' env behind the synthetic model: n_envs positions drawn as bright columns."""

    def __init__(self, model: SyntheticWorldModel, n_envs: int = 1, pos: float = 0.0) -> None:
        self.model = model
        self.state = {"pos": torch.full((n_envs, 1), pos), "t": torch.zeros(n_envs, 1)}

    def frames(self) -> np.ndarray:
        return self.model.decode(self.state).numpy()  # (n_envs, H, W, C)

    def step(self, actions: np.ndarray) -> np.ndarray:
        transition = self.model.step(self.state, torch.as_tensor(actions), None)
        self.state = transition.state
        return transition.reward.numpy()

    @property
    def pos(self) -> np.ndarray:
        return self.state["pos"][:, 0].numpy()


def run_episode(planner: Planner, env: LineEnv, steps: int) -> float:
    """Sum of real rewards over `steps` planner actions (single env, reset detection on)."""
    planner.reset()
    total = 0.0
    for _ in range(steps):
        action, _ = planner.predict(env.frames()[0])
        total += float(env.step(action[None])[0])
    return total


def small_cfg(method: str, **kwargs) -> PlannerConfig:
    base = dict(method=method, horizon=8, num_candidates=64, iterations=3, seed=0)
    base.update(kwargs)
    return PlannerConfig(**base)


# --------------------------------------------------------------------------- finding the optimum


@pytest.mark.parametrize("method", METHODS)
def test_first_action_moves_towards_target_discrete(method):
    model = SyntheticWorldModel(synthetic_spec("discrete"))
    planner = Planner(model, small_cfg(method))
    action, state = planner.predict(LineEnv(model).frames()[0])
    assert state is None
    assert action.shape == () and action.dtype == np.int64
    assert int(action) == 2  # "right": towards the target at 0.5


@pytest.mark.parametrize("method", METHODS)
def test_first_action_moves_towards_target_continuous(method):
    model = SyntheticWorldModel(synthetic_spec("continuous"))
    planner = Planner(model, small_cfg(method))
    action, _ = planner.predict(LineEnv(model, pos=0.0).frames()[0])
    assert action.shape == (1,) and action.dtype == np.float32
    assert action[0] > 0.2
    # and from the other side of the target, left
    planner.reset()
    action, _ = planner.predict(LineEnv(model, pos=0.9).frames()[0])
    assert action[0] < -0.2


@pytest.mark.parametrize("kind", ["discrete", "continuous"])
@pytest.mark.parametrize("method", METHODS)
def test_planner_reaches_target_on_real_steps(method, kind):
    model = SyntheticWorldModel(synthetic_spec(kind))
    planner = Planner(model, small_cfg(method))
    env = LineEnv(model, pos=-0.2)
    run_episode(planner, env, steps=14)  # 7 steps of 0.1 are needed
    assert abs(env.pos[0] - 0.5) < 0.1


def test_cem_and_mppi_beat_random_shooting_at_equal_budget():
    # slow continuous dynamics, far target, long horizon: only consistently large positive
    # actions are good, which random uniform sequences rarely are
    model = SyntheticWorldModel(synthetic_spec("continuous"), target=0.9, speed=0.05)
    horizon, steps = 25, 12
    configs = {
        "random": PlannerConfig("random", horizon=horizon, num_candidates=240),
        "cem": PlannerConfig("cem", horizon=horizon, num_candidates=40, iterations=6),
        "mppi": PlannerConfig("mppi", horizon=horizon, num_candidates=40, iterations=6,
                              temperature=0.2),
    }
    budgets = {name: Planner(model, cfg).imagined_steps_per_action
               for name, cfg in configs.items()}
    assert len(set(budgets.values())) == 1, budgets
    returns = {}
    for name, cfg in configs.items():
        scores = []
        for seed in range(3):
            cfg.seed = seed
            scores.append(run_episode(Planner(model, cfg), LineEnv(model, pos=-0.5), steps))
        returns[name] = float(np.mean(scores))
    print("mean real return over 3 seeds:", returns)
    assert returns["cem"] > returns["random"]
    assert returns["mppi"] > returns["random"]


# ----------------------------------------------------------------------------------- plumbing


@pytest.mark.parametrize("kind", ["discrete", "continuous"])
def test_predict_batch_of_envs(kind):
    model = SyntheticWorldModel(synthetic_spec(kind))
    planner = Planner(model, small_cfg("cem"))
    env = LineEnv(model, n_envs=3)
    env.state["pos"] = torch.tensor([[-0.5], [0.5], [0.9]])
    starts = np.ones(3, dtype=bool)
    for _ in range(3):
        actions, _ = planner.predict(env.frames(), episode_start=starts)
        starts = np.zeros(3, dtype=bool)
        assert actions.shape == ((3,) if kind == "discrete" else (3, 1))
        env.step(actions)
    actions, _ = planner.predict(env.frames(), episode_start=starts)
    direction = actions if kind == "discrete" else actions[:, 0]
    if kind == "discrete":
        assert direction[0] == 2 and direction[2] == 0  # right of -0.2, left of 0.6
    else:
        assert direction[0] > 0 and direction[2] < 0


def test_predict_rejects_wrong_frame_shape():
    planner = Planner(SyntheticWorldModel(), small_cfg("random"))
    with pytest.raises(ValueError, match="frames"):
        planner.predict(np.zeros((2, 32, 32, 3), dtype=np.uint8))


def test_planner_is_deterministic_under_a_seed():
    model = SyntheticWorldModel(synthetic_spec("continuous"), noise=0.05)
    frame = LineEnv(model).frames()[0]
    a, _ = Planner(model, small_cfg("cem", seed=3)).predict(frame)
    b, _ = Planner(model, small_cfg("cem", seed=3)).predict(frame)
    c, _ = Planner(model, small_cfg("cem", seed=4)).predict(frame)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_single_env_reset_detection_and_explicit_reset():
    model = SyntheticWorldModel(synthetic_spec("discrete"))
    planner = Planner(model, small_cfg("random"))
    planner.predict(LineEnv(model, pos=0.0).frames()[0])
    assert planner.filter.state["t"].item() == 0
    planner.predict(LineEnv(model, pos=0.1).frames()[0])
    assert planner.filter.state["t"].item() == 1  # observed, not restarted
    # the model predicts the episode ends (continue 0) on hitting the wall ...
    planner._predicted_end = np.array([True])
    planner.predict(LineEnv(model, pos=0.0).frames()[0])
    assert planner.filter.state["t"].item() == 0  # ... so the next frame starts afresh
    planner.predict(LineEnv(model, pos=0.0).frames()[0])
    planner.reset()
    planner.predict(LineEnv(model, pos=0.0).frames()[0])
    assert planner.filter.state["t"].item() == 0


def test_wall_termination_detected_on_real_steps():
    # next to the wall, with the target outside it, a one-step plan walks into the wall
    model = SyntheticWorldModel(synthetic_spec("discrete"), target=1.5)
    planner = Planner(model, small_cfg("random", horizon=1))
    action, _ = planner.predict(LineEnv(model, pos=0.95).frames()[0])
    assert int(action) == 2
    assert planner._predicted_end.tolist() == [True]


def test_value_bootstrap_changes_the_plan():
    # a value function that prefers the far left outweighs the reward within the horizon
    model = SyntheticWorldModel(synthetic_spec("discrete"))
    planner = Planner(model, small_cfg("cem", horizon=3), value_fn=lambda f: -100.0 * f[:, 0])
    action, _ = planner.predict(LineEnv(model).frames()[0])
    assert int(action) == 0


def test_plan_returns_weights_by_cumulative_continue():
    rewards = torch.tensor([[1.0], [1.0], [1.0]])
    continues = torch.tensor([[1.0], [0.0], [1.0]])
    out = plan_returns(rewards, continues, discount=0.5, bootstrap=torch.tensor([8.0]))
    # 1 + 0.5 * 1 (reward on reaching the terminal state counts) + nothing after it
    torch.testing.assert_close(out, torch.tensor([1.5]))
    out = plan_returns(rewards, torch.ones(3, 1), discount=0.5, bootstrap=torch.tensor([8.0]))
    torch.testing.assert_close(out, torch.tensor([1 + 0.5 + 0.25 + 0.125 * 8]))


def build(spec):
    """`build` hook so this module can stand in as the 'synthetic' model family."""
    return SyntheticWorldModel(spec)


def test_from_checkpoint(tmp_path, monkeypatch):
    from world_models import families
    from world_models.checkpoint import ContextBank, save_checkpoint

    monkeypatch.setitem(families.FAMILIES, "synthetic", __name__)
    model = SyntheticWorldModel(synthetic_spec("continuous"))
    frames = LineEnv(model).frames()[:, None]  # (1, 1, H, W, C)
    bank = ContextBank(torch.as_tensor(frames), torch.zeros(1, 1, 1))
    save_checkpoint(tmp_path / "ckpt", model, bank, {"task": "line"})
    planner = Planner.from_checkpoint(tmp_path / "ckpt", parse_planner_spec("mppi:h=6,n=32"))
    assert planner.cfg.horizon == 6 and planner.imagined_steps_per_action == 6 * 32 * 4
    action, _ = planner.predict(frames[0, 0])
    assert action[0] > 0


def test_imagined_steps_per_action():
    assert PlannerConfig("random", horizon=10, num_candidates=100).imagined_steps_per_action == 1000
    cfg = PlannerConfig("cem", horizon=10, num_candidates=100, iterations=3)
    assert cfg.imagined_steps_per_action == 3000


# ---------------------------------------------------------------------------------- spec text


def test_parse_planner_spec():
    cfg = parse_planner_spec("cem:horizon=12,candidates=256")
    assert cfg == PlannerConfig(method="cem", horizon=12, num_candidates=256)
    cfg = parse_planner_spec("mppi: temp=0.3, iters=2, gamma=0.9, warm_start=false")
    assert (cfg.method, cfg.temperature, cfg.iterations) == ("mppi", 0.3, 2)
    assert cfg.discount == 0.9 and cfg.warm_start is False
    assert parse_planner_spec("rs").method == "random"
    assert parse_planner_spec("cem:elites=8").elites == 8
    assert parse_planner_spec("cem:num_elites=none,candidates=50").elites == 5


@pytest.mark.parametrize(
    "cfg",
    [
        PlannerConfig(),
        PlannerConfig("random", horizon=5, num_candidates=7, seed=3),
        PlannerConfig("cem", num_elites=9, min_std=0.1, warm_start=False),
        PlannerConfig("mppi", temperature=0.25, discount=0.97, momentum=0.0),
    ],
)
def test_planner_spec_round_trip(cfg):
    assert parse_planner_spec(format_planner_spec(cfg)) == cfg


@pytest.mark.parametrize(
    "text, match",
    [
        ("cem:horizn=12", "unknown key 'horizn'.*valid keys"),
        ("beam:horizon=3", "unknown planner method"),
        ("cem:horizon=abc", "bad value 'abc' for horizon"),
        ("cem:horizon", "expected key=value"),
        ("cem:horizon=0", "horizon must be >= 1"),
    ],
)
def test_parse_planner_spec_errors(text, match):
    with pytest.raises(ValueError, match=match):
        parse_planner_spec(text)


def test_old_import_path_re_exports_the_split_modules():
    import agents.planning as planning
    import agents.planning_config as config
    import agents.planning_math as maths

    for module in (config, maths):
        public = [name for name in vars(module) if not name.startswith("_") and name in planning.__all__]
        assert public
        for name in public:
            assert getattr(planning, name) is getattr(module, name)
    assert set(planning.__all__) <= set(vars(planning))


# --------------------------------------------------------------------------- plan_action


@pytest.mark.parametrize("name", ["windowed", *family_names()])
@pytest.mark.parametrize("method", METHODS)
def test_plan_action_returns_a_valid_seeded_action_on_any_family(name, method):
    """Every planner runs on every registered family (diffusion, genie, overlay, rssm, ...)."""
    from agents.planning import plan_action
    model = tiny_family_model(name)
    frame = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    options = dict(num_candidates=8, iterations=2)
    out = plan_action(model, frame, horizon=4, method=method, seed=3, **options)
    assert out.action.shape == () and 0 <= int(out.action) < 3
    assert out.plan.shape == (4,) and out.plan[0] == out.action
    again = plan_action(model, frame, horizon=4, method=method, seed=3, **options)
    assert np.array_equal(again.plan, out.plan)
    batch = plan_action(model, torch.as_tensor(np.stack([frame, frame]))[:, None], horizon=4,
                        method=method, **options)
    assert batch.action.shape == (2,) and batch.plan.shape == (2, 4)


def test_plan_action_continuous_stays_in_bounds_and_finds_the_target():
    from agents.planning import plan_action

    model = SyntheticWorldModel(synthetic_spec("continuous"))
    env = LineEnv(model, pos=-0.5)
    out = plan_action(model, env.frames()[0], horizon=8, method="cem", num_candidates=64)
    assert out.plan.shape == (8, 1) and np.all(np.abs(out.plan) <= 1.0)
    assert float(out.action[0]) > 0  # the target (0.5) is to the right
