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
