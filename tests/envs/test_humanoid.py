"""The humanoid model, profile and tasks: the default pose stands on PD alone, pushes and falls
terminate, randomization lands in the model, and a seed fixes everything."""

import mujoco
import numpy as np
import pytest
import torch

import robot_rl.envs as E
from robot_rl.core import asset_path, load_profile

CALM = {  # no randomization, no pushes: the nominal robot
    "randomization": {
        "friction": [1, 1],
        "mass": [1, 1],
        "joint_damping": [1, 1],
        "actuator_gain": [1, 1],
        "obs_noise_std": 0.0,
        "action_delay": 0,
    },
    "perturbation": {
        "joint_friction": [0, 0],
        "armature": [1, 1],
        "base_mass_offset": [0, 0],
        "default_pose_offset": 0.0,
        "push_velocity": 0.0,
    },
}


def _make(task="humanoid_balance", n=4, seed=0, **kw):
    cfg = {**CALM, **kw}
    return E.make(task, n, seed=seed, **cfg)


def test_profile_matches_mjcf_joints_limits_gains_and_keyframe():
    p = load_profile("humanoid")
    m = mujoco.MjModel.from_xml_path(str(asset_path("sim", "humanoid/humanoid.xml")))
    assert m.nu == 12 and m.nv == 18 and m.opt.timestep == 0.005
    assert [m.actuator(i).name for i in range(m.nu)] == p.joint_names
    key = m.keyframe("stand")
    for i, j in enumerate(p.joints):
        jnt = m.joint(j.name)
        np.testing.assert_allclose(jnt.range, [j.lower, j.upper])
        a = m.actuator(j.name)
        assert int(a.trnid[0]) == jnt.id
        gains = p.extra["pd_gains"][j.name]
        assert a.gainprm[0] == gains["kp"] and a.biasprm[1] == -gains["kp"]
        assert a.biasprm[2] == -gains["kd"]
        np.testing.assert_allclose(a.forcerange, [-j.effort, j.effort])
        assert key.qpos[int(jnt.qposadr[0])] == pytest.approx(j.default)
        assert key.ctrl[i] == pytest.approx(j.default)
    # about a 30 kg robot; 50 Hz policy on 4 physics steps
    assert 25 < m.body_subtreemass[1] < 35
    assert round(1 / (p.control_rate_hz * m.opt.timestep)) == 4


def test_specs_and_shapes():
    env = _make(n=3)
    obs = env.reset(seed=0)
    assert env.action_spec.shape == (12,) and env.control_dt == pytest.approx(0.02)
    assert obs["state"].shape == (3, 45) and obs["privileged"].shape == (3, 10)
    assert len(env.observation_spec["privileged"].names) == 10
    assert len(env.state_names) == 45 and env.max_episode_steps == 1000
    # standing upright at reset: gravity points down in the base frame, zero command
    torch.testing.assert_close(obs["state"][:, 3:6], torch.tensor([[0.0, 0.0, -1.0]] * 3))
    assert (obs["state"][:, 6:9] == 0).all()


def test_zero_action_stands_20_seconds_and_succeeds():
    env = _make(n=6, init_joint_noise=0.03)
    env.reset(seed=1)
    for t in range(env.max_episode_steps):
        _, _, terminated, truncated, info = env.step(torch.zeros(6, 12))
        assert not terminated.any(), f"fell at step {t}"
    assert truncated.all() and info["success"].all()
    m = info["episode"]["metrics"]
    torch.testing.assert_close(m["survival_time"], torch.full((6,), 20.0))
    assert (m["fell"] == 0).all()
    assert (info["final_obs"]["privileged"][:, 3] > 0.65).all()  # still at standing height


def test_strong_push_falls_and_terminates_as_failure():
    push = {**CALM["perturbation"], "push_velocity": 3.0, "push_interval_s": [0.2, 0.2]}
    env = _make(n=4, perturbation=push)
    env.reset(seed=2)
    ended = torch.zeros(4, dtype=torch.bool)
    for _ in range(150):
        _, _, terminated, truncated, info = env.step(torch.zeros(4, 12))
        assert not truncated.any()
        done = terminated & ~ended
        if done.any():
            assert (info["episode"]["metrics"]["fell"][done] == 1).all()
            assert not info["success"][done].any()
            assert (info["reward_terms"]["termination"][done] == -1).all()
        ended |= terminated
    assert ended.all()


def test_random_policy_falls():
    env = _make(n=8)
    env.reset(seed=3)
    gen = torch.Generator().manual_seed(0)
    ended = torch.zeros(8, dtype=torch.bool)
    for _ in range(250):
        _, _, terminated, _, _ = env.step(torch.rand((8, 12), generator=gen) * 2 - 1)
        ended |= terminated
    assert ended.float().mean() >= 0.5


