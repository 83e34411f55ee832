"""Batched single-track (bicycle) model of a 1/10 RC car, in torch.

State per car, one row of an ``(N, 7)`` tensor (see :data:`STATE_NAMES`):
``x, y`` centre of gravity (m), ``yaw`` (rad), ``v`` speed of the CoG along its velocity direction
(m/s, negative when reversing), ``yaw_rate`` (rad/s), ``slip_angle`` β between heading and velocity
(rad), ``steer`` front wheel angle δ (rad).

Inputs: ``steer_cmd`` is the desired wheel angle (rad, what an AckermannDrive message carries) and
``accel_cmd`` the desired longitudinal acceleration (m/s²). Both pass the f1tenth_gym actuator
limits before they act: the wheel turns toward its target at most ``max_steer_rate``, the
acceleration is clipped to ``±max_accel`` and to the power limit ``max_accel·v_switch/v`` above
``v_switch``, and speed stays in ``[v_min, v_max]``.

Equations: the CommonRoad single-track model that f1tenth_gym uses (Althoff et al., "CommonRoad:
Vehicle Models", 2020, §5, https://gitlab.lrz.de/tum-cps/commonroad-vehicle-models) with linear
tyres whose cornering force scales with the axle load, including the longitudinal load transfer
``g·l ± a·h``. That model divides by ``v``, so below ``v_blend_low`` the kinematic single-track
model (CoG reference) takes over; a smoothstep in ``v`` blends the two between ``v_blend_low`` and
``v_blend_high``. Reversing is always kinematic: the dynamic equations with ``v < 0`` turn the tyre
forces into destabilising ones, and the car only reverses slowly (recovery manoeuvres).
Integration: classic RK4 with inputs held over the step.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from robot_rl.core import ConfigError

STATE_NAMES = ("x", "y", "yaw", "v", "yaw_rate", "slip_angle", "steer")
X, Y, YAW, V, YAW_RATE, SLIP, STEER = range(7)
GRAVITY = 9.81

Scalar = float | torch.Tensor
"""A parameter: one float for every car, or a ``(N,)`` tensor with one value per car."""


@dataclass(frozen=True)
class CarParams:
    """Physical parameters (f1tenth_gym defaults). Any field may be a ``(N,)`` tensor, one per car,
    for domain randomisation; use :func:`dataclasses.replace` to derive a randomised copy."""

    mu: Scalar = 1.0489
    """Tyre-road friction coefficient (scales the cornering force)."""
    C_Sf: Scalar = 4.718
    """Front cornering stiffness per unit load (1/rad)."""
    C_Sr: Scalar = 5.4562
    """Rear cornering stiffness per unit load (1/rad)."""
    lf: Scalar = 0.15875
    """CoG to front axle (m)."""
    lr: Scalar = 0.17145
    """CoG to rear axle (m)."""
    h: Scalar = 0.074
    """CoG height (m), for longitudinal load transfer."""
    m: Scalar = 3.74
    """Mass (kg)."""
    I: Scalar = 0.04712  # noqa: E741 - the textbook symbol for the yaw inertia
    """Yaw moment of inertia (kg·m²)."""
    max_steer: Scalar = 0.4189
    """Wheel angle limit ±(rad)."""
    max_steer_rate: Scalar = 3.2
    """Wheel angle rate limit ±(rad/s)."""
    max_accel: Scalar = 9.51
    """Acceleration limit ±(m/s²)."""
    v_switch: Scalar = 7.319
    """Above this speed (m/s) the motor's power limit caps acceleration at max_accel·v_switch/v."""
    v_min: Scalar = -5.0
    v_max: Scalar = 20.0
    v_blend_low: float = 0.4
    """Pure kinematic model at or below this speed (m/s)."""
    v_blend_high: float = 0.6
    """Pure dynamic model at or above this speed (m/s)."""

    def __post_init__(self) -> None:
        for name in ("mu", "C_Sf", "C_Sr", "lf", "lr", "m", "I", "max_steer", "max_steer_rate"):
            value = getattr(self, name)
            if not bool(torch.all(torch.as_tensor(value) > 0)):
                raise ConfigError(f"CarParams.{name} must be > 0, got {value}")
        if not 0 < self.v_blend_low < self.v_blend_high:
            raise ConfigError(
                f"CarParams needs 0 < v_blend_low < v_blend_high, got "
                f"{self.v_blend_low}, {self.v_blend_high}"
            )

    @property
    def wheelbase(self) -> Scalar:
        return self.lf + self.lr


DEFAULT_PARAMS = CarParams()


def _resolve(params: CarParams, like: torch.Tensor) -> dict[str, Scalar]:
    """Fields as floats or tensors on ``like``'s device and dtype (per-car tensors stay (N,))."""
    out: dict[str, Scalar] = {}
    for f in dataclasses.fields(params):
        value = getattr(params, f.name)
        if isinstance(value, torch.Tensor):
            value = value.to(device=like.device, dtype=like.dtype)
        out[f.name] = value
    return out


