"""Teleop input devices behind one interface: ``poll() -> TeleopCommand``, ``close()``.

:class:`TerminalKeyboard` reads the controlling terminal itself (termios + select), so it works over
SSH and on headless machines; :class:`~robot_rl.teleop.gamepad.Gamepad` (pygame/SDL) and
:class:`~robot_rl.teleop.spacemouse.SpaceMouse` (hidapi) need the ``teleop`` extra.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import select
import signal
import termios
import threading
import time
import tty
from collections.abc import Callable
from typing import Protocol

import numpy as np

from robot_rl.core.errors import ConfigError
from robot_rl.teleop.command import Event, TeleopCommand

EXTRA_HINT = "pip install robot_rl[teleop]"


class Device(Protocol):
    """A teleop input device."""

    name: str

    def poll(self) -> TeleopCommand:
        """Everything that happened since the last poll; never blocks."""
        ...

    def close(self) -> None:
        """Release the device (and restore the terminal)."""
        ...


# Motion keys → (twist axis, sign). Arrow keys arrive as escape sequences (see _ARROWS).
MOTION_KEYS: dict[str, tuple[int, float]] = {
    "w": (0, 1.0), "s": (0, -1.0),  # x forward / back
    "a": (1, 1.0), "d": (1, -1.0),  # y left / right
    "r": (2, 1.0), "f": (2, -1.0),  # z up / down
    "j": (3, 1.0), "l": (3, -1.0),  # roll
    "i": (4, 1.0), "k": (4, -1.0),  # pitch
    "u": (5, 1.0), "o": (5, -1.0),  # yaw
}  # fmt: skip
_ARROWS = {"A": "w", "B": "s", "D": "a", "C": "d"}  # up, down, left, right
HANGUP = "<hangup>"  # the terminal went away (an SSH session closed): quit
EVENT_KEYS: dict[str, Event] = {
    "\r": Event.START, "\n": Event.START,
    "y": Event.SUCCESS, "n": Event.FAILURE,
    "x": Event.RERECORD, "c": Event.DISCARD,
    "q": Event.QUIT, HANGUP: Event.QUIT,
}  # fmt: skip
GRIPPER_KEY = " "

KEY_HELP = """keys (terminal keyboard; a press moves for ~0.15 s, hold a key to keep moving):
  w/s or ↑/↓  x forward/back    a/d or ←/→  y left/right    r/f  z up/down
  j/l roll    i/k pitch    u/o yaw    space  toggle gripper (open ⇄ closed)
  Enter  start episode    y  finish: success    n  finish: failure (kept)
  x  re-record this episode    c  discard this episode    q  quit (Ctrl-C too)"""


def parse_keys(text: str) -> tuple[list[str], str]:
    """Split raw terminal input into key names: arrows become their letter; other escape
    sequences (function keys, Alt+key prefixes) are dropped, never read as keys. Returns the
    keys and an escape sequence cut off at the end of ``text``, to prepend to the next read
    (over SSH a sequence can arrive in two pieces)."""
    keys, i = [], 0
    while i < len(text):
        if text[i] == "\x1b":
            if i + 1 == len(text) or (text[i + 1] in "[O" and i + 2 == len(text)):
                return [k for k in keys if k], text[i:]  # incomplete: wait for the rest
            if text[i + 1] in "[O":
                keys.append(_ARROWS.get(text[i + 2], ""))
                i += 3
            else:
                i += 1  # an Alt prefix or a lone ESC: the key after it counts alone
            continue
        keys.append(text[i])
        i += 1
    return [k for k in keys if k], ""


class TerminalKeyboard:
    """Keys from the controlling terminal in cbreak mode (no echo, no line buffering, Ctrl-C still
    interrupts); the terminal's attributes are restored by :meth:`close`, on leaving a ``with``
    block (exceptions included) and at interpreter exit.

    Terminals send no key-up events, only a press and then auto-repeats while a key is held, so a
    press sets its axis to full and the command decays linearly to zero over ``decay_s``; the
    auto-repeats of a held key keep it up.

    Args:
        tty_path: the terminal to read; default the controlling terminal (``/dev/tty``).
        fd: read this already open terminal descriptor instead (not closed by :meth:`close`).
        decay_s: how long one press keeps moving.
        clock: monotonic time source (seconds), injectable for tests.
    """

    name = "keyboard"

    def __init__(
        self,
        tty_path: str = "/dev/tty",
        *,
        fd: int | None = None,
        decay_s: float = 0.15,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._own = fd is None
        if fd is None:
            try:
                fd = os.open(tty_path, os.O_RDONLY | os.O_NOCTTY)
            except OSError as e:
                raise ConfigError(
                    f"device=keyboard needs a terminal, but {tty_path} cannot be opened "
                    f"({e.strerror}); run it in a terminal or over ssh -t"
                ) from None
        if not os.isatty(fd):
            raise ConfigError(f"device=keyboard needs a terminal, fd {fd} is not one")
        self.fd, self.decay_s, self._clock = fd, decay_s, clock
        self._saved = termios.tcgetattr(fd)
        self._closed = False
        self._pressed = np.full(6, -np.inf)  # time of each axis' last press
        self._sign = np.zeros(6)
        self._partial = ""  # an escape sequence cut between two reads
        tty.setcbreak(fd, termios.TCSANOW)
        atexit.register(self.close)
        # Ctrl-Z then `fg`: the shell hands the terminal back line-buffered; raw mode again
        self._on_cont = None
        if threading.current_thread() is threading.main_thread():
            self._on_cont = signal.signal(signal.SIGCONT, self._resume)

    def poll(self) -> TeleopCommand:
        """Read every pending key; returns the decayed twist plus events and gripper toggles."""
        now, cmd = self._clock(), TeleopCommand()
        text, hung_up = self._read()
        keys, partial = parse_keys(self._partial + text)
        if partial and not text and partial == self._partial:
            partial = ""  # nothing followed it for a whole poll: a lone ESC, dropped
        self._partial = partial
        for key in keys + ([HANGUP] if hung_up else []):
            self.press(key, now, cmd)
        cmd.twist = self.twist(now)
        return cmd

    def press(self, key: str, now: float, cmd: TeleopCommand) -> None:
        """Apply one key at time ``now`` to the motion state and to ``cmd``'s events."""
        if key in MOTION_KEYS:
            axis, sign = MOTION_KEYS[key]
            self._pressed[axis], self._sign[axis] = now, sign
        elif key == GRIPPER_KEY:
            cmd.gripper_toggle = not cmd.gripper_toggle
        elif key in EVENT_KEYS:
            cmd.events.append(EVENT_KEYS[key])

    def twist(self, now: float) -> np.ndarray:
        """Each axis: its last press' sign × max(0, 1 − age/decay_s). Shape: (6,)."""
        age = now - self._pressed
        return self._sign * np.clip(1.0 - age / self.decay_s, 0.0, 1.0)

    def _read(self) -> tuple[str, bool]:
        """Everything pending on the terminal, and whether it hung up (the SSH session closed)."""
        chunks = []
        while select.select([self.fd], [], [], 0)[0]:
            data = os.read(self.fd, 1024)
            if not data:
                return "".join(chunks), True
            chunks.append(data.decode("utf-8", "replace"))
        return "".join(chunks), False

    def _resume(self, signum: int, frame: object) -> None:
        if not self._closed:
            with contextlib.suppress(termios.error):
                tty.setcbreak(self.fd, termios.TCSANOW)
        if callable(self._on_cont):
            self._on_cont(signum, frame)

    def close(self) -> None:
        """Restore the terminal's attributes (idempotent)."""
        if self._closed:
            return
        with contextlib.suppress(termios.error):  # a terminal that is gone needs no restoring
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
        # closed only once restored: a second signal during the restore still finds it to do
        self._closed = True
        atexit.unregister(self.close)
        if self._on_cont is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGCONT, self._on_cont)
            self._on_cont = None
        if self._own:
            os.close(self.fd)

    def __enter__(self) -> TerminalKeyboard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class NullDevice:
    """A device that never commands anything (the extra keyboard when there is no terminal)."""

    name = "none"

    def poll(self) -> TeleopCommand:
        return TeleopCommand()

    def close(self) -> None:
        pass


def make_device(name: str) -> Device:
    """``keyboard``, ``gamepad`` or ``spacemouse``; the optional ones fail with a one-line hint."""
    if name == "keyboard":
        return TerminalKeyboard()
    if name == "gamepad":
        from robot_rl.teleop.gamepad import Gamepad

        return Gamepad()
    if name == "spacemouse":
        from robot_rl.teleop.spacemouse import SpaceMouse

        return SpaceMouse()
    raise ConfigError(f"device must be keyboard, gamepad or spacemouse, got {name!r}")
