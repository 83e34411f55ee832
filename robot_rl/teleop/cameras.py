"""Cameras over OpenCV ``VideoCapture``: a device index, a video file or a stream URL.

``Camera.read()`` returns RGB frames (OpenCV decodes to BGR) with a capture timestamp in seconds:
the media time for a file (so a recorded video replays on its own clock), the wall clock
(``time.time()``, as ROS stamps are) right after the grab for devices and streams.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from robot_rl.core.errors import RobotRLError


class CameraError(RobotRLError):
    """A camera source cannot be opened or stopped delivering frames."""


def _cv2():  # noqa: ANN202 - cv2 has no stubs worth naming
    try:
        import cv2
    except ImportError:
        raise CameraError("cameras need OpenCV: pip install opencv-python-headless") from None
    return cv2


def parse_source(source: int | str) -> int | str:
    """``"0"`` -> device index 0; URLs and paths stay strings (paths must exist)."""
    if isinstance(source, int):
        return source
    s = str(source).strip()
    if s.isdigit():
        return int(s)
    if "://" not in s and not Path(s).exists():
        raise CameraError(f"camera source {s!r}: no such file, and not a device index or URL")
    return s


@dataclass(frozen=True)
class CameraInfo:
    """What an opened source reports; ``fps`` is 0.0 when the backend does not know it."""

    source: int | str
    width: int
    height: int
    fps: float
    backend: str


class Camera:
    """One video source; ``read() -> (frame (H, W, 3) uint8 RGB, capture time in seconds)``.

    Args:
        source: device index (``0`` or ``"0"``), video file path or stream URL.
        width, height, fps: requested capture mode for devices (the driver may pick another).
        timeout_s: open and read timeout for backends that honour it (FFmpeg streams, V4L2).
    """

    def __init__(
        self,
        source: int | str,
        *,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        timeout_s: float = 5.0,
    ) -> None:
        cv2 = _cv2()
        self.source = parse_source(source)
        self.is_file = isinstance(self.source, str) and "://" not in self.source
        ms = int(timeout_s * 1000)
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
        self._cap = cv2.VideoCapture(self.source, cv2.CAP_ANY, params)
        if not self._cap.isOpened():
            self._cap.release()
            what = "video file" if self.is_file else "camera device" if isinstance(
                self.source, int) else "stream"  # fmt: skip
            raise CameraError(f"cannot open {what} {self.source!r} with OpenCV")
        for prop, value in ((cv2.CAP_PROP_FRAME_WIDTH, width), (cv2.CAP_PROP_FRAME_HEIGHT, height),
                            (cv2.CAP_PROP_FPS, fps)):  # fmt: skip
            if value is not None:
                self._cap.set(prop, float(value))

    @property
    def info(self) -> CameraInfo:
        """Resolution, frame rate and backend as the capture reports them now."""
        cv2 = _cv2()
        return CameraInfo(
            self.source,
            int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
            int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0),
            self._cap.getBackendName(),
        )

    def read(self) -> tuple[np.ndarray, float]:
        """The next frame as (H, W, 3) uint8 RGB and its capture time in seconds.

        Raises CameraError at the end of a file or when a device stops delivering frames.
        """
        cv2 = _cv2()
        if not self._cap.grab():
            end = "end of file" if self.is_file else "no frame (disconnected or timed out)"
            raise CameraError(f"camera {self.source!r}: {end}")
        stamp = time.time()
        if self.is_file:  # media time of the grabbed frame
            stamp = self._cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
        ok, bgr = self._cap.retrieve()
        if not ok or bgr is None:
            raise CameraError(f"camera {self.source!r}: grabbed a frame but could not decode it")
        if bgr.ndim == 2:
            return np.repeat(bgr[..., None], 3, axis=2), stamp
        return np.ascontiguousarray(bgr[..., 2::-1]), stamp

    def __iter__(self) -> Iterator[tuple[np.ndarray, float]]:
        """Frames until the source ends (a file's last frame, a device going away)."""
        while True:
            try:
                yield self.read()
            except CameraError:
                return

    def close(self) -> None:
        self._cap.release()

    def __enter__(self) -> Camera:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _probe(index: int, box: list[CameraInfo]) -> None:
    try:
        with Camera(index, timeout_s=1.0) as cam:
            cam.read()  # a node that opens but gives no frames (metadata node) is not a camera
            box.append(cam.info)
    except CameraError:
        pass


def list_cameras(max_index: int = 8, timeout_s: float = 2.0) -> list[CameraInfo]:
    """Device indices ``0..max_index-1`` that open and deliver a frame, with their modes.

    On Linux only indices with a ``/dev/videoN`` node are probed. Each probe runs in a daemon
    thread and is abandoned after ``timeout_s``: a driver that hangs in open cannot hang this.
    """
    _cv2()
    found: list[CameraInfo] = []
    for i in range(max_index):
        if sys.platform.startswith("linux") and not Path(f"/dev/video{i}").exists():
            continue
        box: list[CameraInfo] = []  # its own per probe: an abandoned thread writes only there
        t = threading.Thread(target=_probe, args=(i, box), daemon=True)
        t.start()
        t.join(timeout_s)
        found += box[:1] if not t.is_alive() else []
    return found