def _clip(x: torch.Tensor, lo: Scalar, hi: Scalar) -> torch.Tensor:
    if isinstance(lo, torch.Tensor) or isinstance(hi, torch.Tensor):
        lo_t = torch.as_tensor(lo, dtype=x.dtype, device=x.device)
        hi_t = torch.as_tensor(hi, dtype=x.dtype, device=x.device)
        return torch.minimum(torch.maximum(x, lo_t), hi_t)
    return x.clamp(lo, hi)


def dynamic_weight(v: torch.Tensor, params: CarParams) -> torch.Tensor:
    """Share of the dynamic model at speed ``v`` (N,): 0 below ``v_blend_low``, smoothstep to 1."""
    u = ((v - params.v_blend_low) / (params.v_blend_high - params.v_blend_low)).clamp(0.0, 1.0)
    return u * u * (3.0 - 2.0 * u)


def kinematic_slip_and_yaw_rate(
    v: torch.Tensor, steer: torch.Tensor, params: CarParams
) -> tuple[torch.Tensor, torch.Tensor]:
    """Kinematic-model slip angle β = atan(lr/L·tan δ) and yaw rate v·cos β·tan δ / L, each (N,)."""
    p = _resolve(params, v)
    wheelbase = p["lf"] + p["lr"]
    tan_d = torch.tan(steer)
    beta = torch.atan(p["lr"] / wheelbase * tan_d)
    return beta, v * torch.cos(beta) * tan_d / wheelbase


def _derivative(
    s: torch.Tensor, steer_rate: torch.Tensor, accel: torch.Tensor, p: dict, w: torch.Tensor
) -> torch.Tensor:
    """d(state)/dt (N, 7), blending dynamic (weight w) and kinematic slip / yaw-rate dynamics."""
    yaw, v, r, beta, delta = s[:, YAW], s[:, V], s[:, YAW_RATE], s[:, SLIP], s[:, STEER]
    lf, lr, wheelbase = p["lf"], p["lr"], p["lf"] + p["lr"]

    # Dynamic single-track model (CommonRoad). v is floored at v_blend_low: where w > 0 that is the
    # true speed, elsewhere it only keeps the unused branch (and its gradient) finite.
    vd = v.clamp(min=p["v_blend_low"])
    load_f = GRAVITY * lr - accel * p["h"]  # front axle load per unit mass × L, with transfer
    load_r = GRAVITY * lf + accel * p["h"]
    cf, cr = p["C_Sf"] * load_f, p["C_Sr"] * load_r
    k = p["mu"] * p["m"] / (p["I"] * wheelbase)
    r_dot_dyn = (
        -k / vd * (lf * lf * cf + lr * lr * cr) * r
        + k * (lr * cr - lf * cf) * beta
        + k * lf * cf * delta
    )
    q = p["mu"] / (vd * wheelbase)
    beta_dot_dyn = (q / vd * (cr * lr - cf * lf) - 1.0) * r - q * (cr + cf) * beta + q * cf * delta

    # Kinematic model at the CoG: the chain rule of β_k(δ) and r_k(v, δ), so a
    # consistent (β, r) stays consistent.
    tan_d = torch.tan(delta)
    sec2 = 1.0 + tan_d * tan_d
    ratio = lr / wheelbase
    beta_k = torch.atan(ratio * tan_d)
    beta_dot_kin = ratio * steer_rate * sec2 / (1.0 + (ratio * tan_d) ** 2)
    r_dot_kin = (
        accel * torch.cos(beta_k) * tan_d
        - v * torch.sin(beta_k) * beta_dot_kin * tan_d
        + v * torch.cos(beta_k) * steer_rate * sec2
    ) / wheelbase

    heading = yaw + beta
    return torch.stack(
        (
            v * torch.cos(heading),
            v * torch.sin(heading),
            r,
            accel,
            w * r_dot_dyn + (1.0 - w) * r_dot_kin,
            w * beta_dot_dyn + (1.0 - w) * beta_dot_kin,
            steer_rate,
        ),
        dim=-1,
    )


