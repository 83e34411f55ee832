"""The simulated gripper drive behaves like a real lead-screw gripper: its own top speed stays under
the profile's finger speed limit whatever the target, and a knock does not set it moving faster."""

import mujoco
import numpy as np
import pytest

from robot_rl.core import asset_path, load_profile

LIMIT = load_profile("arm").gripper.velocity  # m/s, one finger


@pytest.fixture
def arm():
    model = mujoco.MjModel.from_xml_path(str(asset_path("sim", "arm", "scene.xml")))
    data = mujoco.MjData(model)
    for k in range(model.nu):  # every servo holds the home pose; the finger opens fully
        data.ctrl[k] = data.qpos[model.jnt_qposadr[model.actuator_trnid[k, 0]]]
    grip = model.actuator("gripper").id
    data.ctrl[grip] = 0.04
    finger = model.joint("finger_left")
    for _ in range(200):
        mujoco.mj_step(model, data)
    return model, data, grip, int(finger.qposadr[0])


def run(model, data, steps, push=None):
    """Step ``steps`` times (``push(i)`` sets external forces); the finger's peak speed."""
    dof = int(model.joint("finger_left").dofadr[0])
    peak = 0.0
    for i in range(steps):
        if push is not None:
            push(i)
        mujoco.mj_step(model, data)
        peak = max(peak, abs(float(data.qvel[dof])))
    return peak


def test_a_full_target_step_moves_the_finger_under_its_speed_limit(arm):
    model, data, grip, qadr = arm
    data.ctrl[grip] = 0.0  # close fully in one command
    peak = run(model, data, 200)
    assert peak < LIMIT, peak
    assert data.qpos[qadr] == pytest.approx(0.0, abs=1e-3)  # and it still gets there (1 s)
    data.ctrl[grip] = 0.04
    assert run(model, data, 200) < LIMIT


def test_a_knock_does_not_set_the_finger_moving_faster_than_its_limit(arm):
    model, data, grip, _ = arm
    data.ctrl[grip] = 0.02
    run(model, data, 200)
    body = model.body("finger_left").id
    axis = data.xmat[body].reshape(3, 3) @ np.array([0.0, 1.0, 0.0])  # the slide axis, world

    def knock(i):  # 30 N against the finger's slide axis for 10 ms
        data.xfrc_applied[body, :3] = -30.0 * axis if i < 2 else 0.0

    assert run(model, data, 60, knock) < LIMIT


@pytest.mark.parametrize("config", ["arm", "arm_contact"])
def test_the_energy_tanks_stiffness_is_the_simulated_servos_gain(config):
    """The tank models each position loop as a spring of the servo's kp: the arm joints in
    profile order, then the gripper. A gain changed in the MJCF must change the config too."""
    from robot_rl.safety import SafetyConfig

    model = mujoco.MjModel.from_xml_path(str(asset_path("sim", "arm", "scene.xml")))
    profile = load_profile("arm")
    names = [*profile.joint_names, "gripper"]
    kp = [float(model.actuator(n).gainprm[0]) for n in names]
    stiffness = SafetyConfig.load(config).energy_tank["stiffness"]
    assert list(map(float, stiffness)) == kp
