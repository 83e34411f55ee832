"""PPO: GAE, losses, the adaptive lr, the observation statistics and the co-scaling rule against
hand-worked numbers; checkpoints round-trip; PPO learns a point-mass task to near-optimal."""

from __future__ import annotations

import json
import math

import pytest
import torch

from robot_rl.algos.ppo import (
    PPO,
    PPOConfig,
    RunningNorm,
    adapt_lr,
    bootstrap_truncated,
    gae,
    gaussian_kl,
    schedule_for_envs,
    surrogate_loss,
    train_ppo,
    value_loss,
)
from robot_rl.algos.ppo_job import load_ppo, save_ppo
from robot_rl.core.errors import ConfigError
from robot_rl.envs.vec_env import Obs, TensorSpec, VecEnv


def test_gae_cuts_terminations_and_bootstraps_truncations():
    # γ = λ = 0.5. Env 0: truncated at t=1 with V(final_obs) = 2; env 1: terminated at t=0 with
    # V(final_obs) = 4, which must be ignored.
    gamma = lam = 0.5
    terminated = torch.tensor([[False, True], [False, False], [False, False]])
    truncated = torch.tensor([[False, False], [True, False], [False, False]])
    final_v = torch.tensor([[0.0, 4.0], [2.0, 0.0], [0.0, 0.0]])
    raw = torch.tensor([[1.0, 0.0], [1.0, 1.0], [1.0, 0.0]])
    rewards = torch.stack(
        [
            bootstrap_truncated(raw[t], terminated[t], truncated[t], final_v[t], gamma)
            for t in range(3)
        ]
    )
    # the cut step's reward: 1 + 0.5 · 2 = 2; env 1's terminal reward stays 0
    assert rewards.tolist() == [[1.0, 0.0], [2.0, 1.0], [1.0, 0.0]]
    values = torch.tensor([[0.5, 1.0], [0.5, 1.0], [0.5, 1.0]])
    adv, ret = gae(rewards, values, terminated | truncated, torch.tensor([1.0, 2.0]), gamma, lam)
    # env 0: t2: δ = 1 + .5·1 − .5 = 1 → A = 1
    #        t1 (done): δ = 2 − .5 = 1.5 → A = 1.5 (nothing flows back across the cut)
    #        t0: δ = 1 + .5·.5 − .5 = .75 → A = .75 + .25·1.5 = 1.125
    # env 1: t2: δ = 0 + .5·2 − 1 = 0 → A = 0;  t1: δ = 1 + .5·1 − 1 = .5 → A = .5 + .25·0
    #        t0 (terminated): δ = 0 − 1 = −1 → A = −1
    expected = torch.tensor([[1.125, -1.0], [1.5, 0.5], [1.0, 0.0]])
    torch.testing.assert_close(adv, expected)
    torch.testing.assert_close(ret, expected + values)


def test_terminated_and_truncated_together_is_not_bootstrapped():
    r = bootstrap_truncated(
        torch.ones(2), torch.tensor([True, False]), torch.tensor([True, True]), torch.ones(2), 0.9
    )
    assert r.tolist() == pytest.approx([1.0, 1.9])


def test_clipped_surrogate_against_hand_values():
    ratio = torch.tensor([1.5, 0.5, 1.1, 0.5])
    adv = torch.tensor([1.0, 1.0, -1.0, -1.0])
    # min(ρA, clip(ρ, .8, 1.2)A): 1.5 → 1.2;  0.5 → 0.5;  1.1·−1 → −1.1;
    # 0.5·−1: min(−.5, −.8) = −.8 (the pessimistic, clipped term)
    loss, info = surrogate_loss(torch.log(ratio), torch.zeros(4), adv, 0.2)
    assert loss.item() == pytest.approx(-(1.2 + 0.5 - 1.1 - 0.8) / 4)
    assert info["clip_fraction"].item() == pytest.approx(0.75)


def test_surrogate_gradient_vanishes_outside_the_clip():
    lp = torch.log(torch.tensor([1.5, 1.1])).requires_grad_()
    loss, _ = surrogate_loss(lp, torch.zeros(2), torch.tensor([1.0, 1.0]), 0.2)
    loss.backward()
    # ρ = 1.5 > 1.2 with A > 0 is clipped (no gradient); ρ = 1.1: d(−ρ/2)/d log ρ = −0.55
    assert lp.grad.tolist() == pytest.approx([0.0, -0.55])


def test_clipped_value_loss_against_hand_values():
    v, old, ret = torch.tensor([0.5, -0.1]), torch.zeros(2), torch.ones(2)
    # 0.5: unclipped (0.5−1)² = .25, clipped 0 + .2 → (.2−1)² = .64 → max .64; −0.1: 1.21 both
    loss, _ = value_loss(v, old, ret, 0.2)
    assert loss.item() == pytest.approx((0.64 + 1.21) / 2)
    assert value_loss(v, old, ret, 0.0)[0].item() == pytest.approx((0.25 + 1.21) / 2)


