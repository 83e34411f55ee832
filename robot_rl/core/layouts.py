"""State vector layouts: the contract between a simulated task family (``robot_rl.envs``), which
produces the vector, and the ROS 2 policy node (``robot_rl.deploy``), which builds the same
vector from messages on a robot without importing the simulator."""

ARM_STATE_NAMES = (
    [f"joint_pos.{i}" for i in range(6)]
    + [f"joint_vel.{i}" for i in range(6)]
    + ["gripper_opening"]
    + [f"tcp_pos.{a}" for a in "xyz"]
    + [f"tcp_rot6.{i}" for i in range(6)]
    + [f"cube_pos.{a}" for a in "xyz"]
    + [f"cube_rot6.{i}" for i in range(6)]
    + [f"goal_pos.{a}" for a in "xyz"]
    + [f"tcp_to_cube.{a}" for a in "xyz"]
    + [f"cube_to_goal.{a}" for a in "xyz"]
)


HUMANOID_OBS_SCALES = {"ang_vel": 0.25, "joint_vel": 0.05, "command": (2.0, 2.0, 0.25)}
"""Scales of the humanoid tasks' ``state`` groups (legged_gym's): the gyro, the joint velocities
and the command (vx, vy, yaw rate). The envs and the deployed observation both use these."""


def humanoid_state_names(joints: list[str]) -> list[str]:
    """Names of the humanoid tasks' 45 ``state`` entries, for leg joints ``joints``."""
    return (
        [f"base_ang_vel.{a}" for a in "xyz"]
        + [f"projected_gravity.{a}" for a in "xyz"]
        + ["command.vx", "command.vy", "command.yaw_rate"]
        + [f"joint_pos.{j}" for j in joints]
        + [f"joint_vel.{j}" for j in joints]
        + [f"last_action.{j}" for j in joints]
    )
