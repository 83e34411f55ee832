"""The safety chain inside the simulated arm: the same chain the ROS 2 safety node runs filters
every joint command of N parallel envs, and the hard limits the real robot must never cross are
counted from the simulated state."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from robot_rl.core.errors import ConfigError
from robot_rl.envs.tasks.arm.base import ArmEnv
from robot_rl.safety import SafetyChain, SafetyConfig, SafetyState
from robot_rl.safety.cbf import Obstacles


def attach_safety(env, safety: dict | str) -> SimSafety:
    """The chain of a safety config (a dict, or a ``configs/safety`` name or path) filtering
    ``env``'s commands, with a violation meter."""
    from robot_rl.safety import build_chain

    cfg = SafetyConfig.load(safety)
    return SimSafety(build_chain(cfg.profile, cfg), env, ViolationMeter(env, cfg))


class SimSafety:
    """Installs ``chain`` as ``env.command_filter``: each step the env's joint command ``(N, 7)``
    goes through ``chain.step`` with the measured joints, on the simulated clock. Rows whose
    episode just (re)started get the measured pose as their last command."""

    def __init__(
        self, chain: SafetyChain, env: ArmEnv, meter: ViolationMeter | None = None
    ) -> None:
        """With ``meter``, violations are counted on the state every step reaches (terminal
        states included, the env's ``step_observer``)."""
        if not isinstance(env, ArmEnv):
            raise ConfigError(
                f"the safety chain runs in the arm tasks, not in {type(env).__name__}"
            )
        self.chain, self.env, self.meter = chain, env, meter
        self.now = 0.0
        env.command_filter = self
        if meter is not None:
            env.step_observer = lambda _env: meter.update()

    def summary(self) -> dict[str, float]:
        """Intervention rates per component and, with a meter, violations per 1000 steps."""
        out = self.chain.stats.scalars()
        if self.meter is not None:
            out |= {f"violations/{k}": v for k, v in self.meter.result.per_1000().items()}
        return out

    def __call__(self, env: ArmEnv, command: torch.Tensor) -> torch.Tensor:
        q, dq = (x.cpu().numpy() for x in env.command_joints)
        fresh = np.flatnonzero(env.episode_step.cpu().numpy() == 0)
        self.chain.reset_rows(fresh, q)
        state = SafetyState(q=q, dq=dq, now=self.now, stamp=self.now, command_stamp=self.now)
        applied, _ = self.chain.step(state, command.cpu().numpy().astype(np.float64))
        self.now += env.control_dt
        return torch.from_numpy(applied).to(command)

    def detach(self) -> None:
        self.env.command_filter = None
        self.env.step_observer = None


@dataclass
class Violations:
    """Hard-limit violations counted per env step: a step counts once per kind it violates."""

    steps: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def per_1000(self) -> dict[str, float]:
        return {k: 1000.0 * v / max(self.steps, 1) for k, v in self.counts.items()}

    @property
    def total_per_1000(self) -> float:
        return sum(self.per_1000().values())


class ViolationMeter:
    """Counts, from the simulated state after each step, the limits a real arm must never
    cross: arm joint positions and speeds beyond the profile's limits, the gripper's opening or
    speed beyond its limits, the tool outside the workspace box, the tool inside a keep-out region
    of the safety config.

    Args:
        env: the arm env.
        cfg: the safety config (its ``cbf`` keep-out regions).
        position_tol: rad beyond a position limit that counts (the simulator's soft limits).
        speed_factor: measured speed above this times the limit counts.
    """

    def __init__(
        self, env: ArmEnv, cfg: SafetyConfig, position_tol: float = 1e-3, speed_factor: float = 1.0
    ) -> None:
        self.env, p = env, env.profile
        self.lower = torch.tensor(p.limits("lower") + [p.gripper.lower], dtype=torch.float64)
        self.upper = torch.tensor(p.limits("upper") + [p.gripper.upper], dtype=torch.float64)
        self.speed = torch.tensor(p.limits("velocity") + [p.gripper.velocity], dtype=torch.float64)
        self.tol, self.speed_factor = position_tol, speed_factor
        self.low = torch.tensor(p.workspace.low, dtype=torch.float64)
        self.high = torch.tensor(p.workspace.high, dtype=torch.float64)
        obstacles = Obstacles.build(cfg.cbf.get("halfspaces"), cfg.cbf.get("spheres"))
        self.normals = torch.from_numpy(obstacles.normals)
        self.offsets = torch.from_numpy(obstacles.offsets)
        self.centers = torch.from_numpy(obstacles.centers)
        self.radii = torch.from_numpy(obstacles.radii)
        self.result = Violations()

    def kinds(self) -> dict[str, torch.Tensor]:
        """``(N,)`` bool per kind, for the current state."""
        q, dq = (x.cpu() for x in self.env.command_joints)
        tcp = self.env.tcp_pos.cpu()
        beyond = (q < self.lower - self.tol) | (q > self.upper + self.tol)
        fast = dq.abs() > self.speed_factor * self.speed
        out = {
            "joint_position": beyond[:, :-1].any(-1),
            "joint_speed": fast[:, :-1].any(-1),
            # the finger, counted on its own: contact presses it past its open stop or knocks
            # it faster than it is ever commanded to move
            "gripper": beyond[:, -1] | fast[:, -1],
            "workspace": ((tcp < self.low) | (tcp > self.high)).any(-1),
        }
        inside = torch.zeros(len(tcp), dtype=torch.bool)
        if len(self.normals):
            inside |= (tcp @ self.normals.T - self.offsets < 0).any(-1)
        if len(self.centers):
            inside |= ((tcp[:, None] - self.centers).norm(dim=-1) < self.radii).any(-1)
        out["keep_out"] = inside
        return out

    def update(self) -> dict[str, torch.Tensor]:
        kinds = self.kinds()
        self.result.steps += len(next(iter(kinds.values())))
        for k, v in kinds.items():
            self.result.counts[k] = self.result.counts.get(k, 0) + int(v.sum())
        return kinds
