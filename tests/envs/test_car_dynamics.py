import dataclasses
import math

import pytest
import torch

from robot_rl.core import ConfigError
from robot_rl.envs.tasks.car import dynamics as D

P = D.CarParams()
L = 0.15875 + 0.17145  # wheelbase 0.3302 m
DT = 0.01


def _run(state, steer, accel, steps, params=P, dt=DT):
    n = state.shape[0]
    steer = torch.full((n,), steer, dtype=state.dtype) if isinstance(steer, float) else steer
    accel = torch.full((n,), accel, dtype=state.dtype) if isinstance(accel, float) else accel
    traj = []
    for _ in range(steps):
        state = D.step(state, steer, accel, params, dt)
        traj.append(state)
    return torch.stack(traj)


def test_straight_acceleration_from_rest_is_uniform_motion():
    # a = 1 m/s² for 0.4 s stays kinematic (v <= 0.4): v = a t = 0.4, x = ½ a t² = 0.08.
    traj = _run(torch.zeros(1, 7, dtype=torch.float64), 0.0, 1.0, 40)
    assert traj[-1, 0, D.V].item() == pytest.approx(0.4, abs=1e-9)
    assert traj[-1, 0, D.X].item() == pytest.approx(0.08, abs=1e-9)
    # Through the blend into the dynamic regime: a = 5 for 1 s → v = 5, x = 2.5, still straight.
    traj = _run(torch.zeros(1, 7, dtype=torch.float64), 0.0, 5.0, 100)
    assert traj[-1, 0, D.V].item() == pytest.approx(5.0, abs=1e-9)
    assert traj[-1, 0, D.X].item() == pytest.approx(2.5, abs=1e-9)
    assert traj[-1, 0, [D.Y, D.YAW, D.SLIP]].abs().max().item() < 1e-12


def test_acceleration_limits_and_power_cap():
    # Command 50 m/s² → max_accel 9.51: after 0.1 s, v = 0.951.
    traj = _run(torch.zeros(1, 7, dtype=torch.float64), 0.0, 50.0, 10)
    assert traj[-1, 0, D.V].item() == pytest.approx(0.951, abs=1e-9)
    # Above v_switch = 7.319 the cap is 9.51 · 7.319 / v: at v = 14.638 it is half, 4.755 m/s².
    state = torch.zeros(1, 7, dtype=torch.float64)
    state[0, D.V] = 2 * 7.319
    _, accel = D.apply_limits(state, torch.zeros(1), torch.full((1,), 9.51), P, DT)
    assert accel.item() == pytest.approx(4.755, abs=1e-6)
    # At v_max no further acceleration; at v_min no further braking.
    state[0, D.V] = 20.0
    assert D.step(state, torch.zeros(1), torch.full((1,), 5.0))[0, D.V].item() == 20.0
    state[0, D.V] = -5.0
    assert D.step(state, torch.zeros(1), torch.full((1,), -5.0))[0, D.V].item() == -5.0


def test_low_speed_cornering_follows_kinematic_circle():
    # δ = 0.3 at 0.3 m/s: the rear axle runs on a circle of radius L / tan δ = 0.3302 / 0.30934
    # = 1.0674 m; the CoG on sqrt(R² + lr²) = 1.0811 m.
    delta, v = 0.3, 0.3
    state = torch.zeros(1, 7, dtype=torch.float64)
    state[0, D.V], state[0, D.STEER] = v, delta
    traj = _run(state, delta, 0.0, 1500)[:, 0]  # 15 s ≈ 0.66 of a lap
    yaw = traj[:, D.YAW]
    rear = traj[:, :2] - 0.17145 * torch.stack((yaw.cos(), yaw.sin()), dim=-1)
    # Algebraic circle fit: x² + y² = 2 a x + 2 b y + c.
    a_mat = torch.stack((2 * rear[:, 0], 2 * rear[:, 1], torch.ones_like(yaw)), dim=-1)
    sol = torch.linalg.lstsq(a_mat, (rear**2).sum(-1, keepdim=True)).solution[:, 0]
    radius = math.sqrt(sol[2] + sol[0] ** 2 + sol[1] ** 2)
    assert radius == pytest.approx(L / math.tan(delta), rel=1e-4)
    cog_radius = (traj[:, :2] - sol[:2]).norm(dim=-1)
    assert cog_radius.std().item() < 1e-6
    assert cog_radius.mean().item() == pytest.approx(
        math.hypot(L / math.tan(delta), 0.17145), rel=1e-4
    )


def test_steering_rate_and_angle_limits():
    # 3.2 rad/s × 0.01 s = 0.032 rad per step toward the target 1.0, clipped to ±0.4189.
    traj = _run(torch.zeros(1, 7), 1.0, 0.0, 20)[:, 0, D.STEER]
    assert traj[0].item() == pytest.approx(0.032, abs=1e-7)
    assert traj[4].item() == pytest.approx(0.16, abs=1e-6)
    steps = torch.diff(torch.cat((torch.zeros(1), traj)))
    assert steps.max().item() <= 0.032 + 1e-6
    assert traj[-1].item() == pytest.approx(0.4189, abs=1e-6)  # 14 steps reach the limit
    # A target within one step's reach is hit exactly (no chatter around it).
    state = torch.zeros(1, 7)
    state[0, D.STEER] = 0.1
    assert D.step(state, torch.full((1,), 0.12), torch.zeros(1))[
        0, D.STEER
    ].item() == pytest.approx(0.12)


