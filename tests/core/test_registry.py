import pytest

from robot_rl.core import ConfigError, Registry


def test_unknown_name_suggests_close_matches():
    reg: Registry[int] = Registry("task")
    reg.register("arm_push")(1)
    reg.register("arm_reach")(2)
    assert reg.get("arm_push") == 1
    with pytest.raises(ConfigError, match="did you mean 'arm_push'"):
        reg.get("arm_psuh")
    with pytest.raises(ValueError, match="already registered"):
        reg.register("arm_push")(3)
    assert reg.names() == ["arm_push", "arm_reach"]
