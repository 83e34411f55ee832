import math

import pytest
import torch

from robot_rl.envs.tasks.car.lidar import LidarConfig
from robot_rl.envs.tasks.car.render import CAR, GRASS, LIDAR_DOT, TRACK, TopDownRenderer
from robot_rl.envs.tasks.car.track import Track

H, W = 240, 320
# Oval boundaries span x ∈ [−5.0986, 17.0986], y ∈ [−1.1, 9.1] (test_car_track.py geometry plus
# the 1.1 m half width); with a 1 m margin the box is 24.197 m × 12.2 m, so the width limits the
# scale: 320 / 24.197 = 13.2247 px/m, and the box centre (6, 4) sits at the image centre.
OVAL_SCALE = 320 / (22.1972 + 2.0)


@pytest.fixture(scope="module")
def oval():
    return Track.load("oval")


@pytest.fixture(scope="module")
def whole(oval):
    return TopDownRenderer(oval, H, W)


@pytest.fixture(scope="module")
def close_up():
    # A 2 m × 1.5 m chase window: 160 px/m, the 0.58 m × 0.31 m car spans 92.8 px × 49.6 px.
    # A small circular track (radius 3 m about the origin) keeps the 160 px/m raster cheap.
    angle = torch.linspace(0, 2 * math.pi, 61)[:-1]
    ring = Track(3.0 * torch.stack((angle.cos(), angle.sin()), -1), *torch.full((2, 60), 0.6))
    return TopDownRenderer(ring, H, W, view_size=(2.0, 1.5), min_car_length_px=0.0)


def _pixel(frame: torch.Tensor, row: float, col: float) -> tuple[int, ...]:
    return tuple(frame[int(row), int(col)].tolist())


def _mask(frame: torch.Tensor, colour) -> torch.Tensor:
    return (frame == torch.tensor(colour, dtype=torch.uint8)).all(-1)


def _centroid(mask: torch.Tensor) -> torch.Tensor:
    return mask.nonzero().float().mean(0)  # (row, col)


def test_shapes_dtype_and_per_frame_cars(whole, oval):
    poses = torch.tensor([[0.0, 0.0, 0.0], [12.0, 8.0, math.pi], [6.0, 0.5, 0.1]])
    frames = whole.render(poses)
    assert frames.shape == (3, H, W, 3) and frames.dtype == torch.uint8
    assert not torch.equal(frames[0], frames[1])
    # A full (k, 7) dynamics state is accepted; only x, y, yaw matter.
    state = torch.cat((poses, torch.ones(3, 4)), dim=1)
    torch.testing.assert_close(whole.render(state), frames)
    chase = TopDownRenderer(oval, 90, 120, view_size=(12.0, 9.0)).render(poses)
    assert chase.shape == (3, 90, 120, 3) and chase.dtype == torch.uint8


def test_world_to_pixel_scale_and_orientation(whole):
    assert whole.scale == pytest.approx(OVAL_SCALE, rel=1e-4)
    xy = torch.tensor([[[6.0, 4.0], [7.0, 4.0], [6.0, 5.0]]])
    rc = whole.to_pixel(xy, torch.zeros(1, 3))[0]
    # +x is right, +y is up (smaller row), one metre is `scale` pixels.
    expected = torch.tensor(
        [[120.0, 160.0], [120.0, 160.0 + OVAL_SCALE], [120.0 - OVAL_SCALE, 160.0]]
    )
    torch.testing.assert_close(rc, expected, atol=1e-2, rtol=0)


def test_background_matches_on_track(whole, oval):
    bg = whole.background
    assert _pixel(bg, 2, 2) == GRASS  # image corner, far off the track
    # Inside the oval's infield (6, 4) is grass, the straight at (6, 0) is track surface.
    assert _pixel(bg, 120, 160) == GRASS
    r, c = whole.to_pixel(torch.tensor([[[6.0, 0.0]]]), torch.zeros(1, 3))[0, 0].tolist()
    assert _pixel(bg, r, c) == TRACK
    # Every pixel centre: drawn as track (surface, line or start checks) ⇔ Track.on_track.
    rows, cols = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    x = 6.0 + (cols.flatten() + 0.5 - W / 2) / whole.scale
    y = 4.0 - (rows.flatten() + 0.5 - H / 2) / whole.scale
    on = oval.on_track(torch.stack((x, y), dim=-1)).view(H, W)
    drawn = ~_mask(bg, GRASS)
    assert (on != drawn).sum() <= 5  # float rounding right at the boundary only
    assert drawn.sum() > 0.1 * H * W


