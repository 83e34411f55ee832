"""Residual RL data plumbing: batch composition, demonstrations relabeled with the base."""

from __future__ import annotations

import math
from dataclasses import asdict

import numpy as np
import pytest
import torch

from robot_rl.algos.residual import ResidualConfig, ResidualLearner, mixed_batch
from robot_rl.algos.residual_demos import demo_buffer
from robot_rl.core.errors import ConfigError
from robot_rl.data import DatasetWriter, Feature, LeRobotDataset
from robot_rl.data.replay import ReplayBuffer
from tests.policies.conftest import stats_for, tiny_config


def _buffer(marker: float, rows: int = 20, envs: int = 4) -> ReplayBuffer:
    buf = ReplayBuffer(rows, envs, {"state": (1,)}, action_dim=2)
    for _ in range(rows):
        full = torch.full((envs, 1), marker)
        no = torch.zeros(envs, dtype=torch.bool)
        buf.add({"state": full}, torch.zeros(envs, 2), torch.zeros(envs), no, no, {"state": full})
    return buf


@pytest.mark.parametrize("ratio", [0.0, 0.25, 0.5])
def test_batch_composition_matches_the_demo_fraction(ratio):
    cfg = ResidualConfig(batch_size=256, demo_ratio=ratio)
    batch = mixed_batch(_buffer(0.0), _buffer(1.0), cfg, torch.Generator().manual_seed(0))
    assert batch["obs.state"].shape == (256, 1)
    assert int(batch["obs.state"].sum()) == round(ratio * 256)
    online_only = mixed_batch(_buffer(0.0), None, cfg)
    assert int(online_only["obs.state"].sum()) == 0
    with pytest.raises(ConfigError, match="demo_ratio"):
        ResidualConfig(demo_ratio=1.0)


def test_demonstrations_become_transitions_relabeled_with_the_base(tmp_path):
    from robot_rl.policies import FlowPolicy

    feats = {
        "observation.state": Feature("float32", (3,), names=["gap.x", "gap.y", "speed"]),
        "action": Feature("float32", (2,)),
        "next.done": Feature("bool", (1,)),
        "next.success": Feature("bool", (1,)),
    }
    lengths = (5, 3, 2)
    rng = np.random.default_rng(0)
    with DatasetWriter.create(tmp_path / "d", fps=10, features=feats) as w:
        for k, t in enumerate(lengths):
            done = np.zeros((t, 1), bool)
            done[-1] = True
            w.add_episode(
                {
                    "observation.state": rng.normal(size=(t, 3)).astype(np.float32),
                    "action": rng.uniform(-1, 1, size=(t, 2)).astype(np.float32),
                    "next.done": done,
                    "next.success": done if k < 2 else np.zeros((t, 1), bool),  # 3rd: time limit
                },
                task="push",
            )
    cfg = tiny_config("flow", state_dim=3, action_dim=2, obs_horizon=2)
    policy = FlowPolicy(
        cfg, stats={"observation.state": stats_for(3), "action": stats_for(2, -1.0, 1.0)}
    ).eval()
    buf = demo_buffer(LeRobotDataset(tmp_path / "d"), policy)
    assert len(buf) == sum(lengths)
    assert (
        buf.terminated[:, 0].tolist() == [False] * 4 + [True] + [False] * 2 + [True] + [False] * 2
    )
    assert buf.truncated[:, 0].tolist() == [False] * 9 + [True]  # the time-limit episode
    assert buf.reward[:, 0].sum().item() == 2.0  # one success in each of the first two
    base = buf.extras["base_action"][:, 0]
    nxt = buf.extras["next_base_action"][:, 0]
    assert base.abs().max() <= 1.0 and base.abs().sum() > 0
    assert torch.equal(nxt[:4], base[1:5])  # next base action = the base's at the next frame
    # A 3-step window from frame 3 of episode 0 stops at its termination (frame 4).
    out = buf.gather(torch.tensor([3]), torch.tensor([0]), 3, 0.5)
    assert out["steps"].item() == 2 and out["reward"].item() == pytest.approx(0.5)
    assert out["discount"].item() == 0.0
    # a deterministic base (noise_scale 0) relabels with its zero-noise chunks: other actions
    # than the sampled ones, and the same whatever the generator
    quiet = demo_buffer(LeRobotDataset(tmp_path / "d"), policy, noise_scale=0.0)
    quiet_base = quiet.extras["base_action"][:, 0]
    assert not torch.allclose(quiet_base, base)
    s0 = torch.from_numpy(LeRobotDataset(tmp_path / "d").episode(0)["observation.state"][:1])
    window = s0.expand(2, 3)[None]  # frame 0's history: the first frame, repeated
    first = policy.act({"state": window}, noise=torch.zeros(1, cfg.horizon, 2))[0, 0]
    assert torch.allclose(quiet_base[0], first.clamp(-1, 1), atol=1e-6)
    # shaping as the learner's config asks: success + scale · (gamma · phi(s') - phi(s)),
    # phi = -||gap||, the same terms online transitions get
    shaped_cfg = ResidualConfig(shaping={"gap": 1.0}, shaping_scale=10.0, gamma=0.9)
    shaped = demo_buffer(LeRobotDataset(tmp_path / "d"), policy, shaped_cfg)
    s, ns = buf.obs["state"][:, 0], buf.next_obs["state"][:, 0]
    phi = lambda x: -x[:, :2].norm(dim=-1)  # noqa: E731
    expected = buf.reward[:, 0] + 10.0 * (0.9 * phi(ns) - phi(s))
    torch.testing.assert_close(shaped.reward[:, 0], expected)
    with pytest.raises(ConfigError, match="not in the state"):
        demo_buffer(LeRobotDataset(tmp_path / "d"), policy, ResidualConfig(shaping={"tcp": 1.0}))


