"""The RC car's safety chain inside ``rccar_race``: a stuck full-throttle policy aimed at walls
never crashes with the emergency brake on, and crashes without it."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import pytest
import torch

from robot_rl.algos.safety_sim import CarReadings, CarViolationMeter, SimSafety, attach_safety
from robot_rl.envs import make
from robot_rl.envs.tasks.car import dynamics as D
from robot_rl.safety import SafetyConfig, build_chain

N, STEPS = 72, 260  # 13 s: every car drives several episodes (a stopped car ends "stuck" at 2 s)


@dataclass
class Outcome:
    starts: int  # episodes begun
    collisions: int  # steps with a body corner on a boundary (each ends its episode)
    stuck_ends: int  # episodes that ended stuck (the car stood still for stuck_seconds)
    end_speeds: np.ndarray  # |speed| of each car at its stuck end (m/s)
    fast: int  # episodes whose car reached 5 m/s
    counts: dict[str, int]


def aim_at_walls(env, gen: torch.Generator) -> None:
    """Every car at rest at a random point of its track, a little toward one wall, aimed at the
    other: heading up to 90° off the track's direction (1 in 8 head-on, perpendicular)."""
    for t, ids in env.track_groups:
        track, k = env.tracks[t], len(ids)
        s0 = torch.rand(k, generator=gen) * track.length
        xy, heading = track.point_at(s0)
        index = (torch.searchsorted(track.s, s0, right=True) - 1).clamp(0, len(track.s) - 1)
        left, right = track.half_widths_at(index, s0)
        side = torch.where(torch.rand(k, generator=gen) < 0.5, 1.0, -1.0)  # +1: the left wall
        offset = -side * torch.rand(k, generator=gen) * 0.3 * torch.minimum(left, right)
        turn = side * torch.rand(k, generator=gen) * (math.pi / 2)
        turn[: k // 8] = side[: k // 8] * (math.pi / 2)
        normal = torch.stack((-heading.sin(), heading.cos()), dim=-1)
        env.backend.state[ids] = D.initial_state(xy + offset[:, None] * normal, heading + turn)
        env.seg_index[ids] = index
    env._after_physics(env._all)  # track position, scan and crash flags of the placed cars


def drive_at_walls(chain: list[str] | None, scan_beams: int | None = None) -> Outcome:
    """Full throttle, wheels straight (action [0, 1]: 7 m/s) from the aimed starts and, after
    each episode, from the task's own random starts (along the track, into the next corner's
    outer wall at up to 7 m/s). ``chain``: the rccar chain's components; None: no chain."""
    env = make("rccar_race", N, seed=0)  # tracks oval, twisty, hairpin: 24 cars each
    cfg = SafetyConfig.load("rccar")
    meter = CarViolationMeter(env, cfg)
    if chain is not None:
        cfg = replace(cfg, chain=chain)
        SimSafety(build_chain("rccar", cfg), env, readings=CarReadings(env, scan_beams))
    reached: list[tuple[np.ndarray, ...]] = []  # (stuck, crashed, |speed|) each step reached

    def observe(e) -> None:  # before a finished episode resets
        meter.update()
        reached.append(tuple(x.numpy().copy() for x in (e.stuck, e.crashed, e.speed.abs())))

    env.step_observer = observe
    env.reset(seed=0)
    aim_at_walls(env, torch.Generator().manual_seed(1))
    action = torch.tensor([[0.0, 1.0]]).repeat(N, 1)
    starts, stuck_ends, end_speeds, fast = N, 0, [], 0
    peak = torch.zeros(N)
    for _ in range(STEPS):
        _, _, terminated, truncated, _ = env.step(action)
        stuck, crashed, speed = reached[-1]
        peak = torch.maximum(peak, torch.from_numpy(speed))
        done = (terminated | truncated).numpy()
        stops = done & stuck & ~crashed
        stuck_ends += int(stops.sum())
        end_speeds += speed[stops].tolist()
        fast += int((peak[done] >= 5.0).sum())
        peak[done] = 0.0
        starts += int(done.sum())
    env.close()
    c = meter.result.counts
    return Outcome(starts, c["collision"], stuck_ends, np.array(end_speeds), fast, dict(c))


FULL = SafetyConfig.load("rccar").chain
NO_AEB = [c for c in FULL if c != "emergency_brake"]


@pytest.fixture(scope="module")
def with_aeb() -> Outcome:
    return drive_at_walls(FULL)


def test_full_throttle_at_walls_never_crashes_with_aeb(with_aeb):
    out = with_aeb
    assert out.starts >= 250, out
    assert out.collisions == 0, out
    # the cars stopped before the wall and stood there until the stuck detector ended the
    # episode: every ended episode is a stop, none a crash, none counted as a collision
    assert out.stuck_ends == out.starts - N, out  # no truncations: 13 s < 30 s episodes
    # at rest; a few still inch forward: each tick the rate limiter lets 0.48 m/s through and
    # the brake lets it pass while 0.6 s of it stays clear, until stop_distance (0.2 m) holds
    assert np.median(out.end_speeds) < 0.01 and out.end_speeds.max() < 0.5, out
    assert out.fast >= 30, out  # many approaches at 5-7 m/s, not only slow ones
    assert out.counts["speed"] == 0 and out.counts["geofence"] == 0, out


def test_the_same_starts_crash_without_the_emergency_brake():
    out = drive_at_walls(NO_AEB, scan_beams=32)  # no AEB: the scan is unread, keep it cheap
    assert out.collisions >= 0.8 * out.starts, out
    bare = drive_at_walls(None)
    assert bare.collisions >= 0.8 * bare.starts, bare


def test_the_observation_scan_is_too_sparse_for_the_brake():
    # 32 beams over 4.7 rad: at 7 m/s the corridor holds no beam until ~2.6 m from the lidar,
    # closer than the 0.6 s · 7 m/s + bumper the brake needs; the chain's own dense scan exists
    # for this
    out = drive_at_walls(FULL, scan_beams=32)
    assert out.collisions > 0, out


def test_readings_give_the_rear_axle_pose_and_the_profiles_scan():
    env = make("rccar_race", 3, seed=0, tracks=["oval"])
    sim = attach_safety(env, "rccar")
    env.reset(seed=0)
    state = sim.readings.state(0.0, np.arange(3))
    lr = env.profile.extra["vehicle"]["lr"]
    pose = env.pose.double().numpy()
    heading = np.stack([np.cos(pose[:, 2]), np.sin(pose[:, 2])], -1)
    np.testing.assert_allclose(state.extra["pose"][:, :2], pose[:, :2] - lr * heading, atol=1e-6)
    assert state.extra["ranges"].shape == (3, 1080) == (3, len(state.extra["range_angles"]))
    assert np.all(state.dq == 0.0)
    env.step(torch.tensor([[0.0, 1.0]] * 3))
    summary = sim.summary()
    assert summary["violations/collision"] == 0.0
    assert "safety/emergency_brake/rate" in summary
    env.close()
