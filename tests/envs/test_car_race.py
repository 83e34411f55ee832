"""rccar_race: starts, progress, crashes, stuck, laps, randomisation, the expert, rendering."""

import math

import pytest
import torch

import robot_rl.envs as E
from robot_rl.algos.rollout import rollout
from robot_rl.core import ConfigError
from robot_rl.envs.experts import make_expert
from robot_rl.envs.tasks.car import dynamics as D


def oval_env(n=4, **kw):
    return E.make("rccar_race", n, seed=0, tracks=["oval"], **kw)


def place(env, x, y, yaw, v=0.0):
    """Put every car at (x, y, yaw) at speed v, as a reset would, and refresh the track state."""
    n = env.num_envs
    xy = torch.tensor([[x, y]]).repeat(n, 1)
    state = D.initial_state(xy, torch.full((n,), yaw), torch.full((n,), v))
    env.backend.state[:] = state
    env.seg_index[:] = env.tracks[0].progress(xy)[2]
    env._after_physics(env._all)


def test_spaces_names_and_starts_on_track_at_rest():
    env = E.make("rccar_race", 12, seed=3)
    obs = env.reset(seed=3)
    assert env.action_spec.shape == (2,) and env.action_spec.names == ("steer", "speed")
    assert obs["state"].shape == (12, len(env.state_names)) == (12, 6 + 8 + 32 + 2)
    assert env.control_dt == pytest.approx(0.05)  # the profile's 20 Hz, 5 physics steps of 0.01
    assert [env.tracks[t].name for t in env.track_id[:4].tolist()] == [
        "oval",
        "twisty",
        "hairpin",
        "oval",
    ]
    assert (env.speed == 0).all() and not env.crashed.any()
    for t, ids in env.track_groups:  # the whole body starts inside the boundaries
        assert env.tracks[t].on_track(env.pose[ids, :2], margin=0.3).all()
    state = dict(zip(env.state_names, obs["state"].T))
    assert (state["v_long"] == 0).all() and (state["last_speed"] == -1).all()  # neutral = 0 m/s
    assert (state["track_heading"].abs() <= env.cfg.start_heading + 1e-3).all()
    lidar = obs["state"][:, env.state_names.index("lidar_00") :][:, :32]
    assert (lidar > 0).all() and (lidar <= env.cfg.lidar_max_range).all()


def test_action_maps_to_an_ackermann_command_and_back():
    env = oval_env()
    a = torch.tensor([[1.0, -1.0], [-0.5, 1.0], [0.0, 0.0]])
    cmd = env.action_to_command(a)
    torch.testing.assert_close(cmd, torch.tensor([[0.4189, 0.0], [-0.20945, 7.0], [0.0, 3.5]]))
    torch.testing.assert_close(env.command_to_action(cmd), a)


def test_progress_on_a_straight_equals_distance_driven():
    env = oval_env(2)
    env.reset(seed=0)
    place(env, 1.0, 0.0, 0.0, v=2.0)
    s0 = env.s.clone()
    x0 = env.pose[:, 0].clone()
    total = torch.zeros(2)
    go = env.command_to_action(torch.tensor([[0.0, 2.0]] * 2))
    for _ in range(20):  # 1 s at 2 m/s on the bottom straight (it runs x = 0..12 along +x)
        _, reward, term, trunc, info = env.step(go)
        assert not (term | trunc).any()
        total += info["reward_terms"]["progress"]
    dx = env.pose[:, 0] - x0
    torch.testing.assert_close(total, dx, atol=1e-3, rtol=0)
    torch.testing.assert_close(env.s - s0, dx, atol=1e-3, rtol=0)
    assert dx.min() > 1.8  # it did drive ~2 m
    # observations: straight ahead, the look-ahead points lie on the x axis of the car
    state = dict(zip(env.state_names, env._observe_state().T))
    torch.testing.assert_close(state["ahead_2m_x"], torch.full((2,), 2.0), atol=1e-3, rtol=0)
    torch.testing.assert_close(state["ahead_2m_y"], torch.zeros(2), atol=1e-3, rtol=0)
    torch.testing.assert_close(state["v_long"], torch.full((2,), 2.0), atol=0.05, rtol=0)