def test_potential_shaping_rewards_progress_and_names_bad_keys():
    from robot_rl.algos.residual import Potential, shaped_reward

    names = ["a.x", "a.y", "b", "c.x"]
    phi = Potential({"a": 1.0, "b": 0.5}, names)
    state = torch.tensor([[3.0, 4.0, -2.0, 9.0]])  # phi = -(5 + 0.5 · 2) = -6
    assert phi(state).item() == pytest.approx(-6.0)
    closer = torch.tensor([[0.0, 4.0, -2.0, 9.0]])  # phi = -(4 + 1) = -5
    cfg = ResidualConfig(gamma=0.5, shaping={"a": 1.0, "b": 0.5}, shaping_scale=2.0)
    r = shaped_reward(torch.tensor([1.0]), state, closer, phi, cfg)
    assert r.item() == pytest.approx(1.0 + 2.0 * (0.5 * -5.0 - -6.0))
    assert shaped_reward(torch.tensor([1.0]), state, closer, None, cfg).item() == 1.0
    with pytest.raises(ConfigError, match="'d'.* not in the state"):
        Potential({"d": 1.0}, names)


ABLATIONS = {
    "residual_no_layernorm": {"layer_norm": False},
    "residual_no_demos": {"demo_ratio": 0.0},
    "residual_nstep1": {"n_step": 1},
    "residual_utd1": {"utd": 1.0},
    "residual_utd4": {"utd": 4.0},
    "residual_critics2": {"critic_heads": 2},
    "residual_scale005": {"action_scale": 0.05},
    "residual_scale01": {"action_scale": 0.1},
    "residual_scale02": {"action_scale": 0.2},
}


@pytest.mark.parametrize("name", sorted(ABLATIONS))
def test_ablation_configs_change_exactly_their_setting(name):
    from dataclasses import asdict

    from robot_rl.cli.compose import compose_config, to_container
    from robot_rl.envs.config import build_config

    def algo(choice: str) -> dict:
        cfg = to_container(compose_config("train_residual", [f"algo={choice}"]))
        return asdict(build_config(ResidualConfig, cfg["algo"], where="algo"))

    base, ablation = algo("residual"), algo(name)
    changed = {k: v for k, v in ablation.items() if base[k] != v and k != "name"}
    expected = {k: v for k, v in ABLATIONS[name].items() if base[k] != v}
    assert changed == expected
    assert all(ablation[k] == v for k, v in ABLATIONS[name].items())


