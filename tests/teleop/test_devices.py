"""Input devices at their lowest layer: terminal attributes and keys, gamepad axes, HID reports."""

from __future__ import annotations

import os
import select
import struct
import sys
import termios
import time

import numpy as np
import pytest

from robot_rl.core.errors import ConfigError
from robot_rl.teleop.command import Event
from robot_rl.teleop.devices import TerminalKeyboard, make_device, parse_keys
from robot_rl.teleop.gamepad import deadzone, gamepad_command
from robot_rl.teleop.spacemouse import SpaceMouseState, button_command, parse_report, state_twist


@pytest.fixture
def pty_pair():
    master, slave = os.openpty()
    yield master, slave
    os.close(master)
    os.close(slave)


class Clock:
    t = 0.0

    def __call__(self) -> float:
        return self.t


def _type(master: int, slave: int, keys: bytes) -> None:
    os.write(master, keys)
    assert select.select([slave], [], [], 2.0)[0], "the pty did not deliver the keys"


def test_keyboard_sets_cbreak_and_restores_the_terminal(pty_pair):
    _, slave = pty_pair
    before = termios.tcgetattr(slave)
    assert before[3] & termios.ICANON and before[3] & termios.ECHO
    with TerminalKeyboard(fd=slave):
        during = termios.tcgetattr(slave)
        assert not during[3] & (termios.ICANON | termios.ECHO)
        assert during[3] & termios.ISIG  # Ctrl-C still interrupts
    assert termios.tcgetattr(slave) == before
    with pytest.raises(RuntimeError), TerminalKeyboard(fd=slave):
        raise RuntimeError("boom")
    assert termios.tcgetattr(slave) == before


def test_keyboard_keys_give_decaying_impulses_and_events(pty_pair):
    master, slave = pty_pair
    clock = Clock()
    with TerminalKeyboard(fd=slave, clock=clock, decay_s=0.15) as kb:
        assert kb.poll().events == []
        _type(master, slave, b"w\x1b[Dy ")  # w: +x, ←: +y, y: success, space: gripper
        cmd = kb.poll()
        np.testing.assert_allclose(cmd.twist, [1, 1, 0, 0, 0, 0])
        assert cmd.events == [Event.SUCCESS] and cmd.gripper_toggle
        clock.t = 0.075  # half the decay: 1 − 0.075/0.15
        cmd = kb.poll()
        np.testing.assert_allclose(cmd.twist, [0.5, 0.5, 0, 0, 0, 0])
        assert cmd.events == [] and not cmd.gripper_toggle
        _type(master, slave, b"s")  # a new press on the x axis: full, opposite sign
        np.testing.assert_allclose(kb.poll().twist, [-1, 0.5, 0, 0, 0, 0])
        clock.t = 0.25
        np.testing.assert_allclose(kb.poll().twist, np.zeros(6))
        _type(master, slave, b"\rxcnq")
        assert kb.poll().events == [
            Event.START, Event.RERECORD, Event.DISCARD, Event.FAILURE, Event.QUIT
        ]  # fmt: skip


def test_parse_keys_splits_arrows_and_keeps_a_cut_sequence_for_the_next_read():
    assert parse_keys("a\x1b[A\x1b[Bq") == (["a", "w", "s", "q"], "")
    assert parse_keys("w\x1b") == (["w"], "\x1b")  # an arrow cut after ESC ...
    assert parse_keys("\x1b" + "[A") == (["w"], "")  # ... completes on the next read
    assert parse_keys("\x1b[") == ([], "\x1b[")
    assert parse_keys("\x1bwq") == (["w", "q"], "")  # Alt+w is w; ESC itself never quits


def test_a_split_arrow_over_two_polls_moves_and_does_not_quit(pty_pair):
    master, slave = pty_pair
    kb = TerminalKeyboard(fd=slave, clock=lambda: 0.0)
    try:
        os.write(master, b"\x1b")
        time.sleep(0.05)
        first = kb.poll()
        os.write(master, b"[A")
        time.sleep(0.05)
        second = kb.poll()
    finally:
        kb.close()
    assert first.events == [] and second.events == []
    assert second.twist[0] == 1.0  # the up arrow: +x


def test_keyboard_without_terminal_is_a_one_line_error(tmp_path):
    with pytest.raises(ConfigError, match="needs a terminal"):
        TerminalKeyboard(str(tmp_path / "no-tty"))