def test_pushes_happen_at_the_configured_interval():
    push = {**CALM["perturbation"], "push_velocity": 0.2, "push_interval_s": [0.5, 0.5]}
    env = _make(n=2, episode_length=60, perturbation=push)
    env.reset(seed=4)
    counts = []
    for _ in range(60):
        _, _, terminated, _, info = env.step(torch.zeros(2, 12))
        counts.append(env.push_count.clone())
    assert not terminated.any()
    counts = torch.stack(counts)  # (step, env), read after step t+1 has been taken
    # 0.5 s = 25 control steps: pushed before the 26th and the 51st step
    assert (counts[24] == 0).all() and (counts[25] == 1).all() and (counts[50] == 2).all()
    assert (info["episode"]["metrics"]["pushes"] == 2).all()  # the episode ended at 60 steps


def test_push_intervals_are_drawn_per_push_within_the_range():
    push = {**CALM["perturbation"], "push_velocity": 0.05, "push_interval_s": [0.2, 0.6]}
    env = _make(n=8, episode_length=400, perturbation=push)
    env.reset(seed=5)
    pushed_at: list[list[int]] = [[] for _ in range(8)]
    before = env.push_count.clone()
    for t in range(300):
        env.step(torch.zeros(8, 12))
        for i in (env.push_count > before).nonzero().flatten().tolist():
            pushed_at[i].append(t)  # before the physics of step t: episode_step was t
        before = env.push_count.clone()
    gaps = [b - a for times in pushed_at for a, b in zip([0, *times], times, strict=False)]
    # 0.2..0.6 s = 10..30 control steps between pushes (the first counted from the reset)
    assert min(gaps) >= 10 and max(gaps) <= 30
    assert len(set(gaps)) > 5  # drawn, not a fixed period


def test_randomization_ranges_land_in_the_model_and_privileged_obs():
    rand = {**CALM["randomization"], "friction": [0.5, 0.6], "mass": [0.9, 1.1]}
    pert = {
        **CALM["perturbation"],
        "joint_friction": [0.1, 0.2],
        "armature": [1.5, 1.6],
        "base_mass_offset": [2.0, 3.0],
        "default_pose_offset": 0.05,
    }
    env = _make(n=16, randomization=rand, perturbation=pert)
    obs = env.reset(seed=5)
    b, m = env.backend, env.backend.model
    foot = m.geom("left_toe_l").id
    fr = b.model_field("geom_friction")[:, foot, 0]
    assert ((fr >= 0.5) & (fr <= 0.6)).all() and fr.std() > 0
    torch.testing.assert_close(obs["privileged"][:, 6], fr.float())
    loss = b.model_field("dof_frictionloss")[:, 6:]
    assert ((loss >= 0.1) & (loss <= 0.2)).all()
    arm = b.model_field("dof_armature")[:, 6:] / torch.from_numpy(m.dof_armature[6:])
    assert ((arm >= 1.5 - 1e-9) & (arm <= 1.6 + 1e-9)).all()
    pelvis = b.model_field("body_mass")[:, 1]
    nominal = m.body_mass[1]
    assert ((pelvis >= 0.9 * nominal + 2.0) & (pelvis <= 1.1 * nominal + 3.0)).all()
    off = obs["privileged"][:, 7]
    assert ((off >= 2.0) & (off <= 3.0)).all()
    dq0 = env.q0_env - env.q0
    assert (dq0.abs() <= 0.05).all() and dq0.abs().max() > 0.02


def test_observation_noise_has_the_configured_std():
    clean = _make(n=64)
    noisy = _make(n=64, randomization={**CALM["randomization"], "obs_noise_std": 0.1})
    a, b = clean.reset(seed=6), noisy.reset(seed=6)
    diff = b["state"] - a["state"]
    assert diff.std().item() == pytest.approx(0.1, rel=0.1)
    torch.testing.assert_close(a["privileged"], b["privileged"])  # the critic's view is clean


def _rollout(seed: int) -> torch.Tensor:
    env = E.make("humanoid_walk", 4, seed=seed, episode_length=30)
    obs = env.reset(seed=seed)
    gen = torch.Generator().manual_seed(1)
    states = [obs["state"]]
    for _ in range(45):
        obs, *_ = env.step((torch.rand((4, 12), generator=gen) * 2 - 1) * 0.3)
        states.append(torch.cat([obs["state"], obs["privileged"]], -1))
    return torch.cat(states[1:])


def test_same_seed_same_trajectory_with_full_randomization():
    a, b = _rollout(7), _rollout(7)
    assert torch.equal(a, b)
    assert not torch.allclose(a, _rollout(8))


def test_walk_commands_are_drawn_from_the_ranges_and_tracked_in_metrics():
    env = E.make("humanoid_walk", 64, seed=0, episode_length=5)
    env.reset(seed=0)
    c = env.command
    assert (c[:, 0] >= -0.5).all() and (c[:, 0] <= 1.0).all() and c[:, 0].std() > 0.2
    assert (c[:, 2].abs() <= 0.5).all()
    slow = c[:, :2].norm(dim=-1) < 0.2
    assert (c[slow, :2] == 0).all()
    for _ in range(5):
        _, _, _, truncated, info = env.step(torch.zeros(64, 12))
    err = info["episode"]["metrics"]["tracking_error"]
    assert truncated.all() and torch.isfinite(err).all() and (err >= 0).all()
