import math

import pytest
import torch

from robot_rl.core import ConfigError
from robot_rl.envs.tasks.car.track import Track

TRACKS = ("oval", "twisty", "hairpin", "test_loop")
# The oval (sim/tracks/make_tracks.py): from (0, 0) heading +x, a 12 m straight, a left half circle
# of radius 4 about (12, 4), 12 m back along y = 8, a half circle about (0, 4); half width 1.1.
OVAL_LENGTH = 2 * 12 + 2 * math.pi * 4  # 49.1327 m


@pytest.fixture(scope="module")
def oval():
    return Track.load("oval")


def test_oval_length_and_checkpoints(oval):
    assert oval.length == pytest.approx(OVAL_LENGTH, abs=0.01)  # chords of 0.2 m lose ~3 mm
    s, xy = oval.checkpoints(4)
    torch.testing.assert_close(s, torch.arange(4.0) * oval.length / 4)
    # s = 0 is the start (0, 0); half a lap (12 + 4π) is the end of the first bend, (12, 8).
    torch.testing.assert_close(xy[0], torch.tensor([0.0, 0.0]), atol=1e-4, rtol=0)
    torch.testing.assert_close(xy[2], torch.tensor([12.0, 8.0]), atol=0.01, rtol=0)


def test_progress_and_lateral_offset_at_known_points(oval):
    xy = torch.tensor([[6.0, 0.5], [6.0, -0.5], [16.3, 4.0], [6.0, 8.0]])
    s, lateral, _ = oval.progress(xy)
    # Straight: s = x, left of travel (+y) positive. Bend at (16.3, 4): a quarter circle in,
    # s = 12 + 2π = 18.283, 0.3 m outside (to the right when turning left). Top straight at
    # x = 6: s = 12 + 4π + 6 = 30.566 (chords shorten the bend by ~2 mm).
    torch.testing.assert_close(s[:2], torch.tensor([6.0, 6.0]), atol=1e-3, rtol=0)
    torch.testing.assert_close(lateral[:2], torch.tensor([0.5, -0.5]), atol=1e-4, rtol=0)
    assert s[2].item() == pytest.approx(12 + 2 * math.pi, abs=0.01)
    # The 0.2 m chords sit up to c²/8R = 1.25 mm inside the true circle.
    assert lateral[2].item() == pytest.approx(-0.3, abs=2e-3)
    assert s[3].item() == pytest.approx(12 + 4 * math.pi + 6, abs=0.01)


@pytest.mark.parametrize("name", TRACKS)
def test_progress_increases_along_the_lap_and_wraps_once(name):
    track = Track.load(name)
    s_true = torch.linspace(0.05, 2 * track.length - 0.05, 800)  # two laps
    xy, heading = track.point_at(s_true)
    # Offset 0.3 m to the left: still inside, still projects onto the same arc length.
    xy = xy + 0.3 * torch.stack((-heading.sin(), heading.cos()), dim=-1)
    s, lateral, _ = track.progress(xy)
    steps = torch.diff(s)
    assert int((steps < 0).sum()) == 1  # exactly one wrap at the start line
    assert (steps[steps < 0] + track.length).min().item() > 0
    unwrapped = torch.cat((s[:1], s[0] + track.progress_delta(s[:-1], s[1:]).cumsum(0)))
    assert (torch.diff(unwrapped) > 0).all()
    assert unwrapped[-1] - unwrapped[0] == pytest.approx((s_true[-1] - s_true[0]).item(), rel=0.01)
    assert s.min().item() >= 0 and s.max().item() < track.length


@pytest.mark.parametrize("name", TRACKS)
def test_on_track_inside_the_width_and_off_beyond_it(name):
    track = Track.load(name)
    s_true = torch.linspace(0, track.length, 500)
    xy, heading = track.point_at(s_true)
    left = torch.stack((-heading.sin(), heading.cos()), dim=-1)
    width = track.width_left[0].item()
    assert track.on_track(xy).all()
    assert track.on_track(xy + 0.9 * width * left).all()
    assert track.on_track(xy - 0.9 * width * left).all()
    # 1.3 widths out must be off the track everywhere: also proves no two parts of the loop come
    # closer than that (the hairpin's parallel straights).
    assert not track.on_track(xy + 1.3 * width * left).any()
    assert not track.on_track(xy - 1.3 * width * left).any()


def test_on_track_known_points_on_oval(oval):
    xy = torch.tensor([[6.0, 1.0], [6.0, 1.2], [6.0, -1.2], [12.0, 4.0], [-5.0, 4.0], [-5.2, 4.0]])
    assert oval.on_track(xy).tolist() == [True, False, False, False, True, False]
    assert oval.on_track(xy[:1], margin=0.2).tolist() == [False]


def test_progress_delta_unwraps_the_start_line(oval):
    length = oval.length
    delta = oval.progress_delta(
        torch.tensor([length - 0.1, 0.2, 5.0]), torch.tensor([0.2, length - 0.1, 5.5])
    )
    torch.testing.assert_close(delta, torch.tensor([0.3, -0.3, 0.5]), atol=1e-4, rtol=0)


def test_boundaries_are_closed_polylines_at_the_half_width(oval):
    segs = oval.boundary_segments()
    assert segs.shape == (2 * len(oval.s), 2, 2)
    # On the bottom straight the left boundary is y = 1.1, the right y = −1.1.
    on_straight = (
        (oval.centerline[:, 0] > 1)
        & (oval.centerline[:, 0] < 11)
        & (oval.centerline[:, 1].abs() < 0.1)
    )
    torch.testing.assert_close(
        oval.left[on_straight, 1], torch.full((int(on_straight.sum()),), 1.1)
    )
    torch.testing.assert_close(
        oval.right[on_straight, 1], torch.full((int(on_straight.sum()),), -1.1)
    )


def test_bad_csv_names_the_file(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("0,0,1\n1,0,1\n1,1,1\n")
    with pytest.raises(ConfigError, match="bad.csv"):
        Track.from_csv(bad)
    with pytest.raises(ConfigError, match="no track 'no_such_track'.*oval"):
        Track.load("no_such_track")
