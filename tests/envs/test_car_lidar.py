import math

import pytest
import torch

from robot_rl.envs.tasks.car.lidar import Lidar, LidarConfig, cast_rays
from robot_rl.envs.tasks.car.track import Track


def _corridor(width: float, end_x: float | None = None) -> torch.Tensor:
    """Walls y = ±width/2 for x in [−100, 100], optionally closed by a wall at x = end_x."""
    h = width / 2
    segs = [[[-100.0, h], [100.0, h]], [[-100.0, -h], [100.0, -h]]]
    if end_x is not None:
        segs.append([[end_x, -h], [end_x, h]])
    return torch.tensor(segs)


def test_straight_corridor_distances_at_known_angles():
    # w = 2, car on the axis facing +x, 5 beams over 180°: −90°, −45°, 0°, 45°, 90°.
    # Sideways beams see the walls at w/2 = 1, diagonals at 1 / sin 45° = √2, straight ahead
    # runs parallel to both walls and reads the max range.
    lidar = Lidar(_corridor(2.0), LidarConfig(num_beams=5, fov=math.pi, max_range=30.0))
    ranges = lidar.scan(torch.tensor([[0.0, 0.0, 0.0]]))
    torch.testing.assert_close(
        ranges[0], torch.tensor([1.0, math.sqrt(2), 30.0, math.sqrt(2), 1.0])
    )


def test_offset_and_rotated_car_in_corridor():
    # Car at y = 0.25, yaw 0.3, beam at +0.5 rad relative: absolute 0.8 rad toward the wall
    # y = 1, distance (1 − 0.25) / sin 0.8 = 1.04527; beam at −1.0 rad: absolute −0.7 rad toward
    # y = −1, distance 1.25 / sin 0.7 = 1.94029.
    segs = _corridor(2.0)
    angles = torch.tensor([[0.3 + 0.5, 0.3 - 1.0]])
    directions = torch.stack((angles.cos(), angles.sin()), dim=-1)
    ranges = cast_rays(torch.tensor([[0.0, 0.25]]), directions, segs, 30.0)
    torch.testing.assert_close(
        ranges[0], torch.tensor([0.75 / math.sin(0.8), 1.25 / math.sin(0.7)])
    )


def test_end_wall_mount_offset_and_max_range_clip():
    lidar = Lidar(_corridor(2.0, end_x=5.0), LidarConfig(num_beams=1, fov=0.1, mount_offset=0.5))
    assert lidar.scan(torch.tensor([[0.0, 0.0, 0.0]])).item() == pytest.approx(4.5)
    # Facing away from the end wall: nothing within 10 m.
    short = Lidar(_corridor(100.0, end_x=5.0), LidarConfig(num_beams=3, fov=1.0, max_range=10.0))
    assert short.scan(torch.tensor([[0.0, 0.0, math.pi]])).tolist() == [[10.0, 10.0, 10.0]]


def test_chunking_does_not_change_the_scan():
    track = Track.load("hairpin")
    gen = torch.Generator().manual_seed(0)
    s = torch.rand(300, generator=gen) * track.length
    xy, heading = track.point_at(s)
    pose = torch.cat((xy, (heading + 0.3 * torch.randn(300, generator=gen))[:, None]), dim=-1)
    segs = track.boundary_segments()
    big = Lidar(segs, LidarConfig(num_beams=64)).scan(pose)
    small = Lidar(segs, LidarConfig(num_beams=64, max_elements=10_000)).scan(pose)
    assert torch.equal(big, small)
    assert (big > 0).all() and (big <= 30.0).all()


def test_on_track_scan_sees_the_oval_walls():
    # Middle of the bottom straight, facing +x: left wall y = 1.1, right wall y = −1.1.
    track = Track.load("oval")
    lidar = Lidar(track.boundary_segments(), LidarConfig(num_beams=3, fov=math.pi))
    ranges = lidar.scan(torch.tensor([[6.0, 0.0, 0.0]]))[0]
    assert ranges[0].item() == pytest.approx(1.1, abs=1e-4)
    assert ranges[2].item() == pytest.approx(1.1, abs=1e-4)
    assert 6.0 < ranges[1].item() < 30.0  # ahead, the first bend's outer wall


def test_noise_is_reproducible_with_the_requested_std():
    lidar = Lidar(_corridor(20.0), LidarConfig(num_beams=2, fov=math.pi, noise_std=0.05))
    pose = torch.zeros(10_000, 3)
    a = lidar.scan(pose, torch.Generator().manual_seed(1))
    b = lidar.scan(pose, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    assert a.mean().item() == pytest.approx(10.0, abs=0.005)
    assert a.std().item() == pytest.approx(0.05, rel=0.05)