def test_driving_straight_into_a_bend_crashes():
    env = oval_env(2)
    env.reset(seed=0)
    place(env, 11.0, 0.0, 0.0, v=3.0)  # 1 m before the left bend, wheels straight
    go = env.command_to_action(torch.tensor([[0.0, 3.0]] * 2))
    steps = 0
    while steps < 40:
        _, reward, term, _, info = env.step(go)
        steps += 1
        if term.all():
            break
    assert term.all() and not info["success"].any()
    assert (info["reward_terms"]["crash"] == 1).all()
    assert (reward < -9).all()  # crash weight -10
    # it left the track on the outside of the bend, beyond the margin
    assert steps < 30


def test_a_car_that_does_not_move_is_stuck():
    env = oval_env(2)
    env.reset(seed=0)
    stop = env.command_to_action(torch.zeros(2, 2))
    k = round(env.cfg.stuck_seconds / env.control_dt)
    steps = 0
    while steps < k + 5:
        _, _, term, _, _ = env.step(stop)
        steps += 1
        if term.any():
            break
    assert term.all() and steps == k  # exactly stuck_seconds without progress


def test_expert_laps_every_track_and_lap_time_is_the_episode_length():
    tracks = ["oval", "twisty", "hairpin", "test_loop"]
    env = E.make("rccar_race", 32, seed=5, tracks=tracks)
    expert = make_expert("rccar_race", env, seed=5)
    stats = rollout(env, expert.act, 64, seed=5, on_reset=expert.reset)
    assert stats.success_rate >= 0.95, stats.summary()
    # every lap takes at least its length at the top speed
    shortest = min(t.length for t in env.tracks) / env.cfg.speed_range[1]
    assert stats.summary()["mean_length"] * env.control_dt > shortest


def test_noisy_expert_is_slower_and_still_mostly_laps():
    env = E.make("rccar_race", 32, seed=6, tracks=["oval"])
    clean = rollout(env, make_expert("rccar_race", env, seed=6).act, 32, seed=6)
    env2 = E.make("rccar_race", 32, seed=6, tracks=["oval"])
    noisy = rollout(env2, make_expert("rccar_race", env2, noise=0.1, seed=6).act, 32, seed=6)
    assert noisy.summary()["mean_length"] > clean.summary()["mean_length"]
    assert noisy.success_rate >= 0.75


def test_same_seed_same_race():
    def run():
        env = E.make("rccar_race", 6, seed=9, randomization={"friction": [0.7, 1.1]})
        obs = env.reset(seed=9)
        gen = torch.Generator().manual_seed(0)
        out = []
        for _ in range(30):
            obs, r, *_ = env.step(torch.rand((6, 2), generator=gen) * 2 - 1)
            out.append(obs["state"])
        return torch.stack(out)

    torch.testing.assert_close(run(), run(), rtol=0, atol=0)


def test_randomisation_draws_per_car_parameters_in_range():
    env = E.make(
        "rccar_race",
        256,
        seed=1,
        cornering_stiffness=[0.5, 0.7],
        randomization={"friction": [0.6, 0.8], "mass": [1.2, 1.3]},
    )
    env.reset(seed=1)
    p, nominal = env.backend.params, env.backend.nominal
    for name, (lo, hi) in (("mu", (0.6, 0.8)), ("C_Sf", (0.5, 0.7)), ("m", (1.2, 1.3))):
        ratio = getattr(p, name) / getattr(nominal, name)
        assert ratio.min() >= lo - 1e-6 and ratio.max() <= hi + 1e-6, name
        assert ratio.std() > 0.01, name  # drawn per car
    torch.testing.assert_close(p.C_Sr / nominal.C_Sr, p.C_Sf / nominal.C_Sf)  # one draw, both axles
    torch.testing.assert_close(p.I / nominal.I, p.m / nominal.m)