def test_gamepad_axes_and_button_edges():
    # SDL: stick y is +1 pushed down; triggers −1 released … +1 pressed.
    axes = [-0.5, -1.0, -1.0, 0.05, 1.0, 1.0]  # lx, ly, LT, rx, ry, RT
    buttons = [False] * 11
    buttons[0] = buttons[5] = buttons[7] = buttons[10] = True  # A, RB, Start (held), R-stick
    previous = [False] * 11
    previous[7] = True
    cmd = gamepad_command(axes, buttons, previous)
    # x = −ly = 1; y = −dz(−0.5) = (0.5 − 0.1)/0.9; z = −ry = −1; roll = RT − LT = 1 − 0;
    # pitch = RB − LB = 1; yaw = −dz(0.05) = 0.
    np.testing.assert_allclose(cmd.twist, [1, 0.4 / 0.9, -1, 1, 1, 0], atol=1e-12)
    assert cmd.events == [Event.SUCCESS] and cmd.gripper_toggle
    again = gamepad_command(axes, buttons, buttons)  # held: no repeats
    assert again.events == [] and not again.gripper_toggle
    assert deadzone(0.1, 0.1) == 0.0 and deadzone(-1.0, 0.1) == -1.0


def test_gamepad_without_pygame_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pygame", None)
    with pytest.raises(ConfigError, match=r"pip install robot_rl\[teleop\]"):
        make_device("gamepad")


def test_gamepad_through_sdl_without_a_joystick(monkeypatch):
    pytest.importorskip("pygame")
    monkeypatch.setenv("SDL_JOYSTICK_DEVICE", "/nonexistent")
    from robot_rl.teleop.gamepad import Gamepad

    try:
        pad = Gamepad(index=99)
    except ConfigError as e:
        assert "no joystick 99" in str(e)
    else:  # pragma: no cover - a machine with 100 joysticks
        pad.close()


def test_spacemouse_reports():
    s = SpaceMouseState()
    parse_report(struct.pack("<B3h", 1, 350, -175, 35), s)  # translation: right, toward, down
    parse_report(list(struct.pack("<B3h", 2, 0, 70, -350)), s)  # rotation, as hidapi's int list
    np.testing.assert_array_equal(s.translation, [350, -175, 35])
    np.testing.assert_array_equal(s.rotation, [0, 70, -350])
    # robot (x, y, z) = (−dev_y, −dev_x, −dev_z)/350, rotations likewise.
    np.testing.assert_allclose(state_twist(s), [0.5, -1.0, -0.1, -0.2, 0.0, 1.0])
    # The one-report format of newer devices: 6 axes in report 1; out-of-range clips to ±1 and
    # |value| < 0.05 is dead zone (10/350 ≈ 0.029).
    parse_report(struct.pack("<B6h", 1, 0, 0, -700, 10, 0, 0), s)
    np.testing.assert_allclose(state_twist(s), [0, 0, 1.0, 0, 0, 0])
    parse_report(bytes([0x17, 1, 2, 3]), s)  # unknown report: ignored
    parse_report(bytes([3, 0b01]), s)
    cmd = button_command(s, before=0)
    assert s.buttons == 1 and cmd.gripper_toggle and cmd.events == []
    parse_report(bytes([3, 0b11]), s)
    cmd = button_command(s, before=1)
    assert not cmd.gripper_toggle and cmd.events == [Event.SUCCESS]


def test_spacemouse_without_hidapi_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "hid", None)
    with pytest.raises(ConfigError, match=r"pip install robot_rl\[teleop\]"):
        make_device("spacemouse")


def test_the_spacemouse_is_told_apart_from_other_logitech_devices():
    from robot_rl.teleop.spacemouse import multi_axis_devices

    receiver = {"vendor_id": 0x046D, "product_id": 0xC52B, "usage_page": 1, "usage": 2}
    spacemouse = {"vendor_id": 0x046D, "product_id": 0xC626, "usage_page": 1, "usage": 8}
    keyboard = {"vendor_id": 0x1234, "product_id": 1, "usage_page": 1, "usage": 6}
    assert multi_axis_devices([receiver, keyboard, spacemouse]) == [spacemouse]


def test_raw_mode_comes_back_after_ctrl_z_and_fg(pty_pair):
    import signal

    master, slave = pty_pair
    kb = TerminalKeyboard(fd=slave)
    try:
        cooked = termios.tcgetattr(slave)
        cooked[3] |= termios.ICANON | termios.ECHO  # what the shell leaves after a stop
        termios.tcsetattr(slave, termios.TCSANOW, cooked)
        os.kill(os.getpid(), signal.SIGCONT)  # `fg`
        time.sleep(0.05)
        assert not termios.tcgetattr(slave)[3] & termios.ICANON
    finally:
        kb.close()
    assert termios.tcgetattr(slave)[3] & termios.ICANON  # and close() restores the original