def test_car_at_its_pose_and_moves_with_it(whole):
    pose = torch.tensor([[6.0, 0.0, 0.0], [8.0, 0.0, 0.0], [6.0, 0.5, 0.0]])
    frames = whole.render(pose)
    r, c = whole.to_pixel(pose[:1, None, :2], pose[:1])[0, 0].tolist()
    assert _pixel(frames[0], r, c) == CAR
    assert _pixel(frames[0], 2, 2) == GRASS
    cars = [_mask(f, CAR) | _mask(f, tuple(v // 2 + 128 for v in CAR)) for f in frames]
    centre = torch.stack([_centroid(m) for m in cars])
    # +2 m in x: 2·scale = 26.4 px to the right, same row; +0.5 m in y: 6.6 px up.
    shift_x, shift_y = centre[1] - centre[0], centre[2] - centre[0]
    torch.testing.assert_close(shift_x, torch.tensor([0.0, 2 * OVAL_SCALE]), atol=1.0, rtol=0)
    torch.testing.assert_close(shift_y, torch.tensor([-0.5 * OVAL_SCALE, 0.0]), atol=1.0, rtol=0)


@pytest.mark.parametrize(
    ("yaw", "front_dir"), [(0.0, (0, 1)), (math.pi / 2, (-1, 0)), (math.pi, (0, -1))]
)
def test_yaw_rotates_body_and_front_marker(close_up, yaw, front_dir):
    frame = close_up.render(torch.tensor([[3.0, 0.0, yaw]]))[0]
    body, nose = _mask(frame, CAR), _mask(frame, tuple(v // 2 + 128 for v in CAR))
    car = body | nose
    rows, cols = car.nonzero().unbind(-1)
    extent = (int(rows.max() - rows.min()) + 1, int(cols.max() - cols.min()) + 1)
    # 160 px/m: length 92.8 px along the heading, width 49.6 px across it (±1 px of sampling).
    along, across = (extent[1], extent[0]) if front_dir[0] == 0 else extent
    assert along == pytest.approx(92.8, abs=1.5) and across == pytest.approx(49.6, abs=1.5)
    # The chase view centres the CoG. The nose is the front 30% of the length: from
    # 0.28 − 0.174 = 0.106 m to 0.28 m ahead of the CoG, centroid 0.193 m · 160 = 30.9 px ahead.
    offset = _centroid(nose) - torch.tensor([H / 2, W / 2])
    torch.testing.assert_close(
        offset, 30.9 * torch.tensor(front_dir, dtype=torch.float), atol=1.5, rtol=0
    )
    assert nose.sum() == pytest.approx(0.3 * 92.8 * 49.6, rel=0.06)


def test_lidar_dots_at_hits_and_none_at_max_range(oval):
    # Beams at −90°, 0°, +90° relative to the heading (fov = π, 3 beams).
    lidar = LidarConfig(num_beams=3, fov=math.pi, max_range=10.0)
    renderer = TopDownRenderer(oval, H, W, lidar=lidar, dot_px=3)
    pose = torch.tensor([[6.0, 0.0, 0.0]])
    frame = renderer.render(pose, torch.tensor([[1.0, 2.0, 10.0]]))[0]
    dots = _mask(frame, LIDAR_DOT)
    assert dots.sum() == 2 * 9  # two 3×3 dots; the max-range beam draws nothing
    # Right beam hits (6, −1), straight ahead hits (8, 0).
    hits = torch.tensor([[[6.0, -1.0], [8.0, 0.0]]])
    for r, c in renderer.to_pixel(hits, pose)[0].tolist():
        assert _pixel(frame, r, c) == LIDAR_DOT
    # Rotated by 90°: the "right" beam now points to −x, ahead points to +y.
    pose = torch.tensor([[6.0, 0.0, math.pi / 2]])
    frame = renderer.render(pose, torch.tensor([[1.0, 2.0, float("nan")]]))[0]
    assert _mask(frame, LIDAR_DOT).sum() == 2 * 9
    for r, c in renderer.to_pixel(torch.tensor([[[7.0, 0.0], [6.0, 2.0]]]), pose)[0].tolist():
        assert _pixel(frame, r, c) == LIDAR_DOT


def test_chase_view_keeps_car_centred_even_off_the_map(oval):
    renderer = TopDownRenderer(oval, H, W, view_size=(12.0, 9.0))
    assert renderer.scale == pytest.approx(320 / 12)
    poses = torch.tensor([[6.0, 0.0, 0.3], [200.0, -50.0, 1.0]])
    frames = renderer.render(poses, colors=[[0, 0, 255], [255, 0, 255]])
    assert _pixel(frames[0], H / 2, W / 2) == (0, 0, 255)
    assert _pixel(frames[1], H / 2, W / 2) == (255, 0, 255)
    # Far from the track the frame is all grass apart from the car.
    assert (_mask(frames[1], GRASS) | _mask(frames[1], (255, 0, 255))).sum() > 0.99 * H * W
    assert _mask(frames[0], TRACK).sum() > 0.2 * H * W


def test_bad_inputs_raise_clear_errors(whole):
    with pytest.raises(ValueError, match=r"poses must have shape \(k, 3\), got \(3,\)"):
        whole.render(torch.zeros(3))
    with pytest.raises(ValueError, match=r"got \(2, 2\)"):
        whole.render(torch.zeros(2, 2))
    with pytest.raises(ValueError, match=r"rows \[1\] hold NaN"):
        whole.render(torch.tensor([[0.0, 0.0, 0.0], [float("nan"), 0.0, 0.0]]))
    with pytest.raises(ValueError, match="without a lidar"):
        whole.render(torch.zeros(1, 3), torch.ones(1, 5))
    with pytest.raises(ValueError, match=r"colors must have shape \(3,\) or \(2, 3\)"):
        whole.render(torch.zeros(2, 3), colors=[1, 2])
    with pytest.raises(ValueError, match="view_size"):
        TopDownRenderer(whole.track, H, W, view_size=(0.0, 9.0))
