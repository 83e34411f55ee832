"""Per-robot adapters of the policy and safety nodes: what they subscribe to, how they build the
policy's state vector and the safety chain's state, and how they command the robot. The nodes
own what every robot shares (action chunks, re-planning, watchdog, modes, e-stop, diagnostics);
an adapter owns the topics and the arithmetic of one ``robot_type`` of the profile.

Implementations: :mod:`robot_rl.deploy.arm_io` (an arm under ros2_control),
:mod:`robot_rl.deploy.car_io` (an Ackermann car behind ackermann_mux),
:mod:`robot_rl.deploy.humanoid_io` (a humanoid on Unitree-style low-level DDS).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from robot_rl.core.errors import ConfigError
from robot_rl.core.profile import RobotProfile
from robot_rl.deploy.node import Out, Port

ADAPTERS = {
    "arm6_parallel_gripper": "robot_rl.deploy.arm_io",
    "ackermann_car": "robot_rl.deploy.car_io",
    "biped_12dof": "robot_rl.deploy.humanoid_io",
}
"""Adapter module by the profile's ``robot_type``; each has ``PolicyInputs`` and ``SafetyIO``."""


class PolicyInputs:
    """What a policy node reads of one robot.

    Attributes:
        ports: subscriptions by key; handlers run in this order when messages arrive together.
        trigger: the key whose messages are observations (at most one action per control
            period); the other keys only update what the next observation reads.
        dim: the state entries it produces.
    """

    ports: dict[str, Port]
    trigger: str
    dim: int

    def update(self, key: str, msg: Any) -> None:
        """Read a message; ``ValueError``: malformed (ignored, nothing changes)."""
        raise NotImplementedError

    def stamp(self, msg: Any) -> float:
        """The header stamp (s) of a trigger message; 0 when the driver does not stamp."""
        raise NotImplementedError

    def state(self) -> np.ndarray:
        """The policy's state ``(dim,)`` float64; ``ValueError`` while an input is missing."""
        raise NotImplementedError

    def acted(self, action: np.ndarray) -> None:
        """The node published ``action`` ``(A,)`` for the last state."""

    def clear(self) -> None:
        """A new episode: forget what belonged to the last one."""


class SafetyIO:
    """What a safety node reads of one robot and how it commands it.

    Attributes:
        names: the command entries ``(J,)`` (the profile's joints / command vector).
        subscriptions, publishers: ports by key (readings; commands).
        measurement: the topic named while no valid reading has come ("waiting for ...").
    """

    names: list[str]
    subscriptions: dict[str, Port]
    publishers: dict[str, Port]
    measurement: str

    def update(self, key: str, msg: Any, now: float) -> bool:
        """Read a message at ``now``; True when it completed a new reading of the commanded
        entries. ``ValueError``: malformed (nothing changes; the reading goes stale)."""
        raise NotImplementedError

    def reading(self) -> tuple[np.ndarray | None, np.ndarray | None, float, dict[str, np.ndarray]]:
        """``q (1, J)`` (None: never read), ``dq (1, J)`` or None, the oldest input's receipt
        time, and the chain's robot-specific readings (``SafetyState.extra``)."""
        raise NotImplementedError

    def proposal(self, action: np.ndarray, q: np.ndarray, last: np.ndarray | None) -> np.ndarray:
        """The policy's action as a command ``(1, J)``; NaN where it cannot be (the chain fails
        closed). ``q (1, J)`` measured, ``last (1, J)`` the chain's last command."""
        raise NotImplementedError

    def command(self, applied: np.ndarray, stamp, mode: str = "policy") -> Out:
        """The messages that command ``applied`` ``(J,)`` in the safety node's ``mode``
        (:class:`~robot_rl.safety.modes.Mode` value: a humanoid's gains follow it; a
        position-controlled robot's command does not)."""
        raise NotImplementedError


def _module(profile: RobotProfile):
    if profile.robot_type not in ADAPTERS:
        raise ConfigError(
            f"{profile.source}: no ROS adapter for robot_type {profile.robot_type!r}; "
            f"known: {sorted(ADAPTERS)}"
        )
    return importlib.import_module(ADAPTERS[profile.robot_type])


def policy_inputs(profile: RobotProfile, params: Mapping[str, Any], config) -> PolicyInputs:
    """The policy node's adapter for ``profile`` (node ``params``, the policy's ``config``)."""
    return _module(profile).PolicyInputs(profile, params, config)


def safety_io(profile: RobotProfile, params: Mapping[str, Any], period: float) -> SafetyIO:
    """The safety node's adapter for ``profile`` (node ``params``, control ``period`` s)."""
    return _module(profile).SafetyIO(profile, params, period)
