"""Camera over a generated video file: frames, colours, timestamps, errors; listing never hangs."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from robot_rl.cli import cameras as cameras_cli  # noqa: E402
from robot_rl.teleop import cameras  # noqa: E402
from robot_rl.teleop.cameras import Camera, CameraError, list_cameras  # noqa: E402

H, W, FPS = 24, 32, 10
COLORS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255), (40, 80, 160)]  # RGB


@pytest.fixture
def video(tmp_path: Path) -> Path:
    """One solid-colour frame per entry of COLORS, MJPG at 10 fps."""
    path = tmp_path / "colors.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (W, H))
    assert writer.isOpened()
    for rgb in COLORS:
        writer.write(np.full((H, W, 3), rgb[::-1], np.uint8))  # OpenCV writes BGR
    writer.release()
    return path


def test_reads_every_frame_as_rgb_with_media_time(video: Path) -> None:
    with Camera(str(video)) as cam:
        info = cam.info
        frames = list(cam)
    assert (info.width, info.height, info.fps) == (W, H, FPS)
    assert len(frames) == len(COLORS)
    for (frame, _), rgb in zip(frames, COLORS, strict=True):
        assert frame.shape == (H, W, 3) and frame.dtype == np.uint8
        np.testing.assert_allclose(frame.reshape(-1, 3).mean(0), rgb, atol=4)  # JPEG rounding
    stamps = [t for _, t in frames]
    np.testing.assert_allclose(stamps, np.arange(len(COLORS)) / FPS, atol=1e-6)  # 0, 0.1, ...
    assert np.all(np.diff(stamps) > 0)


def test_read_past_the_end_and_missing_sources_are_one_line_errors(
    video: Path, tmp_path: Path
) -> None:
    with Camera(video) as cam:
        for _ in COLORS:
            cam.read()
        with pytest.raises(CameraError, match="end of file"):
            cam.read()
    with pytest.raises(CameraError, match=r"'.*nope\.mp4': no such file"):
        Camera(str(tmp_path / "nope.mp4"))
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video")
    with pytest.raises(CameraError, match=r"cannot open video file '.*junk\.mp4'"):
        Camera(junk.as_posix())


def test_list_cameras_abandons_a_hanging_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cameras.sys, "platform", "darwin")  # probe every index, no /dev check
    monkeypatch.setattr(cameras, "_probe", lambda i, box: time.sleep(3))
    t0 = time.monotonic()
    assert list_cameras(max_index=3, timeout_s=0.1) == []
    assert time.monotonic() - t0 < 1.5  # 3 probes x 0.1 s, not 3 x 3 s


def test_list_cameras_reports_what_probes_found(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cameras.sys, "platform", "darwin")
    found = cameras.CameraInfo(1, 640, 480, 30.0, "V4L2")
    monkeypatch.setattr(cameras, "_probe", lambda i, box: box.append(found) if i == 1 else None)
    assert list_cameras(max_index=3) == [found]


def test_cli_opens_a_source(video: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    png = tmp_path / "frame.png"
    assert cameras_cli.main([str(video), f"save={png}"]) == 0
    out = capsys.readouterr().out
    assert f"{W}x{H} at 10 fps" in out and "mean RGB (25" in out  # first frame: red
    assert cv2.imread(str(png))[0, 0, 2] > 250  # saved as BGR: red channel last
    with pytest.raises(CameraError, match="no such file"):
        cameras_cli.main([str(tmp_path / "missing.avi")])


def test_cli_lists_cameras(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(cameras, "list_cameras", lambda n: [])
    assert cameras_cli.main(["max_index=4"]) == 0
    assert "no cameras found (probed device indices 0..3)" in capsys.readouterr().out
    monkeypatch.setattr(
        cameras, "list_cameras", lambda n: [cameras.CameraInfo(0, 640, 480, 30.0, "V4L2")]
    )
    assert cameras_cli.main([]) == 0
    assert "640x480" in capsys.readouterr().out
