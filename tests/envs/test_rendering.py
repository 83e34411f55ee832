"""Offscreen camera images (EGL/OSMesa, no display or GPU needed)."""

import torch

import robot_rl.envs as E


def test_image_observations_from_front_and_wrist_cameras():
    env = E.make(
        "arm_pick_place",
        3,
        seed=0,
        image={"enabled": True, "cameras": ["front", "wrist"], "height": 64, "width": 64},
    )
    obs = env.reset(seed=0)
    img = obs["image"]
    assert img.shape == (3, 6, 64, 64) and img.dtype == torch.uint8
    assert env.observation_spec["image"].shape == (6, 64, 64)
    front, wrist = img[:, :3].float(), img[:, 3:].float()
    assert front.std() > 10 and wrist.std() > 10  # real scenes, not blank frames
    assert not torch.equal(front, wrist)
    # Envs with different cube poses render differently.
    assert not torch.equal(img[0], img[1])
    obs, *_ = env.step(torch.zeros(3, 7))
    assert obs["image"].shape == (3, 6, 64, 64)
    env.close()


def test_red_cube_is_visible_in_the_front_camera():
    env = E.make("arm_push", 1, seed=0)
    env.reset(seed=0)
    frame = env.render("front", 120, 160)[0].int()
    red = (frame[..., 0] > 120) & (frame[..., 1] < 80) & (frame[..., 2] < 80)
    assert red.sum() > 10
