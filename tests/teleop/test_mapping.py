"""Teleop mappings: hand-computed actions for the arm, the RC car and the humanoid."""

from __future__ import annotations

import numpy as np
import pytest

from robot_rl.core.errors import ConfigError
from robot_rl.teleop.command import TeleopCommand, merge
from robot_rl.teleop.mapping import (
    ArmMapping,
    arm_action,
    car_action,
    humanoid_action,
    mapping_for,
)


def test_arm_action_scales_rotations_and_appends_gripper():
    twist = np.array([0.5, -1.0, 0.2, 1.0, 0.0, -0.4])
    # angular 0.5: (1.0, 0, −0.4) → (0.5, 0, −0.2); linear 1 keeps translations.
    np.testing.assert_allclose(arm_action(twist, 1.0, 1.0, 0.5), [0.5, -1, 0.2, 0.5, 0, -0.2, 1])
    # linear 2: 0.5 → 1.0, −1 → −2 clipped to −1, 0.2 → 0.4.
    np.testing.assert_allclose(arm_action(twist, -1.0, 2.0, 1.0), [1, -1, 0.4, 1, 0, -0.4, -1])


def test_car_and_humanoid_actions():
    t = np.array([-0.6, 0.3, 0, 0, 0, 0.5])
    np.testing.assert_allclose(car_action(t), [0.8, -0.6])  # steer 0.5 + 0.3, throttle x
    np.testing.assert_allclose(car_action(np.array([1, 0.4, 0, 0, 0, 0.9]), 0.5), [1.0, 0.5])
    t = np.array([0.4, -0.2, 0.9, 0, 0, 0.6])
    np.testing.assert_allclose(humanoid_action(t, yaw_scale=0.5), [0.4, -0.2, 0.3])


def test_arm_mapping_gripper_toggle_absolute_and_reset():
    m = ArmMapping()
    assert m(TeleopCommand())[6] == -1.0  # starts open
    assert m(TeleopCommand(gripper_toggle=True))[6] == 1.0
    assert m(TeleopCommand())[6] == 1.0  # stays closed
    assert m(TeleopCommand(gripper=0.25, gripper_toggle=True))[6] == 0.25  # absolute wins
    assert m(TeleopCommand(gripper_toggle=True))[6] == -1.0  # 0.25 counts as closed → open
    m(TeleopCommand(gripper_toggle=True))
    m.reset()
    assert m.gripper == -1.0 and m.describe() == "gripper open"


def test_mapping_registry_by_robot_type():
    assert isinstance(mapping_for("arm6_parallel_gripper"), ArmMapping)
    car = mapping_for("rc_car")
    assert car.action_dim == 2
    np.testing.assert_allclose(car(TeleopCommand(twist=[1, 0, 0, 0, 0, -1])), [-1, 1])
    assert mapping_for("humanoid_g1").action_dim == 3
    with pytest.raises(ConfigError, match="unknown teleop mapping 'boat'"):
        mapping_for("boat")


def test_merge_adds_twists_and_keeps_both_event_lists():
    from robot_rl.teleop.command import Event

    a = TeleopCommand(twist=[0.7, 0, 0, 0, 0, 0], gripper_toggle=True, events=[Event.START])
    b = TeleopCommand(twist=[0.7, 0.1, 0, 0, 0, 0], gripper_toggle=True, events=[Event.QUIT])
    m = merge(a, b)
    np.testing.assert_allclose(m.twist, [1.0, 0.1, 0, 0, 0, 0])  # 1.4 clipped
    assert not m.gripper_toggle  # two flips cancel
    assert m.events == [Event.START, Event.QUIT]


@pytest.mark.parametrize("robot_type,dim", [("rc_car", 2), ("humanoid", 3), ("arm6_x", 7)])
def test_every_mapping_takes_the_cli_scales(robot_type, dim):
    from robot_rl.teleop.command import TeleopCommand

    m = mapping_for(robot_type, linear_scale=0.5, angular_scale=0.25)  # as robot-rl teleop calls it
    cmd = TeleopCommand()
    cmd.twist = np.array([1.0, 0, 0, 0, 0, 1.0])
    out = m(cmd)
    assert out.shape == (dim,) and np.all(np.abs(out) <= 1.0)