def test_gaussian_kl_matches_torch():
    mu0, mu1 = torch.randn(5, 3), torch.randn(5, 3)
    s0, s1 = torch.tensor([0.5, 1.0, 2.0]), torch.tensor([1.0, 0.7, 1.5])
    ref = torch.distributions.kl_divergence(
        torch.distributions.Normal(mu0, s0), torch.distributions.Normal(mu1, s1)
    ).sum(-1)
    torch.testing.assert_close(gaussian_kl(mu0, s0, mu1, s1), ref)


def test_adaptive_kl_lr_rule():
    assert adapt_lr(1e-3, 0.03, 0.01, 1e-5, 1e-2) == pytest.approx(1e-3 / 1.5)  # > 2× target
    assert adapt_lr(1e-3, 0.004, 0.01, 1e-5, 1e-2) == pytest.approx(1.5e-3)  # < target / 2
    assert adapt_lr(1e-3, 0.012, 0.01, 1e-5, 1e-2) == 1e-3  # within [0.5, 2]× target
    assert adapt_lr(1e-3, 0.0, 0.01, 1e-5, 1e-2) == 1e-3  # KL exactly 0: no information
    assert adapt_lr(9e-3, 0.001, 0.01, 1e-5, 1e-2) == 1e-2  # bounded above
    assert adapt_lr(1.2e-5, 1.0, 0.01, 1e-5, 1e-2) == 1e-5  # and below


def test_running_norm_matches_the_statistics_of_all_batches():
    torch.manual_seed(0)
    norm = RunningNorm(3, clip=5.0)
    batches = [torch.randn(n, 3) * torch.tensor([1.0, 10.0, 0.1]) + 3.0 for n in (1, 7, 300)]
    for b in batches:
        norm.update(b)
    everything = torch.cat(batches).double()
    torch.testing.assert_close(norm.mean, everything.mean(0))
    torch.testing.assert_close(norm.var, everything.var(0, unbiased=False))
    assert norm.count.item() == 308
    z = norm(everything.float())
    torch.testing.assert_close(z.mean(0), torch.zeros(3), atol=1e-5, rtol=0)
    assert norm(torch.full((1, 3), 1e6)).max().item() == 5.0  # clipped


def test_co_scaling_rule():
    cfg = PPOConfig()  # T 24, 4 minibatches at 4096 envs: minibatch 24,576 samples
    assert schedule_for_envs(cfg, 4096) == (24, 4)
    assert schedule_for_envs(cfg, 256) == (24, 4)  # never fewer than configured
    assert schedule_for_envs(cfg, 65536) == (24, 64)  # same minibatch size, 16× the count
    fixed_batch = PPOConfig(scale_with_envs="fixed_batch")
    assert schedule_for_envs(fixed_batch, 8192) == (12, 4)  # 8192 · 12 = 4096 · 24
    assert schedule_for_envs(fixed_batch, 65536) == (8, 4)  # not below min_steps_per_env
    assert schedule_for_envs(fixed_batch, 256) == (24, 4)  # not above steps_per_env
    assert schedule_for_envs(PPOConfig(scale_with_envs="none"), 65536) == (24, 4)
    assert schedule_for_envs(PPOConfig(minibatches=4), 1) == (24, 4)
    with pytest.raises(ConfigError, match="scale_with_envs"):
        PPOConfig(scale_with_envs="linear")


