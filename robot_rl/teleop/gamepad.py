"""Gamepad (Xbox/PlayStation layout, through pygame/SDL): sticks → twist, buttons → events.

The mapping from raw axes and buttons to a :class:`TeleopCommand` is :func:`gamepad_command`, a
pure function testable without pygame; :class:`Gamepad` only reads SDL's joystick state.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from robot_rl.core.errors import ConfigError
from robot_rl.teleop.command import Event, TeleopCommand
from robot_rl.teleop.devices import EXTRA_HINT


@dataclass(frozen=True)
class GamepadLayout:
    """SDL axis and button indices (defaults: an Xbox controller under SDL2's game-controller
    mapping; PlayStation pads report the same indices through SDL)."""

    left_x: int = 0
    left_y: int = 1
    right_x: int = 3
    right_y: int = 4
    left_trigger: int = 2  # -1 released … +1 fully pressed
    right_trigger: int = 5
    a: int = 0
    b: int = 1
    x: int = 2
    y: int = 3
    lb: int = 4
    rb: int = 5
    back: int = 6
    start: int = 7
    deadzone: float = 0.1


BUTTON_EVENTS = {"start": Event.START, "a": Event.SUCCESS, "b": Event.FAILURE,
                 "x": Event.RERECORD, "y": Event.DISCARD, "back": Event.QUIT}  # fmt: skip
GAMEPAD_HELP = """gamepad: left stick x/y, right stick yaw/z, triggers roll (LT−, RT+), LB/RB pitch,
  Start  start episode   A success   B failure (kept)   X re-record   Y discard   Back quit
  right stick click or the terminal's space key: toggle gripper"""


def deadzone(v: float, dz: float) -> float:
    """0 inside ``±dz``, then rescaled so the output still reaches ±1 at full deflection."""
    if abs(v) <= dz:
        return 0.0
    return float(np.sign(v) * (abs(v) - dz) / (1.0 - dz))


def gamepad_command(
    axes: Sequence[float],
    buttons: Sequence[bool],
    previous: Sequence[bool],
    layout: GamepadLayout = GamepadLayout(),
    toggle_button: int = 10,
) -> TeleopCommand:
    """One poll's command from SDL axes (stick y is +1 when pushed *down*) and buttons.

    Events and the gripper toggle fire on a button's press (``previous`` up, now down), so holding
    a button does not repeat them.
    """
    L = layout

    def ax(i: int) -> float:
        return deadzone(float(axes[i]), L.deadzone) if i < len(axes) else 0.0

    def trig(i: int) -> float:  # −1…1 released…pressed → 0…1
        return (float(axes[i]) + 1.0) / 2.0 if i < len(axes) else 0.0

    def down(i: int) -> bool:
        return i < len(buttons) and bool(buttons[i])

    def pressed(i: int) -> bool:
        return down(i) and not (i < len(previous) and previous[i])

    twist = np.array([
        -ax(L.left_y),  # push forward (SDL −1) → +x
        -ax(L.left_x),  # push left → +y
        -ax(L.right_y),  # right stick forward → up
        trig(L.right_trigger) - trig(L.left_trigger),
        float(down(L.rb)) - float(down(L.lb)),
        -ax(L.right_x),  # right stick left → yaw left (+rz)
    ])  # fmt: skip
    events = [ev for name, ev in BUTTON_EVENTS.items() if pressed(getattr(L, name))]
    return TeleopCommand(twist=twist, gripper_toggle=pressed(toggle_button), events=events)


class Gamepad:
    """The first joystick SDL finds; works headless (no window, ``SDL_VIDEODRIVER=dummy``)."""

    name = "gamepad"

    def __init__(self, index: int = 0, layout: GamepadLayout = GamepadLayout()) -> None:
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        try:
            import pygame
        except ImportError:
            raise ConfigError(f"device=gamepad needs pygame: {EXTRA_HINT}") from None
        self._pg = pygame
        pygame.display.init()  # SDL's event queue, which joystick state updates go through
        pygame.joystick.init()
        if pygame.joystick.get_count() <= index:
            found = pygame.joystick.get_count()
            raise ConfigError(f"device=gamepad: no joystick {index} (SDL finds {found})")
        self._js = pygame.joystick.Joystick(index)
        self._js.init()
        self.layout = layout
        self._previous = [False] * self._js.get_numbuttons()

    def poll(self) -> TeleopCommand:
        self._pg.event.pump()
        js = self._js
        axes = [js.get_axis(i) for i in range(js.get_numaxes())]
        buttons = [bool(js.get_button(i)) for i in range(js.get_numbuttons())]
        cmd = gamepad_command(axes, buttons, self._previous, self.layout)
        self._previous = buttons
        return cmd

    def close(self) -> None:
        self._pg.joystick.quit()
        self._pg.display.quit()