def test_arm_push_recipe_fits_the_task():
    """configs/algo/residual_arm_push.yaml builds a learner for arm_push's state and action (its
    per-dimension bound has one entry per action, its shaping names state vectors there)."""
    from robot_rl.algos.residual import Potential
    from robot_rl.cli.compose import compose_config, to_container
    from robot_rl.envs import load_task_config, make
    from robot_rl.envs.config import build_config

    raw = to_container(compose_config("train_residual", ["algo=residual_arm_push"]))["algo"]
    cfg = build_config(ResidualConfig, raw, where="algo")
    env = make(load_task_config("arm_push", {}), 2, seed=0)
    try:
        learner = ResidualLearner(env.observation_spec["state"].shape[0], env.action_dim, cfg)
        state = env.reset(seed=0)["state"]
        assert Potential(cfg.shaping, env.state_names)(state).shape == (2,)
    finally:
        env.close()
    # only the TCP position is corrected
    assert learner.actor.active.tolist() == [True] * 3 + [False] * 4
    # and the recipe is what BENCHMARKS measured: these fields differ from the plain defaults
    plain = to_container(compose_config("train_residual", ["algo=residual"]))["algo"]
    changed = {k: v for k, v in raw.items() if plain.get(k) != v}
    assert changed == {
        "env_steps": 76800,
        "action_scale_per_dim": [0.3, 0.3, 0.3, 0, 0, 0, 0],
        "explore_std": 0.15,
        "explore_correlation": 0.9,
        "residual_penalty": 0.1,
        "residual_penalty_start": 1.0,
        "residual_penalty_anneal_updates": 20000,
        "hidden": [128, 128],
        "critic_heads": 5,
        "utd": 0.5,
        "critic_warmup_updates": 5000,
        "shaping": {"cube_to_goal": 1.0, "tcp_to_cube": 0.2},
    }


@pytest.mark.parametrize("bins", [1, 21])
def test_learner_updates_with_either_critic(bins):
    from robot_rl.algos.residual import ResidualLearner

    cfg = ResidualConfig(
        hidden=(16, 16), critic_heads=3, critic_bins=bins, actor_every=1, critic_lr=1e-3
    )
    learner = ResidualLearner(obs_dim=3, action_dim=2, cfg=cfg)
    g = torch.Generator().manual_seed(0)
    b = 32
    batch = {
        "obs.state": torch.randn(b, 3, generator=g),
        "next_obs.state": torch.randn(b, 3, generator=g),
        "action": torch.rand(b, 2, generator=g) * 2 - 1,
        "base_action": torch.rand(b, 2, generator=g) * 2 - 1,
        "next_base_action": torch.rand(b, 2, generator=g) * 2 - 1,
        "reward": torch.ones(b),
        "discount": torch.zeros(b),  # terminal: the target is exactly the reward, 1
    }
    for _ in range(300):
        out = learner.update(batch, train_actor=True)
    assert {"critic_loss", "q_mean", "actor_loss"} <= set(out)
    q = learner.critic(learner.norm(batch["obs.state"]), batch["action"])
    assert (q - 1.0).abs().mean() < 0.15  # from 0 to the target 1
    with pytest.raises(ConfigError, match="critic_bins"):
        ResidualConfig(critic_bins=11, critic_v_min=2.0)


def test_entropy_learner_samples_explores_and_tunes_alpha():
    from robot_rl.algos.residual import ResidualLearner

    cfg = ResidualConfig(hidden=(16, 16), critic_heads=3, entropy=True, actor_every=1)
    learner = ResidualLearner(obs_dim=3, action_dim=2, cfg=cfg)
    state, base = torch.randn(8, 3), torch.rand(8, 2) * 1.6 - 0.8
    assert torch.equal(learner.act(state, base, explore=0.0), base)  # the mean: the base
    assert not torch.equal(learner.act(state, base, explore=0.05), base)  # samples explore
    g = torch.Generator().manual_seed(0)
    batch = {
        "obs.state": torch.randn(32, 3, generator=g),
        "next_obs.state": torch.randn(32, 3, generator=g),
        "action": torch.rand(32, 2, generator=g) * 2 - 1,
        "base_action": torch.rand(32, 2, generator=g) * 2 - 1,
        "next_base_action": torch.rand(32, 2, generator=g) * 2 - 1,
        "reward": torch.zeros(32),
        "discount": torch.full((32,), 0.9),
    }
    alpha0 = learner.log_alpha.exp().item()
    for _ in range(20):
        out = learner.update(batch, train_actor=True)
    assert {"alpha", "entropy"} <= set(out)
    # The start (log std -2 on a 0.1-wide tanh) has far less entropy than the target -A = -2,
    # so the temperature rises to push it up.
    assert out["entropy"] < learner.target_entropy
    assert learner.log_alpha.exp().item() > alpha0


