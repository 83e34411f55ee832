import mujoco
import pytest

from robot_rl.core import ConfigError, asset_path, load_profile


def test_arm_profile_matches_the_mjcf_model():
    p = load_profile("arm")
    model = mujoco.MjModel.from_xml_path(str(asset_path("sim", "arm", "scene.xml")))
    assert len(p.joints) == 6 and p.gripper is not None
    for j in [*p.joints, p.gripper]:
        mj = model.joint(j.name)
        assert tuple(mj.range) == pytest.approx((j.lower, j.upper)), j.name
    for j in p.joints:
        lo, hi = model.actuator(j.name).forcerange
        assert hi == pytest.approx(j.effort), j.name
    assert p.control_rate_hz == 20.0
    assert model.site(p.ee_frame).id >= 0
    assert p.workspace is not None and p.workspace.low[2] < p.workspace.high[2]


def test_home_pose_puts_the_tcp_above_the_table_pointing_down():
    p = load_profile("arm")
    model = mujoco.MjModel.from_xml_path(str(asset_path("sim", "arm", "scene.xml")))
    data = mujoco.MjData(model)
    for j in p.joints:
        data.qpos[model.joint(j.name).qposadr[0]] = j.default
    mujoco.mj_forward(model, data)
    tcp = data.site_xpos[model.site("tcp").id]
    assert tcp == pytest.approx([0.45, 0.0, 0.2], abs=1e-3)
    z_axis = data.site_xmat[model.site("tcp").id].reshape(3, 3)[:, 2]
    assert z_axis == pytest.approx([0, 0, -1], abs=1e-3)


@pytest.mark.parametrize(
    "body, match",
    [
        ("name: x\nrobot_type: y\ncontrol_rate_hz: 10\n", r"missing \['joints'\]"),
        (
            "name: x\nrobot_type: y\ncontrol_rate_hz: 10\njoints:\n"
            "  - {name: a, lower: 1, upper: 0, velocity: 1, effort: 1}\n",
            "lower 1 must be < upper 0",
        ),
        (
            "name: x\nrobot_type: y\ncontrol_rate_hz: 10\njoints:\n"
            "  - {name: a, lower: 0, upper: 1, velocity: 1, effort: 1, default: 3}\n",
            "default 3",
        ),
        ("[unclosed", "not valid YAML"),
        ("- just\n- a list\n", "must be a mapping"),
    ],
)
def test_bad_profiles_fail_with_one_line_messages(tmp_path, body, match):
    f = tmp_path / "bad.yaml"
    f.write_text(body)
    with pytest.raises(ConfigError, match=match) as e:
        load_profile(f)
    assert "\n" not in str(e.value)


def test_missing_profile():
    with pytest.raises((ConfigError, FileNotFoundError), match="nope"):
        load_profile("nope")