def test_lower_friction_cannot_take_the_bend_as_fast():
    # Same start and commands; only the tyre friction differs: the slippery car runs wider.
    def lateral_after_bend(friction):
        env = E.make(
            "rccar_race", 1, seed=0, tracks=["oval"], randomization={"friction": [friction] * 2}
        )
        env.reset(seed=0)
        place(env, 12.0, 0.0, 0.0, v=4.0)
        for _ in range(10):
            env.step(env.command_to_action(torch.tensor([[0.12, 4.0]])))
        return env.lateral.item()

    assert lateral_after_bend(0.3) < lateral_after_bend(1.0) - 0.05


def test_command_filter_sees_and_replaces_physical_commands():
    env = oval_env(2)
    env.reset(seed=0)
    seen = []

    def brake(_env, command):
        seen.append(command.clone())
        return torch.zeros_like(command)

    env.command_filter = brake
    for _ in range(10):
        env.step(env.command_to_action(torch.tensor([[0.2, 5.0]] * 2)))
    torch.testing.assert_close(seen[0], torch.tensor([[0.2, 5.0]] * 2))
    assert env.speed.abs().max() < 1e-6  # the filter's zero speed was applied


def test_bad_configs_fail_with_one_line():
    with pytest.raises(ConfigError, match="speed limits"):
        E.make("rccar_race", 1, speed_range=[0.0, 30.0])
    with pytest.raises(ConfigError, match="no cameras"):
        E.make("rccar_race", 1, image={"enabled": True})
    with pytest.raises(ConfigError, match="joint_damping"):
        E.make("rccar_race", 1, randomization={"joint_damping": [0.5, 1.0]})
    with pytest.raises(ConfigError, match="track"):
        E.make("rccar_race", 1, tracks=["no_such_track"])
    with pytest.raises(ConfigError, match="laps"):
        E.make("rccar_race", 1, laps=0)


def test_render_top_and_chase():
    env = E.make("rccar_race", 3, seed=0)
    env.reset(seed=0)
    top = env.render("top", 60, 80)
    chase = env.render("chase", 60, 80, ids=torch.tensor([2]))
    assert top.shape == (3, 60, 80, 3) and top.dtype == torch.uint8
    assert chase.shape == (1, 60, 80, 3)
    with pytest.raises(ValueError, match="cameras"):
        env.render("front")


def test_gym_adapter_runs_the_race():
    import gymnasium as gym

    env = gym.make("robot_rl/RCCarRace-v0")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (48,)
    obs, r, term, trunc, info = env.step(env.action_space.sample())
    assert math.isfinite(r)


def test_episode_metrics_lap_time_crash_and_laps_per_minute():
    env = E.make("rccar_race", 8, seed=2, tracks=["oval"], laps=0.25)
    expert = make_expert("rccar_race", env, seed=2)
    stats = rollout(env, expert.act, 8, seed=2)
    s = stats.summary()
    assert s["success_rate"] == 1.0 and s["mean_crash"] == 0.0
    # a quarter lap: lap_time = episode seconds / 0.25; laps per minute = 60 / lap_time
    lap_times = [length * env.control_dt / 0.25 for length in stats.lengths]
    assert s["mean_lap_time"] == pytest.approx(sum(lap_times) / 8, rel=1e-5)
    assert s["mean_laps_per_minute"] == pytest.approx(sum(60 / t for t in lap_times) / 8, rel=1e-5)
    # crashing cars: lap time undefined (NaN, left out of the mean), 0 laps per minute
    env = oval_env(2)
    env.reset(seed=0)
    place(env, 11.0, 0.0, 0.0, v=3.0)
    go = env.command_to_action(torch.tensor([[0.0, 3.0]] * 2))
    for _ in range(40):
        _, _, term, _, info = env.step(go)
        if term.all():
            break
    m = info["episode"]["metrics"]
    assert (m["crash"] == 1).all() and m["lap_time"].isnan().all()
    assert (m["laps_per_minute"] == 0).all()
