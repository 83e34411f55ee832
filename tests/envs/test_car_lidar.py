import math

import pytest
import torch

from robot_rl.core import ConfigError, asset_path
from robot_rl.envs.tasks.car.lidar import Lidar, LidarConfig, SegmentGrid, cast_rays
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


# --- The grid (SegmentGrid) against brute force ------------------------------------------------

TRACKS = sorted(p.stem for p in asset_path("sim", "tracks").glob("*.csv"))


def _hard_poses(track: Track, grid: SegmentGrid, n: int, gen: torch.Generator) -> torch.Tensor:
    """Poses (n, 3) where a grid could go wrong: random in and around the track, a hair off the
    boundaries and on their vertices with beams grazing the wall, and on grid cell edges."""
    m = n // 4
    lo, hi = grid.low, grid.low + torch.tensor(grid.shape) * grid.cell
    anywhere = lo + torch.rand(m, 2, generator=gen) * (hi - lo)
    walls = torch.cat((track.left, track.right))
    pick = torch.randint(len(walls), (2 * m,), generator=gen)
    nxt = torch.cat((track.left.roll(-1, 0), track.right.roll(-1, 0)))[pick]
    along = torch.rand(2 * m, 1, generator=gen)
    along[:m] = 0.0  # on a vertex
    on_wall = torch.lerp(walls[pick], nxt, along)
    tangent = nxt - walls[pick]
    normal = torch.stack((-tangent[:, 1], tangent[:, 0]), -1) / tangent.norm(dim=-1, keepdim=True)
    off = (torch.rand(2 * m, 1, generator=gen) - 0.5) * 0.02  # ±1 cm, either side of the wall
    near_wall = on_wall + off * normal
    edges = grid.low + torch.randint(0, min(grid.shape), (n - 3 * m, 2), generator=gen) * grid.cell
    xy = torch.cat((anywhere, near_wall, edges.float()))
    yaw = torch.rand(len(xy), generator=gen) * 2 * math.pi
    graze = torch.atan2(tangent[:, 1], tangent[:, 0]) + 1e-3 * torch.randn(2 * m, generator=gen)
    yaw[m : 3 * m] = graze
    return torch.cat((xy, yaw[:, None]), dim=-1)


def _brute(lidar: Lidar, pose: torch.Tensor) -> torch.Tensor:
    theta = pose[:, 2:3] + lidar.angles
    directions = torch.stack((theta.cos(), theta.sin()), dim=-1)
    return cast_rays(pose[:, :2], directions, lidar.segments, lidar.cfg.max_range)


@pytest.mark.parametrize("name", TRACKS)
@pytest.mark.parametrize("max_range", [2.0, 10.0, 30.0])
def test_grid_scan_matches_brute_force_on_every_track(name, max_range):
    track = Track.load(name)
    gen = torch.Generator().manual_seed(len(name) + int(max_range))
    for beams, n in ((1, 1000), (54, 200), (1080, 12)):
        cfg = LidarConfig(num_beams=beams, fov=2 * math.pi, max_range=max_range)
        lidar = Lidar(track.boundary_segments(), cfg)
        pose = _hard_poses(track, lidar.grid, n, gen)
        torch.testing.assert_close(lidar.scan(pose), _brute(lidar, pose), rtol=0, atol=1e-4)


def test_cars_outside_the_grid_fall_back_to_brute_force():
    track = Track.load("twisty")
    lidar = Lidar(track.boundary_segments(), LidarConfig(num_beams=54, max_range=30.0))
    lo = lidar.grid.low
    hi = lo + torch.tensor(lidar.grid.shape) * lidar.grid.cell
    # Just past each side of the grid (still seeing the track), far away, and one inside.
    xy = torch.stack(
        (
            torch.stack((lo[0] - 0.01, (lo[1] + hi[1]) / 2)),
            torch.stack((hi[0] + 0.5, (lo[1] + hi[1]) / 2)),
            torch.stack(((lo[0] + hi[0]) / 2, lo[1] - 3.0)),
            torch.stack(((lo[0] + hi[0]) / 2, hi[1])),
            torch.tensor([500.0, -400.0]),
            track.centerline[0],
        )
    )
    # 10 headings each: enough cars that the scan goes through the grid, not one brute chunk.
    yaw = torch.linspace(0, 6, 10 * len(xy))[:, None]
    pose = torch.cat((xy.repeat(10, 1), yaw), dim=-1)
    assert len(pose) * 54 * len(lidar.segments) > lidar.cfg.max_elements
    ranges = lidar.scan(pose).view(10, len(xy), 54)
    torch.testing.assert_close(ranges.flatten(0, 1), _brute(lidar, pose), rtol=0, atol=1e-4)
    assert (ranges[:, :4] < 30.0).any(dim=-1).any(dim=0).all()  # they do see the track
    assert (ranges[:, 4] == 30.0).all()