class PointMass(VecEnv):
    """1-D point masses that must reach a goal: ``x' = x + 0.1·a``, state ``(goal − x, x)``;
    reward ``−|goal − x|`` per step; terminated (success) within 0.05 of the goal, truncated
    after 30 steps. Also a ``privileged`` observation (the goal itself) for the critic."""

    def __init__(self, n: int, seed: int = 0) -> None:
        self.num_envs, self.device = n, torch.device("cpu")
        self.observation_spec = {
            "state": TensorSpec((2,), torch.float32),
            "privileged": TensorSpec((1,), torch.float32),
        }
        self.action_spec = TensorSpec((1,), torch.float32, -1.0, 1.0)
        self.instructions, self.max_episode_steps, self.control_dt = ["reach"], 30, 0.1
        self.gen = torch.Generator().manual_seed(seed)
        self.x, self.goal = torch.zeros(n), torch.zeros(n)
        self.t, self.ret = torch.zeros(n, dtype=torch.long), torch.zeros(n)

    def _obs(self) -> Obs:
        return {
            "state": torch.stack([self.goal - self.x, self.x], -1),
            "privileged": self.goal[:, None],
        }

    def _reset(self, ids: torch.Tensor) -> None:
        k = len(ids)
        self.x[ids] = torch.rand(k, generator=self.gen) * 2 - 1
        self.goal[ids] = torch.rand(k, generator=self.gen) * 2 - 1
        self.t[ids], self.ret[ids] = 0, 0.0

    def reset(self, seed: int | None = None) -> Obs:
        if seed is not None:
            self.gen.manual_seed(seed)
        self._reset(torch.arange(self.num_envs))
        return self._obs()

    def step(self, action):
        assert action.abs().max() <= 1.0  # the learner clips what it sends
        self.x = self.x + 0.1 * action[:, 0]
        dist = (self.goal - self.x).abs()
        reward = -dist
        self.t += 1
        self.ret += reward
        terminated = dist < 0.05
        truncated = (self.t >= self.max_episode_steps) & ~terminated
        done = terminated | truncated
        final = self._obs()
        episode = {"return": self.ret.clone(), "length": self.t.clone(), "success": terminated,
                   "metrics": {"final_distance": dist.clone()}}  # fmt: skip
        info = {"final_obs": final, "success": terminated, "episode": episode}
        self._reset(done.nonzero().flatten())
        return self._obs(), reward, terminated, truncated, info


def mean_return(env: PointMass, controller, episodes_seed: int = 123) -> float:
    """Mean return of the first episode of every env."""
    obs = env.reset(seed=episodes_seed)
    total, done_once = torch.zeros(env.num_envs), torch.zeros(env.num_envs, dtype=torch.bool)
    for _ in range(env.max_episode_steps):
        obs, r, term, trunc, _ = env.step(controller(obs).clamp(-1, 1))
        total += r * ~done_once
        done_once |= term | trunc
    return float(total.mean())


TINY = dict(actor_hidden=(32, 32), critic_hidden=(32, 32), reference_envs=128, steps_per_env=16)


def test_ppo_learns_point_mass_to_near_optimal():
    torch.manual_seed(0)
    env = PointMass(128, seed=1)
    cfg = PPOConfig(env_steps=128 * 16 * 40, **TINY)
    learner = PPO({"state": 2, "privileged": 1}, 1, cfg, seed=0)
    assert learner.model.critic_keys == ("state", "privileged")
    log: list[dict] = []
    steps = train_ppo(env, learner, seed=0, on_iteration=lambda s, sc: log.append(sc))
    assert steps == cfg.env_steps
    test_env = PointMass(256, seed=7)
    optimal = mean_return(test_env, lambda o: o["state"][:, :1] / 0.1)
    rand_gen = torch.Generator().manual_seed(0)
    random = mean_return(
        test_env, lambda o: torch.rand(o["state"].shape[0], 1, generator=rand_gen) * 2 - 1
    )
    learned = mean_return(test_env, learner.model.act)
    # optimal ≈ −3.3 (straight to the goal at full speed), random ≈ −21; after 10 updates
    # PPO is at −3.75, after 2 at −20.6
    assert optimal - 0.3 <= learned <= optimal + 1e-3, (learned, optimal, random)
    assert random < optimal - 10
    assert log[-1]["episode/success"] > 0.9
    assert 0 < log[-1]["std"] < 1.0  # exploration shrank from its initial std 1
    assert all(cfg.lr_min <= entry["lr"] <= cfg.lr_max for entry in log)


def test_checkpoint_round_trip_gives_the_same_actions(tmp_path):
    env = PointMass(64, seed=3)
    cfg = PPOConfig(env_steps=64 * 16 * 2, **TINY)
    learner = PPO({"state": 2, "privileged": 1}, 1, cfg, seed=0)
    train_ppo(env, learner, seed=0)
    save_ppo(tmp_path / "ckpt", learner, {"task": "point_mass", "env_steps": cfg.env_steps})
    policy = load_ppo(tmp_path / "ckpt")
    obs = env.reset(seed=5)
    torch.testing.assert_close(policy(obs), learner.model.act(obs))
    assert policy.act(obs).shape == (64, 1, 1)  # a chunk of one step: the Policy contract
    assert policy.meta["task"] == "point_mass"
    torch.testing.assert_close(policy.model.norms["state"].mean, learner.model.norms["state"].mean)
    assert not any(p.suffix in (".pt", ".pkl") for p in (tmp_path / "ckpt").iterdir())
    meta = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert meta["obs_dims"] == {"state": 2, "privileged": 1}
    (tmp_path / "bad").mkdir()
    with pytest.raises(ConfigError, match="not a PPO checkpoint"):
        load_ppo(tmp_path / "bad")