@pytest.mark.parametrize("v", [0.0, -0.3, -4.0, 0.5, 15.0])
def test_no_nan_at_rest_reversing_or_fast_and_finite_gradients(v):
    n = 5
    state = torch.zeros(n, 7, dtype=torch.float64)
    state[:, D.V] = v
    state[:, D.STEER] = torch.linspace(-0.4, 0.4, n)
    state.requires_grad_(True)
    steer = torch.linspace(0.4, -0.4, n, dtype=torch.float64)
    accel = torch.tensor([-9.0, -1.0, 0.0, 1.0, 9.0], dtype=torch.float64)
    out = state
    for _ in range(50):
        out = D.step(out, steer, accel)
    assert torch.isfinite(out).all()
    out.sum().backward()
    assert torch.isfinite(state.grad).all()


def test_reversing_turns_the_other_way():
    # Kinematic in reverse: yaw rate v cos β tan δ / L < 0 for v < 0, δ > 0.
    state = torch.zeros(1, 7)
    state[0, D.V], state[0, D.STEER] = -1.0, 0.2
    out = _run(state, 0.2, 0.0, 10)[-1, 0]
    assert out[D.YAW_RATE].item() < 0 and out[D.YAW].item() < 0 and out[D.X].item() < 0


def test_batch_equals_per_car_stepping():
    n = 10_000
    gen = torch.Generator().manual_seed(0)

    def uniform(lo, hi):
        return lo + (hi - lo) * torch.rand(n, generator=gen)

    state = torch.stack(
        (
            uniform(-10, 10),
            uniform(-10, 10),
            uniform(-math.pi, math.pi),
            uniform(-5, 20),
            uniform(-3, 3),
            uniform(-0.3, 0.3),
            uniform(-0.4189, 0.4189),
        ),
        dim=-1,
    )
    state[:50, D.V] = torch.linspace(0.3, 0.7, 50)  # cover the blend zone densely
    steer, accel = uniform(-0.6, 0.6), uniform(-12, 12)
    params = dataclasses.replace(P, mu=uniform(0.4, 1.2), C_Sf=uniform(4, 5.5), m=uniform(3, 4.5))
    batched = D.step(state, steer, accel, params)
    # Per-car stepping costs ~0.6 ms a call, so it checks every 8th car plus the blend zone; a
    # permutation of the whole batch checks that no row of the 10,000 leaks into another.
    rows = torch.cat((torch.arange(50), torch.arange(50, n, 8)))
    single = torch.cat(
        [
            D.step(
                state[i : i + 1],
                steer[i : i + 1],
                accel[i : i + 1],
                dataclasses.replace(
                    params,
                    mu=params.mu[i : i + 1],
                    C_Sf=params.C_Sf[i : i + 1],
                    m=params.m[i : i + 1],
                ),
            )
            for i in rows.tolist()
        ]
    )
    torch.testing.assert_close(batched[rows], single, rtol=1e-6, atol=1e-6)
    perm = torch.randperm(n, generator=gen)
    permuted = dataclasses.replace(
        params, mu=params.mu[perm], C_Sf=params.C_Sf[perm], m=params.m[perm]
    )
    torch.testing.assert_close(
        D.step(state[perm], steer[perm], accel[perm], permuted), batched[perm], rtol=0, atol=0
    )


def test_low_friction_understeers_by_the_linear_steady_state():
    # Linear single-track steady state: r = v δ / (L + K v²/g), understeer gradient
    # K = (1/C_Sf − 1/C_Sr) / μ. μ = 0.4, v = 6, δ = 0.05: K = 0.028676 / 0.4 = 0.07169,
    # K v²/g = 0.26308, r = 0.3 / 0.59328 = 0.50566 rad/s. Kinematic: v tan δ cos β / L = 0.9089.
    yaw_rates = {}
    for mu in (0.4, 1.0489):
        state = torch.zeros(1, 7, dtype=torch.float64)
        state[0, D.V], state[0, D.STEER] = 6.0, 0.05
        yaw_rates[mu] = _run(state, 0.05, 0.0, 300, dataclasses.replace(P, mu=mu))[
            -1, 0, D.YAW_RATE
        ].item()
    _, kinematic = D.kinematic_slip_and_yaw_rate(torch.tensor([6.0]), torch.tensor([0.05]), P)
    assert yaw_rates[0.4] == pytest.approx(0.50566, rel=1e-3)
    assert yaw_rates[0.4] < yaw_rates[1.0489] < kinematic.item()


def test_rollout_is_repeated_steps_and_keeps_dtype():
    state = torch.zeros(3, 7, dtype=torch.float64)
    state[:, D.V] = torch.tensor([0.0, 2.0, 8.0], dtype=torch.float64)
    cmd = torch.tensor([[0.2, 1.0], [-0.1, 0.0], [0.05, -2.0]], dtype=torch.float64)
    traj = D.rollout(state, cmd, substeps=10, return_trajectory=True)
    assert traj.shape == (10, 3, 7) and traj.dtype == torch.float64
    torch.testing.assert_close(traj[-1], _run(state, cmd[:, 0], cmd[:, 1], 10)[-1], rtol=0, atol=0)
    torch.testing.assert_close(D.rollout(state, cmd, substeps=10), traj[-1], rtol=0, atol=0)


def test_bad_inputs_are_rejected():
    with pytest.raises(ConfigError, match="mu"):
        D.CarParams(mu=torch.tensor([1.0, -0.1]))
    with pytest.raises(ValueError, match=r"\(N, 7\)"):
        D.step(torch.zeros(2, 6), torch.zeros(2), torch.zeros(2))
    with pytest.raises(ValueError, match="cmd"):
        D.rollout(torch.zeros(2, 7), torch.zeros(2, 3))
