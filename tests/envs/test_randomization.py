import torch

import robot_rl.envs as E


def test_per_env_parameters_drawn_within_ranges_from_nominal():
    dr = {
        "friction": [0.5, 1.5],
        "mass": [0.7, 1.3],
        "joint_damping": [0.5, 2.0],
        "actuator_gain": [0.8, 1.2],
    }
    env = E.make("arm_push", 32, seed=0, randomization=dr)
    m = env.backend.model
    for _ in range(3):  # repeated resets scale the nominal value, never drift
        env.reset()
        fr = env.backend.model_field("geom_friction")[:, m.geom("cube").id, 0]
        ratio = fr / m.geom_friction[m.geom("cube").id, 0]
        assert (ratio >= 0.5 - 1e-9).all() and (ratio <= 1.5 + 1e-9).all()
        assert ratio.std() > 0.1  # differs across envs
        mass = (
            env.backend.model_field("body_mass")[:, m.body("cube").id]
            / m.body_mass[m.body("cube").id]
        )
        assert (mass >= 0.7 - 1e-9).all() and (mass <= 1.3 + 1e-9).all() and mass.std() > 0.05
        damp = env.backend.model_field("dof_damping")[:, 0] / m.dof_damping[0]
        assert (damp >= 0.5 - 1e-9).all() and (damp <= 2.0 + 1e-9).all()
        act = m.actuator("elbow").id
        gain = env.backend.model_field("actuator_gainprm")[:, act, 0]
        bias = env.backend.model_field("actuator_biasprm")[:, act, 1]
        torch.testing.assert_close(gain, -bias)  # kp and −kp stay consistent
        assert (gain / m.actuator_gainprm[act, 0]).min() >= 0.8 - 1e-9


def test_mass_scale_is_exact_when_range_is_a_point():
    light = E.make("arm_push", 1, seed=0, randomization={"mass": [0.5, 0.5]})
    heavy = E.make("arm_push", 1, seed=0, randomization={"mass": [2.0, 2.0]})
    light.reset(seed=0)
    heavy.reset(seed=0)
    m = light.backend.model
    cube = m.body("cube").id
    assert float(heavy.backend.model_field("body_mass")[0, cube]) == 4 * float(
        light.backend.model_field("body_mass")[0, cube]
    )


def test_action_delay_applies_old_actions():
    env = E.make("arm_reach", 64, seed=0, randomization={"action_delay": 3})
    env.reset(seed=0)
    delays = env._delay.clone()
    assert set(delays.tolist()) <= {0, 1, 2, 3} and len(set(delays.tolist())) > 1
    first = torch.rand(64, 7)
    applied = env._delayed(first)
    # Envs with delay 0 apply it now; the others still apply the neutral action of the reset
    # (hold still, gripper open).
    assert torch.equal(applied[delays == 0], first[delays == 0])
    neutral = torch.tensor([0, 0, 0, 0, 0, 0, -1.0])
    assert (applied[delays > 0] == neutral).all()


def test_object_pose_scale_zero_gives_nominal_cube_and_goal_still_apart():
    env = E.make("arm_push", 16, seed=0, randomization={"object_pose_scale": 0.0})
    env.reset(seed=0)
    cube = env.cube_pos
    assert torch.allclose(cube[:, 0], torch.full((16,), 0.5, dtype=torch.float64))
    assert torch.allclose(cube[:, 1], torch.zeros(16, dtype=torch.float64))
    # The goal box collapses onto the cube too; goals are pushed out to min_goal_distance, so no
    # episode starts solved.
    dist = (env.goal[:, :2] - cube[:, :2]).norm(dim=-1)
    assert (dist >= env.cfg.min_goal_distance - 1e-9).all()
    _, _, terminated, _, info = env.step(torch.zeros(16, 7))
    assert not info["success"].any()


def test_observation_noise():
    clean = E.make("arm_reach", 4, seed=0, randomization={"obs_noise_std": 0.0})
    noisy = E.make("arm_reach", 4, seed=0, randomization={"obs_noise_std": 0.05})
    d = noisy.reset(seed=0)["state"] - clean.reset(seed=0)["state"]
    assert 0.03 < float(d.std()) < 0.07