def test_per_dimension_scales_freeze_dimensions():
    from robot_rl.policies.residual import ResidualActor

    actor = ResidualActor(
        obs_dim=4, action_dim=3, hidden=(16,), scale=[0.1, 0.0, 0.2], stochastic=True
    )
    torch.nn.init.normal_(actor.net[-1].weight, std=5.0)  # a trained, saturating residual
    obs, base = torch.randn(64, 4), torch.rand(64, 3) * 1.6 - 0.8
    corr = actor.correction(obs, base)
    assert corr[:, 1].abs().max() == 0.0  # frozen at the base action
    assert corr[:, 0].abs().max() <= 0.1 and corr[:, 2].abs().max() <= 0.2
    assert corr[:, 2].abs().max() > 0.15  # the bound is per dimension, not the smallest one
    correction, logp, action = actor.sample(obs, base, torch.Generator().manual_seed(0))
    assert torch.isfinite(logp).all() and correction[:, 1].abs().max() == 0.0
    # the frozen dimension adds nothing to the density: it equals the 2-D density alone
    two = ResidualActor(
        obs_dim=4, action_dim=3, hidden=(16,), scale=[0.1, 1.0, 0.2], stochastic=True
    )
    two.load_state_dict(actor.state_dict())
    _, logp3, _ = two.sample(obs, base, torch.Generator().manual_seed(0))
    out = two._heads(obs, base)
    eps = torch.randn((64, 3), generator=torch.Generator().manual_seed(0))
    u = out[:, :3] + out[:, 3:].clamp(-5, 1).exp() * eps
    dim1 = (
        -0.5 * eps[:, 1] ** 2
        - out[:, 4].clamp(-5, 1)
        - 0.5 * math.log(2 * math.pi)
        - torch.log(1.0 * (1 - torch.tanh(u[:, 1]) ** 2) + 1e-6)
    )
    torch.testing.assert_close(logp, logp3 - dim1, atol=1e-4, rtol=1e-4)
    cfg = ResidualConfig(action_scale_per_dim=[0.1, 0.0, 0.2], entropy=True)
    learner = ResidualLearner(4, 3, cfg)
    assert learner.target_entropy == -2.0


@pytest.mark.parametrize("dims", [[0.0, 0.0], [0.1, -0.1], [0.1, 3.0]])
def test_per_dimension_scales_are_validated(dims):
    with pytest.raises(ConfigError, match="action_scale_per_dim"):
        ResidualConfig(action_scale_per_dim=dims)


def test_per_dimension_scales_need_one_value_per_action():
    from robot_rl.policies.residual import ResidualActor

    with pytest.raises(ConfigError, match="needs 1 or 3"):
        ResidualActor(obs_dim=4, action_dim=3, scale=[0.1, 0.2])


def test_frozen_dimensions_get_no_exploration_noise():
    cfg = ResidualConfig(action_scale_per_dim=[0.1, 0.0, 0.2], hidden=(16,), critic_heads=2)
    learner = ResidualLearner(4, 3, cfg)
    state, base = torch.randn(256, 4), torch.rand(256, 3) * 1.6 - 0.8
    action = learner.act(state, base, explore=0.3)
    torch.testing.assert_close(action[:, 1], base[:, 1])  # exactly the base action
    assert (action[:, 0] - base[:, 0]).abs().max() > 0.1  # the free ones do explore


def test_heldout_settings_and_report_line():
    from robot_rl.algos.pipeline import heldout_text
    from robot_rl.algos.residual_job import TrainResidualJob

    with pytest.raises(ConfigError, match="heldout_episodes must be >= 0"):
        TrainResidualJob(base="x", heldout_episodes=-1)
    assert heldout_text({}) == ""  # no held-out step (no best checkpoint, or switched off)
    held = {"base": {"success_rate": 0.83, "episodes": 200}}
    held["best"] = {"success_rate": 0.915, "episodes": 200}
    assert heldout_text({"heldout": held}) == "; on 200 fresh episodes: base 83.0% → best 91.5%"
    held["last"] = {"success_rate": 0.9, "episodes": 200}
    assert heldout_text({"heldout": held}).endswith("→ best 91.5% (final 90.0%)")


