"""Batched differential inverse kinematics and rotation helpers (pure torch)."""

from __future__ import annotations

import torch


def dls_step(jac: torch.Tensor, err: torch.Tensor, damping: float) -> torch.Tensor:
    """Damped least squares: ``dq = Jᵀ (J Jᵀ + λ² I)⁻¹ e``.

    Args:
        jac: Shape ``(N, 6, n)``: linear rows then angular rows.
        err: Shape ``(N, 6)``: desired (dx, dy, dz, rx, ry, rz) in world frame.
        damping: λ; keeps the step bounded near singularities (Wampler 1986; Buss 2004 §4).

    Returns:
        Shape ``(N, n)`` joint displacement.
    """
    m = jac.shape[1]
    jjt = jac @ jac.transpose(1, 2)
    eye = torch.eye(m, dtype=jac.dtype, device=jac.device)
    y = torch.linalg.solve(jjt + (damping**2) * eye, err.unsqueeze(-1))
    return (jac.transpose(1, 2) @ y).squeeze(-1)


def hinge_jacobian(axes: torch.Tensor, anchors: torch.Tensor, point: torch.Tensor) -> torch.Tensor:
    """Geometric Jacobian of a world point moved by a chain of hinge joints.

    Column j is (a_j × (p − o_j), a_j) for joint axis a_j through anchor o_j (Siciliano et al.,
    Robotics, §3.1.3). Cheaper than asking the simulator, which recomputes kinematics per env.

    Args:
        axes: Shape ``(N, n, 3)`` world joint axes (MuJoCo ``xaxis``).
        anchors: Shape ``(N, n, 3)`` world joint anchors (MuJoCo ``xanchor``).
        point: Shape ``(N, 3)``.

    Returns:
        Shape ``(N, 6, n)``: linear rows then angular rows.
    """
    lin = torch.linalg.cross(axes, point.unsqueeze(1) - anchors, dim=-1)
    return torch.cat([lin, axes], dim=-1).transpose(1, 2)


def axis_angle_to_matrix(rotvec: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula. ``rotvec`` (N, 3) ⇒ rotation matrices (N, 3, 3); safe at zero angle."""
    theta = rotvec.norm(dim=-1, keepdim=True)
    small = theta < 1e-8
    axis = rotvec / torch.where(small, torch.ones_like(theta), theta)
    x, y, z = axis.unbind(-1)
    zero = torch.zeros_like(x)
    k = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).view(-1, 3, 3)
    s = torch.sin(theta).unsqueeze(-1)
    c = torch.cos(theta).unsqueeze(-1)
    eye = torch.eye(3, dtype=rotvec.dtype, device=rotvec.device).expand_as(k)
    return eye + s * k + (1 - c) * (k @ k)


def matrix_to_axis_angle(mat: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (N, 3, 3) ⇒ rotation vectors (N, 3), angle in [0, π]."""
    trace = mat[..., 0, 0] + mat[..., 1, 1] + mat[..., 2, 2]
    cos = ((trace - 1) / 2).clamp(-1.0, 1.0)
    angle = torch.acos(cos)
    vee = torch.stack(
        [
            mat[..., 2, 1] - mat[..., 1, 2],
            mat[..., 0, 2] - mat[..., 2, 0],
            mat[..., 1, 0] - mat[..., 0, 1],
        ],
        dim=-1,
    )
    sin = torch.sin(angle)
    # Generic case: axis from the skew part. Near π the skew part vanishes: take the axis from the
    # symmetric part (largest diagonal of (R + I) / 2).
    generic = vee * (angle / (2 * sin.clamp_min(1e-8))).unsqueeze(-1)
    generic = torch.where((angle < 1e-6).unsqueeze(-1), 0.5 * vee, generic)
    sym = (mat + torch.eye(3, dtype=mat.dtype, device=mat.device)) / 2
    diag = torch.diagonal(sym, dim1=-2, dim2=-1).clamp_min(0)
    idx = diag.argmax(-1)
    col = sym.gather(-1, idx.view(-1, 1, 1).expand(-1, 3, 1)).squeeze(-1)
    axis_pi = col / col.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    axis_pi = axis_pi * torch.where((axis_pi * vee).sum(-1, keepdim=True) < 0, -1.0, 1.0)
    near_pi = (angle > torch.pi - 1e-3).unsqueeze(-1)
    return torch.where(near_pi, axis_pi * angle.unsqueeze(-1), generic)


def orientation_error(current: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """World-frame rotation vector taking ``current`` (N, 3, 3) to ``target`` (N, 3, 3)."""
    return matrix_to_axis_angle(target @ current.transpose(-1, -2))


def yaw_of(mat: torch.Tensor) -> torch.Tensor:
    """Heading of a rotation's x axis in the world xy plane. (N, 3, 3) ⇒ (N,)."""
    return torch.atan2(mat[..., 1, 0], mat[..., 0, 0])


def quat_to_matrix(quat: torch.Tensor) -> torch.Tensor:
    """MuJoCo quaternions (w, x, y, z), (N, 4) ⇒ (N, 3, 3)."""
    q = quat / quat.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    w, x, y, z = q.unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z),
            2 * (x * y - w * z),
            2 * (x * z + w * y),
            2 * (x * y + w * z),
            1 - 2 * (x * x + z * z),
            2 * (y * z - w * x),
            2 * (x * z - w * y),
            2 * (y * z + w * x),
            1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).view(*quat.shape[:-1], 3, 3)


def yaw_quat(yaw: torch.Tensor) -> torch.Tensor:
    """Quaternion (w, x, y, z) of a rotation by ``yaw`` (N,) about world z. ⇒ (N, 4)."""
    half = yaw / 2
    zero = torch.zeros_like(half)
    return torch.stack([torch.cos(half), zero, zero, torch.sin(half)], dim=-1)
