"""The profile's kinematic chain agrees with the MuJoCo model the simulator runs."""

from __future__ import annotations

import mujoco
import numpy as np

from robot_rl.core.paths import asset_path
from robot_rl.core.profile import load_profile
from robot_rl.safety.kinematics import chain_from_profile


def test_fk_and_jacobian_match_mujoco():
    profile = load_profile("arm")
    kin = chain_from_profile(profile.extra)
    model = mujoco.MjModel.from_xml_path(str(asset_path("sim", "arm/scene.xml")))
    data = mujoco.MjData(model)
    adr = [model.joint(n).qposadr[0] for n in profile.joint_names]
    dof = [model.joint(n).dofadr[0] for n in profile.joint_names]
    q = np.random.default_rng(0).uniform(-2.0, 2.0, (20, 6))
    jac_p = np.zeros((3, model.nv))
    ours, jac = kin.fk(q), kin.jacobian(q)[0]
    for i, qi in enumerate(q):
        data.qpos[:] = 0
        data.qpos[adr] = qi
        mujoco.mj_forward(model, data)
        site = model.site("tcp").id
        np.testing.assert_allclose(ours[i], data.site_xpos[site], atol=1e-9)
        mujoco.mj_jacSite(model, data, jac_p, None, site)
        np.testing.assert_allclose(jac[i], jac_p[:, dof], atol=1e-9)


def test_single_pose_path_equals_the_batched_one():
    # the unrolled one-pose code (x/y/z axes, general axes, rpy frames) against the numpy path
    from robot_rl.safety.kinematics import SerialChain

    kin = SerialChain(
        [
            {"joint": "a", "xyz": [0.1, 0, 0.2], "axis": [1, 0, 0]},
            {"joint": "b", "xyz": [0, 0.3, 0], "axis": [0, -1, 0]},
            {"joint": "c", "xyz": [0.1, 0.1, 0.1], "axis": [1, 1, 0], "rpy": [0.1, 0.2, 0.3]},
            {"joint": "d", "xyz": [0, 0, 0.1], "axis": [0, 0, -1]},
        ],
        [0.05, 0, 0.1],
    )
    q = np.random.default_rng(1).uniform(-3, 3, (8, 4))
    jac, tool = kin.jacobian(q)
    pos, rot = kin.pose(q)
    for i in range(len(q)):
        j1, t1 = kin.jacobian(q[i : i + 1])
        p1, r1 = kin.pose(q[i : i + 1])
        np.testing.assert_allclose(j1[0], jac[i], atol=1e-12)
        np.testing.assert_allclose(t1[0], tool[i], atol=1e-12)
        np.testing.assert_allclose(r1[0], rot[i], atol=1e-12)
        np.testing.assert_allclose(p1[0], pos[i], atol=1e-12)
    # and the Jacobian is the derivative of the tool position
    eps = 1e-6
    numeric = np.stack(
        [(kin.fk(q[:1] + eps * np.eye(4)[k]) - kin.fk(q[:1]))[0] / eps for k in range(4)], 1
    )
    np.testing.assert_allclose(jac[0], numeric, atol=1e-5)