@pytest.mark.parametrize("scale", [-0.1, float("nan"), float("inf")])
def test_base_noise_scale_is_validated(scale):
    from robot_rl.algos.residual_job import TrainResidualJob

    with pytest.raises(ConfigError, match="base_noise_scale must be a finite number >= 0"):
        TrainResidualJob(base="x", base_noise_scale=scale)


def test_white_exploration_noise_is_the_plain_gaussian_stream():
    from robot_rl.algos.residual import ExplorationNoise

    noise = ExplorationNoise((3, 2), 0.0, torch.Generator().manual_seed(5), torch.device("cpu"))
    ref = torch.Generator().manual_seed(5)
    for _ in range(3):  # rho = 0: the same draws as before the option existed
        assert torch.equal(noise(), torch.randn((3, 2), generator=ref))
    noise.reset(torch.tensor([1]))  # and a reset consumes nothing
    assert torch.equal(noise(), torch.randn((3, 2), generator=ref))


def test_correlated_exploration_noise_keeps_its_std_and_correlates_consecutive_steps():
    from robot_rl.algos.residual import ExplorationNoise

    rho = 0.9
    noise = ExplorationNoise((4000, 2), rho, torch.Generator().manual_seed(0), torch.device("cpu"))
    first = noise()
    steps = [first] + [noise() for _ in range(20)]
    for x in (steps[0], steps[10], steps[20]):  # stationary: a standard normal at every step
        assert x.std().item() == pytest.approx(1.0, abs=0.04)
    lag1 = (steps[11] * steps[10]).mean().item()  # E[x_t x_(t-1)] = rho
    lag5 = (steps[15] * steps[10]).mean().item()  # = rho^5
    assert lag1 == pytest.approx(rho, abs=0.04) and lag5 == pytest.approx(rho**5, abs=0.05)
    # a finished episode starts afresh; the others keep their correlated state
    last = steps[-1].clone()
    noise.reset(torch.arange(2000))
    fresh = noise()
    assert (fresh[2000:] * last[2000:]).mean().item() == pytest.approx(rho, abs=0.06)
    assert (fresh[:2000] * last[:2000]).mean().item() == pytest.approx(0.0, abs=0.06)


def test_correlated_exploration_is_validated():
    with pytest.raises(ConfigError, match="explore_correlation"):
        ResidualConfig(explore_correlation=1.0)
    with pytest.raises(ConfigError, match="deterministic actor"):
        ResidualConfig(explore_correlation=0.5, entropy=True)


class _ZeroBase:
    def __call__(self, obs):
        return torch.zeros(len(obs["state"]), 7)

    def reset(self, ids):
        pass