def apply_limits(
    state: torch.Tensor,
    steer_cmd: torch.Tensor,
    accel_cmd: torch.Tensor,
    params: CarParams,
    dt: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Actuator limits: (steer rate, acceleration) actually applied over the next ``dt``, each (N,).

    The wheel moves toward ``steer_cmd`` (clipped to ±max_steer) as fast as the rate limit allows,
    landing on it exactly when it can; acceleration obeys ±max_accel, the power limit above
    v_switch, and is zeroed when it would push the speed past v_min / v_max.
    """
    p = _resolve(params, state)
    v, delta = state[:, V], state[:, STEER]
    target = _clip(steer_cmd, -p["max_steer"], p["max_steer"])
    steer_rate = _clip((target - delta) / dt, -p["max_steer_rate"], p["max_steer_rate"])
    power_cap = p["max_accel"] * p["v_switch"] / v.clamp(min=1e-3)
    upper = torch.where(v > p["v_switch"], power_cap, torch.full_like(v, 1.0) * p["max_accel"])
    accel = torch.minimum(_clip(accel_cmd, -p["max_accel"], p["max_accel"]), upper)
    blocked = ((v >= p["v_max"]) & (accel > 0)) | ((v <= p["v_min"]) & (accel < 0))
    return steer_rate, torch.where(blocked, torch.zeros_like(accel), accel)


def step(
    state: torch.Tensor,
    steer_cmd: torch.Tensor,
    accel_cmd: torch.Tensor,
    params: CarParams = DEFAULT_PARAMS,
    dt: float = 0.01,
) -> torch.Tensor:
    """Advance every car by ``dt`` seconds (one RK4 step, inputs held).

    Args:
        state: Shape ``(N, 7)``, see :data:`STATE_NAMES`.
        steer_cmd: Shape ``(N,)``, desired wheel angle (rad).
        accel_cmd: Shape ``(N,)``, desired longitudinal acceleration (m/s²).
        params: shared floats or per-car ``(N,)`` tensors.
        dt: seconds.

    Returns:
        Next state, shape ``(N, 7)``, same device and dtype as ``state``.
    """
    if state.ndim != 2 or state.shape[1] != 7:
        raise ValueError(f"state must have shape (N, 7), got {tuple(state.shape)}")
    if steer_cmd.shape != state.shape[:1] or accel_cmd.shape != state.shape[:1]:
        raise ValueError(
            f"steer_cmd {tuple(steer_cmd.shape)} and accel_cmd {tuple(accel_cmd.shape)} must be "
            f"({state.shape[0]},)"
        )
    p = _resolve(params, state)
    steer_rate, accel = apply_limits(state, steer_cmd.to(state), accel_cmd.to(state), params, dt)
    # One blend weight per step (from the start speed) keeps each RK4 step a smooth ODE.
    w = dynamic_weight(state[:, V], params)
    k1 = _derivative(state, steer_rate, accel, p, w)
    k2 = _derivative(state + 0.5 * dt * k1, steer_rate, accel, p, w)
    k3 = _derivative(state + 0.5 * dt * k2, steer_rate, accel, p, w)
    k4 = _derivative(state + dt * k3, steer_rate, accel, p, w)
    nxt = state + dt / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)

    v = _clip(nxt[:, V], p["v_min"], p["v_max"])
    delta = _clip(nxt[:, STEER], -p["max_steer"], p["max_steer"])
    # Where the kinematic model rules, slip and yaw rate are functions of (v, δ), not states:
    # project them onto those values so integration drift cannot accumulate at low speed.
    w_new = dynamic_weight(v, params)
    beta_k, r_k = kinematic_slip_and_yaw_rate(v, delta, params)
    beta = w_new * nxt[:, SLIP] + (1.0 - w_new) * beta_k
    r = w_new * nxt[:, YAW_RATE] + (1.0 - w_new) * r_k
    return torch.stack((nxt[:, X], nxt[:, Y], nxt[:, YAW], v, r, beta, delta), dim=-1)


def rollout(
    state: torch.Tensor,
    cmd: torch.Tensor,
    params: CarParams = DEFAULT_PARAMS,
    dt: float = 0.01,
    substeps: int = 5,
    return_trajectory: bool = False,
) -> torch.Tensor:
    """Hold one control command for ``substeps`` physics steps (control at 1 / (dt·substeps) Hz).

    Args:
        state: Shape ``(N, 7)``.
        cmd: Shape ``(N, 2)``: (steer_cmd rad, accel_cmd m/s²).
        substeps: physics steps per control step, e.g. 10 for 10 Hz at dt = 0.01.
        return_trajectory: also return every substep, for collision checks between control steps.

    Returns:
        The final state ``(N, 7)``, or with ``return_trajectory`` all substeps ``(substeps, N, 7)``.
    """
    if cmd.ndim != 2 or cmd.shape != (state.shape[0], 2):
        raise ValueError(f"cmd must have shape ({state.shape[0]}, 2), got {tuple(cmd.shape)}")
    if substeps < 1:
        raise ValueError(f"substeps must be >= 1, got {substeps}")
    states = []
    for _ in range(substeps):
        state = step(state, cmd[:, 0], cmd[:, 1], params, dt)
        states.append(state)
    return torch.stack(states) if return_trajectory else state


def initial_state(
    xy: torch.Tensor, yaw: torch.Tensor, v: torch.Tensor | None = None
) -> torch.Tensor:
    """State ``(N, 7)`` at rest (or at speed ``v`` (N,)) with straight wheels and no slip."""
    zeros = torch.zeros_like(yaw)
    speed = zeros if v is None else v.to(yaw)
    return torch.stack((xy[:, 0], xy[:, 1], yaw, speed, zeros, zeros, zeros), dim=-1)
