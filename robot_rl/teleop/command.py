"""What every teleop device produces: a normalized twist, a gripper command and discrete events."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np


class Event(Enum):
    """Discrete operator commands, handled by the session (not by the mapping)."""

    START = "start"  # begin the next episode (between episodes)
    SUCCESS = "success"  # finish the episode, keep it, label it a success
    FAILURE = "failure"  # finish the episode, keep it, label it a failure
    RERECORD = "rerecord"  # drop this take and redo the same scene at once
    DISCARD = "discard"  # drop this take and go back to the reset phase (new scene)
    QUIT = "quit"  # stop; the episode in progress is dropped, saved ones stay


@dataclass
class TeleopCommand:
    """One poll of a device.

    Attributes:
        twist: end-effector / base velocity command in [-1, 1], order (x, y, z, rx, ry, rz) in the
            robot's base frame (x forward, y left, z up). Shape: (6,).
        gripper_toggle: the operator asked to flip the gripper (open ⇄ closed) since the last poll.
        gripper: an absolute gripper command in [-1 open, +1 closed] (e.g. an analog trigger), or
            ``None`` when the device has none; it wins over the toggle.
        events: discrete events since the last poll, in arrival order.
    """

    twist: np.ndarray = field(default_factory=lambda: np.zeros(6))
    gripper_toggle: bool = False
    gripper: float | None = None
    events: list[Event] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.twist = np.clip(np.asarray(self.twist, dtype=np.float64), -1.0, 1.0)
        if self.twist.shape != (6,):
            raise ValueError(f"TeleopCommand.twist must have shape (6,), got {self.twist.shape}")


def merge(motion: TeleopCommand, extra: TeleopCommand) -> TeleopCommand:
    """Combine a motion device's command with a second device's (e.g. the terminal keyboard's
    events next to a SpaceMouse): twists add (then clip), toggles and events are kept from both."""
    return TeleopCommand(
        twist=motion.twist + extra.twist,
        gripper_toggle=motion.gripper_toggle != extra.gripper_toggle,
        gripper=motion.gripper if motion.gripper is not None else extra.gripper,
        events=[*motion.events, *extra.events],
    )