def test_symmetric_critic_when_asked_or_no_privileged_obs():
    cfg = PPOConfig(asymmetric=False, **TINY)
    assert PPO({"state": 2, "privileged": 1}, 1, cfg).model.critic_keys == ("state",)
    assert PPO({"state": 2}, 1, PPOConfig(**TINY)).model.critic_keys == ("state",)
    assert not math.isinf(PPO({"state": 2}, 1, PPOConfig(**TINY)).model.norms["state"].clip)


def test_ppo_learns_arm_reach_from_its_shaped_reward():
    """arm_reach without ending on success (its terminal +5 is worth less than hovering near the
    goal for the rest of the episode, so with termination on PPO learns to hover just outside
    the 2 cm radius). A random policy: ~1% success, return ~5; the deterministic PPO policy
    after 92k env steps (~12 s): 100%."""
    from robot_rl.algos.ppo_job import PPOPolicy, evaluate_ppo
    from robot_rl.envs import load_task_config, make

    task = load_task_config("arm_reach", {"terminate_on_success": False})
    env = make(task, 128, seed=0)
    cfg = PPOConfig(env_steps=128 * 24 * 30, actor_hidden=(128, 128), critic_hidden=(128, 128))
    learner = PPO({"state": 40}, 7, cfg, seed=0)
    try:
        train_ppo(env, learner, seed=0)
    finally:
        env.close()
    stats = evaluate_ppo(task, PPOPolicy(learner.model, {}), 50, 50, seed=123, device="cpu")
    assert stats.success_rate >= 0.9, stats.summary()
    assert stats.summary()["mean_return"] > 150, stats.summary()


TINY_CLI = [
    "task=arm_reach",
    "num_envs=8",
    "algo.steps_per_env=16",
    "algo.actor_hidden=[32]",
    "algo.critic_hidden=[32]",
    "eval_every=128",
    "eval_episodes=4",
    "eval_envs=4",
    "device=cpu",
]


def test_cli_trains_evaluates_checkpoints_and_resumes(tmp_path):
    from robot_rl.cli.main import main

    out = tmp_path / "run"
    assert main(["train", "ppo", *TINY_CLI, f"out={out}", "algo.env_steps=256"]) == 0
    summary = json.loads((out / "ppo_summary.json").read_text())
    assert [e["env_steps"] for e in summary["evaluations"]] == [128, 256]
    assert summary["final"]["episodes"] == 4 and summary["select"] == "mean_return"
    assert summary["steps_per_env"] == 16 and summary["minibatches"] == 4
    assert (out / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert any((out / "tb").iterdir())
    last = out / "checkpoints" / "last"
    policy = load_ppo(last)
    assert policy.meta["task"] == "arm_reach" and policy.meta["env_steps"] == 256
    assert policy.model.obs_dims == {"state": 40} and policy.model.action_dim == 7
    assert (out / "checkpoints" / "best" / "ppo.safetensors").is_file()

    more = tmp_path / "more"
    args = ["train", "ppo", *TINY_CLI, f"out={more}", "algo.env_steps=384", f"resume={last}"]
    assert main(args) == 0
    resumed = json.loads((more / "ppo_summary.json").read_text())
    assert [e["env_steps"] for e in resumed["evaluations"]] == [384]  # 256 → 384, one update
    # the statistics carried on: 256 + 128 states folded in, not 128
    assert load_ppo(more / "checkpoints" / "last").model.norms["state"].count.item() == 384

    assert main(["train", "ppo", "num_envs=8"]) == 2  # no task: a usage line
    assert main(["train", "ppo", *TINY_CLI, f"out={out}", "algo.scale_with_envs=x"]) == 2


def test_train_task_overrides_reach_only_the_training_envs(tmp_path):
    from robot_rl.cli.main import main

    out = tmp_path / "run"
    extra = ["train_task.episode_length=5", "train_task.randomization.friction=[0.5,0.6]"]
    assert main(["train", "ppo", *TINY_CLI, f"out={out}", "algo.env_steps=128", *extra]) == 0
    summary = json.loads((out / "ppo_summary.json").read_text())
    lengths = [t["episode/length"] for t in summary["training"] if "episode/length" in t]
    assert lengths and max(lengths) <= 5  # training episodes end at 5 steps
    assert summary["final"]["mean_length"] > 5  # evaluation: the task's 60-step episodes
    meta = load_ppo(out / "checkpoints" / "last").meta
    assert meta["train_task"] == {"episode_length": 5, "randomization": {"friction": [0.5, 0.6]}}
    assert meta["task_config"]["episode_length"] == 60
    bad = [*TINY_CLI, f"out={out}", "train_task.episode_lenght=5"]
    assert main(["train", "ppo", *bad]) == 2  # a misspelt task field is a one-line error
