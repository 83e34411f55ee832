"""`robot-rl dataset viz`: an mp4 with a frame per episode frame, a PNG summary, one-line errors."""

from __future__ import annotations

import av
import numpy as np
import pytest
from PIL import Image

from robot_rl.cli.main import main
from robot_rl.data import DatasetWriter, Feature
from robot_rl.data.video import tile_videos
from robot_rl.data.viz import render_episode

CAM = "observation.images.front"
LENGTHS = [15, 17]
FPS = 10


def features(camera: bool) -> dict[str, Feature]:
    feats = {
        "observation.state": Feature("float32", (3,), ["x", "y", "grip"]),
        "action": Feature("float32", (2,)),
    }
    if camera:
        feats[CAM] = Feature("video", (24, 32, 3))
    return feats


def make(root, camera: bool = True):
    with DatasetWriter.create(root, FPS, features(camera), flush_every=1) as w:
        for i, n in enumerate(LENGTHS):
            rng = np.random.default_rng(i)
            ep = {
                "observation.state": rng.normal(size=(n, 3)).astype(np.float32),
                "action": rng.uniform(-1, 1, size=(n, 2)).astype(np.float32),
            }
            if camera:
                ep[CAM] = np.broadcast_to(
                    (np.arange(n) * 12 + 40 * i).astype(np.uint8)[:, None, None, None],
                    (n, 24, 32, 3),
                ).copy()
            w.add_episode(ep, "push the cube", extras={"success": i == 1})
    return root


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    return make(tmp_path_factory.mktemp("viz") / "ds")


def video_info(path) -> tuple[int, int, int, float]:
    """Decoded frame count, width, height and frame rate of an mp4."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        n = sum(1 for _ in c.decode(s))
        return n, s.width, s.height, float(s.average_rate)


def test_mp4_has_one_frame_per_episode_frame(ds, tmp_path):
    out = render_episode(ds, episode=1, out=tmp_path / "ep1.mp4")
    n, w, h, rate = video_info(out)
    assert n == LENGTHS[1]
    assert rate == FPS
    assert w % 2 == h % 2 == 0 and 800 <= w <= 2000 and 400 <= h <= 1200
    with av.open(str(out)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    # the cursor, title and camera panel move: the first and last frames differ
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).max() > 50


def test_fps_override_sets_the_video_rate(ds, tmp_path):
    out = render_episode(ds, episode=0, out=tmp_path / "slow.mp4", fps=4)
    n, _, _, rate = video_info(out)
    assert (n, rate) == (LENGTHS[0], 4)


def test_png_summary_is_a_readable_image(ds, tmp_path):
    out = render_episode(ds, episode=0, out=tmp_path / "ep0.png")
    with Image.open(out) as img:
        img.verify()
    with Image.open(out) as img:
        assert img.format == "PNG" and img.width >= 600 and img.height >= 400
        pixels = np.asarray(img.convert("RGB"))
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20  # not a blank canvas


def test_dataset_without_cameras_renders(tmp_path):
    root = make(tmp_path / "nocam", camera=False)
    n, w, h, _ = video_info(render_episode(root, episode=1, out=tmp_path / "a.mp4"))
    assert n == LENGTHS[1] and w > 0 and h > 0
    with Image.open(render_episode(root, out=tmp_path / "a.png")) as img:
        assert img.format == "PNG"


def test_tile_frames_pads_smaller_cameras():
    a = np.full((2, 4, 6, 3), 9, np.uint8)
    b = np.full((2, 2, 2, 3), 5, np.uint8)
    grid = tile_videos([a, b, a])  # 3 cameras -> 2 columns, 2 rows of (4, 6)
    assert grid.shape == (2, 8, 12, 3)
    assert grid[0, 0, 6, 0] == 5 and grid[0, 3, 11, 0] == 0 and grid[0, 7, 5, 0] == 9


def test_cli_prints_where_it_wrote(ds, tmp_path, capsys):
    out = tmp_path / "cli.png"
    assert main(["dataset", "viz", str(ds), "episode=1", f"out={out}"]) == 0
    assert out.is_file()
    assert f"wrote {out}" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["episode=2"], "has 2 episodes"),
        (["episode=-1"], "has 2 episodes"),
        (["out=ep.gif"], "unknown extension"),
        (["episode=one"], "episode must be an integer"),
        (["fps=0"], "fps must be an integer >= 1"),
        (["speed=2"], "unexpected argument 'speed=2'"),
    ],
)
def test_bad_arguments_give_one_line_errors(ds, tmp_path, monkeypatch, capsys, args, needle):
    monkeypatch.chdir(tmp_path)  # where the default out= would go
    assert main(["dataset", "viz", str(ds), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1, err
    assert not list(tmp_path.iterdir())


def test_missing_dataset_is_a_one_line_error(tmp_path, capsys):
    assert main(["dataset", "viz", str(tmp_path / "nope"), f"out={tmp_path / 'x.mp4'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert "does not exist" in err and len(err.splitlines()) == 1, err
