"""3Dconnexion SpaceMouse through hidapi: raw 6-DoF HID reports → twist, buttons → gripper/events.

Report layout (little-endian int16 per axis, about ±350 at full deflection):
  id 1: translation x, y, z (6 bytes); newer devices (SpaceMouse Compact/Wireless) send all six
        axes in one 12-byte id-1 report (translation then rotation)
  id 2: rotation rx, ry, rz (6 bytes)
  id 3: button bitmask (bit 0 left, bit 1 right)
Device axes: x right, y toward the user, z down; rotations about those axes. The robot base frame
is x forward, y left, z up, hence every axis flips: robot (x, y, z) = (−dev_y, −dev_x, −dev_z) and
the same for rotations.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

from robot_rl.core.errors import ConfigError
from robot_rl.teleop.command import Event, TeleopCommand
from robot_rl.teleop.devices import EXTRA_HINT

VENDOR_IDS = (0x046D, 0x256F)  # Logitech-era and current 3Dconnexion
FULL_SCALE = 350.0
SPACEMOUSE_HELP = (
    "spacemouse: push/tilt/twist the cap; left button toggles the gripper, right button finishes "
    "the episode as a success (the terminal keys work as well)"
)


@dataclass
class SpaceMouseState:
    """The latest raw readings: translation and rotation counts (3,) each, and the buttons."""

    translation: np.ndarray = field(default_factory=lambda: np.zeros(3))
    rotation: np.ndarray = field(default_factory=lambda: np.zeros(3))
    buttons: int = 0


def parse_report(report: bytes | list[int], state: SpaceMouseState) -> SpaceMouseState:
    """Update ``state`` from one HID report (report id first); unknown ids are ignored."""
    data = bytes(report)
    if not data:
        return state
    rid, body = data[0], data[1:]
    if rid == 1 and len(body) >= 6:
        state.translation = np.array(struct.unpack("<3h", body[:6]), dtype=np.float64)
        if len(body) >= 12:
            state.rotation = np.array(struct.unpack("<3h", body[6:12]), dtype=np.float64)
    elif rid == 2 and len(body) >= 6:
        state.rotation = np.array(struct.unpack("<3h", body[:6]), dtype=np.float64)
    elif rid == 3 and body:
        state.buttons = int.from_bytes(body[:2] if len(body) >= 2 else body[:1], "little")
    return state


def state_twist(state: SpaceMouseState, deadzone: float = 0.05) -> np.ndarray:
    """Robot-frame twist in [-1, 1] from raw counts. Shape: (6,)."""
    t, r = state.translation / FULL_SCALE, state.rotation / FULL_SCALE
    twist = np.array([-t[1], -t[0], -t[2], -r[1], -r[0], -r[2]])
    twist[np.abs(twist) < deadzone] = 0.0
    return np.clip(twist, -1.0, 1.0)


def multi_axis_devices(devices: list[dict]) -> list[dict]:
    """The HID interfaces of 3Dconnexion multi-axis controllers among ``hid.enumerate()``'s:
    the vendor alone is not enough (0x046D is every Logitech device, a Unifying receiver
    included), so the interface must also be a generic-desktop multi-axis controller (usage
    page 1, usage 8)."""
    return [
        d
        for d in devices
        if d.get("vendor_id") in VENDOR_IDS
        and d.get("usage_page", 1) == 1
        and d.get("usage", 8) == 8
    ]


class SpaceMouse:
    """The first 3Dconnexion device hidapi lists (non-blocking reads)."""

    name = "spacemouse"

    def __init__(self) -> None:
        try:
            import hid
        except ImportError:
            raise ConfigError(f"device=spacemouse needs hidapi: {EXTRA_HINT}") from None
        found = multi_axis_devices(hid.enumerate())
        if not found:
            raise ConfigError("device=spacemouse: no 3Dconnexion HID device found (check udev)")
        self._dev = hid.device()
        self._dev.open_path(found[0]["path"])
        self._dev.set_nonblocking(1)
        self.state = SpaceMouseState()

    def poll(self) -> TeleopCommand:
        before = self.state.buttons
        while report := self._dev.read(64):
            parse_report(report, self.state)
        return button_command(self.state, before)

    def close(self) -> None:
        self._dev.close()


def button_command(state: SpaceMouseState, before: int) -> TeleopCommand:
    """The twist plus button presses since ``before`` (left: gripper toggle, right: success)."""
    pressed = state.buttons & ~before
    events = [Event.SUCCESS] if pressed & 2 else []
    return TeleopCommand(twist=state_twist(state), gripper_toggle=bool(pressed & 1), events=events)