def test_grid_chunking_and_method_switch_agree():
    track = Track.load("hairpin")
    segs = track.boundary_segments()
    gen = torch.Generator().manual_seed(3)
    xy, heading = track.point_at(torch.rand(500, generator=gen) * track.length)
    pose = torch.cat((xy, (heading + torch.randn(500, generator=gen))[:, None]), dim=-1)
    cfg = LidarConfig(num_beams=64, max_range=10.0)
    fast = Lidar(segs, cfg).scan(pose)
    small = Lidar(segs, LidarConfig(num_beams=64, max_range=10.0, max_elements=100)).scan(pose)
    brute = Lidar(segs, LidarConfig(num_beams=64, max_range=10.0, method="brute"))
    assert brute.grid is None
    assert torch.equal(fast, small)
    torch.testing.assert_close(fast, brute.scan(pose), rtol=0, atol=1e-4)


def test_a_few_cars_take_one_brute_force_chunk():
    lidar = Lidar(_corridor(2.0, end_x=5.0), LidarConfig(num_beams=3, fov=1.0))
    pose = torch.tensor([[0.0, 0.0, 0.0], [500.0, 0.0, 0.0]])  # in and outside the grid
    torch.testing.assert_close(lidar.scan(pose), _brute(lidar, pose), rtol=0, atol=0)


def test_grid_lists_few_segments_per_cell_and_sector():
    # The point of the grid: a beam reads a handful of the track's ~570 segments, not all.
    track = Track.load("twisty")
    grid = SegmentGrid(track.boundary_segments(), max_range=10.0)
    first = grid.blocks[0]  # (cells · sectors, 4, 8): every slot's nearest 8 candidates
    assert first.shape == (grid.shape[0] * grid.shape[1] * grid.sectors, 4, 8)
    listed = sum(len(r) * b.shape[-1] for r, b in zip(grid.next_lb, grid.blocks))
    assert listed / len(first) < 0.05 * len(track.boundary_segments())


def test_coarse_grid_is_still_exact():
    # Few sectors (no separating-axis culling) and a cell cap that forces big cells.
    track = Track.load("oval")
    segs = track.boundary_segments()
    cfg = LidarConfig(num_beams=54, grid_sectors=2, grid_max_cells=16, max_range=10.0)
    lidar = Lidar(segs, cfg)
    assert lidar.grid.shape[0] * lidar.grid.shape[1] <= 16
    pose = _hard_poses(track, lidar.grid, 100, torch.Generator().manual_seed(5))
    torch.testing.assert_close(lidar.scan(pose), _brute(lidar, pose), rtol=0, atol=1e-4)


@pytest.mark.parametrize(
    "field, value",
    [("method", "bvh"), ("grid_cell", 0.0), ("grid_sectors", 0), ("grid_max_cells", 0)],
)
def test_bad_grid_config_is_one_line_error(field, value):
    with pytest.raises(ConfigError, match=field) as err:
        LidarConfig(**{field: value})
    assert "\n" not in str(err.value)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_grid_on_cuda_matches_cpu():
    track = Track.load("twisty", device="cuda")
    lidar = Lidar(track.boundary_segments(), LidarConfig(num_beams=64, max_range=10.0))
    pose = _hard_poses(track, lidar.grid, 400, torch.Generator().manual_seed(7))
    gpu = lidar.scan(pose.cuda())
    torch.testing.assert_close(gpu.cpu(), _brute(lidar, pose.cuda()).cpu(), rtol=0, atol=1e-4)
