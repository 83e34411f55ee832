import math

import torch

from robot_rl.envs.ik import (
    axis_angle_to_matrix,
    dls_step,
    matrix_to_axis_angle,
    orientation_error,
    quat_to_matrix,
    yaw_quat,
)


def test_dls_matches_hand_computed_solution():
    # J = 2·I (6×6), λ = 1: dq = Jᵀ(JJᵀ + I)⁻¹e = 2/(4+1)·e = 0.4·e
    jac = 2 * torch.eye(6, dtype=torch.float64).unsqueeze(0)
    err = torch.tensor([[1.0, -2.0, 0.5, 0.0, 0.1, 3.0]], dtype=torch.float64)
    torch.testing.assert_close(dls_step(jac, err, 1.0), 0.4 * err)


def test_dls_is_bounded_at_a_singularity():
    jac = torch.zeros(1, 6, 6, dtype=torch.float64)
    jac[0, 0, 0] = 1e-9  # nearly singular
    dq = dls_step(jac, torch.ones(1, 6, dtype=torch.float64), 0.05)
    assert torch.isfinite(dq).all() and dq.abs().max() < 1e-3


def test_axis_angle_round_trip_including_zero_and_pi():
    torch.manual_seed(0)
    v = torch.randn(64, 3, dtype=torch.float64)
    v = v / v.norm(dim=-1, keepdim=True) * torch.rand(64, 1, dtype=torch.float64) * 3.0
    v[0] = 0.0
    v[1] = torch.tensor([0.0, 0.0, math.pi - 1e-5], dtype=torch.float64)
    back = matrix_to_axis_angle(axis_angle_to_matrix(v))
    torch.testing.assert_close(
        axis_angle_to_matrix(back), axis_angle_to_matrix(v), atol=1e-6, rtol=0
    )


def test_orientation_error_of_a_known_rotation():
    rz = axis_angle_to_matrix(torch.tensor([[0.0, 0.0, 0.3]], dtype=torch.float64))
    eye = torch.eye(3, dtype=torch.float64).unsqueeze(0)
    torch.testing.assert_close(
        orientation_error(eye, rz), torch.tensor([[0.0, 0.0, 0.3]], dtype=torch.float64)
    )


def test_yaw_quat_matches_matrix():
    yaw = torch.tensor([0.0, 0.5, -2.0], dtype=torch.float64)
    m = quat_to_matrix(yaw_quat(yaw))
    torch.testing.assert_close(torch.atan2(m[:, 1, 0], m[:, 0, 0]), yaw)


def test_hinge_jacobian_equals_mujocos_at_random_poses():
    import robot_rl.envs as E
    from robot_rl.envs.ik import hinge_jacobian

    env = E.make("arm_push", 16, seed=0, init_joint_noise=0.5)
    env.reset(seed=0)
    for _ in range(3):
        env.step(torch.rand(16, 7) * 2 - 1)
    ours = hinge_jacobian(env._xaxis[:, env._arm_jnt], env._xanchor[:, env._arm_jnt], env.tcp_pos)
    mujoco_jac = env.backend.site_jacobian(env._tcp)[:, :, env._arm_dadr]
    torch.testing.assert_close(ours, mujoco_jac, atol=1e-12, rtol=0)