@pytest.mark.parametrize("warm", [True, False])
def test_collect_and_learn_explores_with_the_configured_noise(warm):
    """The noise the loop applies, read back from the buffer (zero base, an untrained actor whose
    correction is exactly 0): with rho = 0 it is the learner's plain randn stream, with rho = 0.9
    consecutive steps correlate. ``warm``: the warm-up branch, else the actor's exploration."""
    from robot_rl.algos.residual import collect_and_learn
    from robot_rl.envs import make

    def actions(rho):
        n, steps = 8, 30
        std = 0.1 if warm else 0.05
        cfg = ResidualConfig(
            env_steps=n * steps,
            warmup_env_steps=n * steps if warm else 0,
            warmup_noise=0.1,
            explore_std=0.05,
            explore_correlation=rho,
            critic_warmup_updates=10**6,  # the actor never trains: its correction stays 0
            utd=0.01,
            batch_size=8,
            hidden=(16,),
            critic_heads=2,
        )
        env = make("arm_reach", n, seed=0)
        learner = ResidualLearner(env.observation_spec["state"].shape[0], 7, cfg, seed=3)
        assert learner.actor.active.all()
        buf = collect_and_learn(env, _ZeroBase(), cfg, learner, seed=0)
        env.close()
        return buf.action[:steps] / std  # (T, N, 7) unit noise (clipping needs |noise| > 10)

    white = actions(0.0)
    first = torch.randn((8, 7), generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(white[0], first)  # the learner's first plain draw
    lag1 = lambda a: (a[1:] * a[:-1]).mean().item()  # noqa: E731
    assert abs(lag1(white)) < 0.1
    assert lag1(actions(0.9)) > 0.6


@pytest.mark.parametrize("entropy", [False, True])
def test_a_saved_run_resumes_exactly_where_it_stopped(tmp_path, entropy):
    """Networks, optimizer moments, alpha, the random stream and the online buffer come back:
    the next update of the resumed learner equals the one the original would have made."""
    from robot_rl.algos.residual_job import resume_residual, save_residual

    cfg = ResidualConfig(hidden=(16, 16), critic_heads=3, actor_every=1, entropy=entropy)

    def fresh(seed: int) -> tuple[ResidualLearner, ReplayBuffer]:
        return ResidualLearner(3, 2, cfg, seed=seed), ReplayBuffer(10, 4, {"state": (3,)}, 2)

    learner, replay = fresh(0)
    g = torch.Generator().manual_seed(0)
    no = torch.zeros(4, dtype=torch.bool)
    for _ in range(6):
        s, a = torch.randn(4, 3, generator=g), torch.rand(4, 2, generator=g) * 2 - 1
        replay.add({"state": s}, a, torch.rand(4, generator=g), no, no, {"state": s + 0.1},
                   base_action=a * 0.5, next_base_action=a * 0.5)  # fmt: skip
    learner.fit_normalizer(replay.obs["state"][: replay.rows].reshape(-1, 3))
    for _ in range(5):
        learner.update(replay.sample(16, 3, 0.99, learner.gen), train_actor=True)
    settings = {"base": str(tmp_path / "base"), "algo": asdict(cfg)}
    meta = settings | {"steps": 24, "history": [{"env_steps": 0, "success": 0.5}]}
    save_residual(tmp_path / "last", learner, meta, replay)

    resumed, again = fresh(seed=7)
    assert resume_residual(tmp_path / "last", resumed, again, settings)["steps"] == 24
    assert (again.head, again.rows) == (replay.head, replay.rows)
    for name, column in replay.state_tensors().items():  # the online buffer, row for row
        assert torch.equal(again.state_tensors()[name], column), name
    assert resumed.updates == learner.updates == 5 and resumed.normalizer_fitted
    batch = replay.sample(16, 3, 0.99, torch.Generator().manual_seed(1))
    assert resumed.update(batch, True) == learner.update(batch, True)
    for name in ("actor", "critic", "actor_target", "critic_target"):
        for p, q in zip(getattr(learner, name).parameters(), getattr(resumed, name).parameters()):
            assert torch.equal(p, q)
    assert torch.equal(resumed.log_alpha, learner.log_alpha)


def test_heldout_scores_base_best_and_the_final_residual_on_the_same_episodes(tmp_path):
    from rich.console import Console

    from robot_rl.algos.residual_job import TrainResidualJob, heldout_comparison, save_residual

    cfg = ResidualConfig(hidden=[16])
    best, final = (ResidualLearner(5, 2, cfg, seed=s) for s in (0, 1))
    save_residual(tmp_path / "best", best, {"algo": asdict(cfg)})
    calls = []

    class Stats:
        def __init__(self, rate: float) -> None:
            self.rate = rate

        def summary(self) -> dict[str, float]:
            return {"success_rate": self.rate, "episodes": 7}

    def evaluate(learner, seed, episodes):
        calls.append((learner, seed, episodes))
        return Stats(0.1 * len(calls))

    job = TrainResidualJob(base="x", heldout_episodes=7)
    quiet = Console(quiet=True)
    held = heldout_comparison(evaluate, tmp_path / "best", final, 123, job, "cpu", quiet)
    assert [(s, n) for _, s, n in calls] == [(123, 7)] * 3  # the same fresh episodes
    (base, loaded, scored_final) = (c[0] for c in calls)
    assert base is None and scored_final is final
    for name, p in best.actor.state_dict().items():  # best came from its checkpoint
        assert torch.equal(loaded.actor.state_dict()[name], p)
    assert (
        held["base"]["success_rate"] < held["best"]["success_rate"] < held["last"]["success_rate"]
    )
    calls.clear()  # best is the final residual: scored once, reported for both
    held = heldout_comparison(evaluate, tmp_path / "best", None, 123, job, "cpu", quiet)
    assert len(calls) == 2 and held["last"] == held["best"]


def test_annealed_penalty_starts_high_and_falls_linearly_to_the_recipe_penalty():
    cfg = ResidualConfig(
        residual_penalty=0.1,
        residual_penalty_start=1.0,
        residual_penalty_anneal_updates=10_000,
        critic_warmup_updates=5_000,
    )
    # hand-computed: 1.0 until the actor starts (5000), 1.0 - 0.9 * k / 10000 after k more
    got = [cfg.penalty_at(u) for u in (0, 5_000, 7_500, 10_000, 15_000, 40_000)]
    assert got == pytest.approx([1.0, 1.0, 0.775, 0.55, 0.1, 0.1])
    assert ResidualConfig(residual_penalty=0.2).penalty_at(0) == 0.2  # no start: constant
    for bad in ({"residual_penalty_start": -1.0}, {"residual_penalty_start": float("nan")}):
        with pytest.raises(ConfigError, match="residual_penalty_start"):
            ResidualConfig(**bad)
    with pytest.raises(ConfigError, match="residual_penalty_anneal_updates"):
        ResidualConfig(residual_penalty_anneal_updates=-1)
    with pytest.raises(ConfigError, match="must be >= 1 with a residual_penalty_start"):
        ResidualConfig(residual_penalty_start=1.0)  # a start with nothing to anneal over


def test_a_run_saved_before_a_new_algo_field_resumes_as_its_default():
    """config.json of a run saved before residual_penalty_start/_anneal_updates existed: the run
    trained with their defaults, so a resume with the defaults goes on, one with an anneal not."""
    from dataclasses import asdict

    from robot_rl.algos.residual_job import _settings_differ

    old = asdict(ResidualConfig(residual_penalty=0.1))
    for key in ("residual_penalty_start", "residual_penalty_anneal_updates"):
        del old[key]
    saved = {"algo": old, "seed": 0}
    assert _settings_differ(saved, {"algo": asdict(ResidualConfig(residual_penalty=0.1))}) == {}
    annealed = ResidualConfig(
        residual_penalty=0.1, residual_penalty_start=1.0, residual_penalty_anneal_updates=100
    )
    assert _settings_differ(saved, {"algo": asdict(annealed), "seed": 0}) == {
        "algo.residual_penalty_start": None,
        "algo.residual_penalty_anneal_updates": 0,
    }


def test_a_high_starting_penalty_keeps_the_first_corrections_small():
    """Same batches, same seed: the actor whose penalty starts at 10 corrects less after its first
    updates than the one at the constant 0.1, and reports the penalty it used."""
    from robot_rl.algos.residual import ResidualLearner

    g = torch.Generator().manual_seed(0)
    batch = {
        "obs.state": torch.randn(64, 3, generator=g),
        "next_obs.state": torch.randn(64, 3, generator=g),
        "action": torch.rand(64, 2, generator=g) * 2 - 1,
        "base_action": torch.zeros(64, 2),
        "next_base_action": torch.zeros(64, 2),
        "reward": torch.rand(64, generator=g),
        "discount": torch.full((64,), 0.9),
    }
    corrections = {}
    for start in (None, 10.0):
        cfg = ResidualConfig(
            hidden=(16, 16), critic_heads=3, actor_every=1, actor_lr=1e-3, action_scale=0.5,
            residual_penalty=0.1, residual_penalty_start=start,
            residual_penalty_anneal_updates=1_000, critic_warmup_updates=0,
        )  # fmt: skip
        learner = ResidualLearner(obs_dim=3, action_dim=2, cfg=cfg, seed=0)
        for _ in range(100):
            out = learner.update(batch, train_actor=True)
        corrections[start] = (
            learner.actor.correction(learner.norm(batch["obs.state"]), batch["base_action"])
            .abs()
            .mean()
            .item()
        )
    # the 100th update counts itself: 100 of the 1000 anneal updates done
    assert out["residual_penalty"] == pytest.approx(10.0 + (0.1 - 10.0) * 100 / 1_000)
    assert corrections[10.0] < 0.5 * corrections[None]
