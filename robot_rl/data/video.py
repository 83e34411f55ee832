"""H.264 video files: encode episodes, append them to a file without re-encoding, decode episodes.

Episodes are concatenated in one mp4 and located by frame number (timestamp x fps). New frames are
encoded into a *segment* (a temp file); a flush then either renames the segment to a new file or
remuxes ``old file's committed frames + segment`` into a temp file that replaces the old one, so
earlier frames are never decoded and re-encoded (no generation loss). The encoder is set up without
B-frames, so packets come in presentation order and one packet is one frame.
"""

from __future__ import annotations

import contextlib
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from robot_rl.core.errors import DatasetError
from robot_rl.data.storage import commit, one_line, rel, temp_path

CRF, PRESET = "20", "veryfast"


def _corrupt(root: Path, path: Path, e: Exception) -> DatasetError:
    return DatasetError(f"{rel(root, path)} is truncated or corrupt (av: {one_line(e)})")


class VideoSegment:
    """Frames of not-yet-committed episodes of one camera, encoded into a temp mp4 as they come.

    Args:
        directory: where the temp file goes (the camera's ``videos/<key>`` folder).
        shape: ``(H, W, 3)``.
        fps: frame rate; frame ``k`` of the segment has timestamp ``k / fps``.
    """

    def __init__(self, directory: Path, shape: tuple[int, ...], fps: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = temp_path(directory / "segment.mp4")
        self.fps, self.num_frames, self.closed = fps, 0, False
        self._out = av.open(str(self.path), "w", format="mp4")
        opts = {"crf": CRF, "preset": PRESET, "g": str(2 * fps), "bf": "0"}
        self._stream = self._out.add_stream("libx264", rate=fps, options=opts)
        self._stream.height, self._stream.width = shape[0], shape[1]
        self._stream.pix_fmt = "yuv420p"
        self._stream.codec_context.time_base = Fraction(1, fps)

    def write(self, frames: np.ndarray) -> None:
        """Encode ``frames`` of shape ``(T, H, W, 3)``, uint8 RGB."""
        for img in frames:
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            vf.pts, vf.time_base = self.num_frames, Fraction(1, self.fps)
            self._out.mux(self._stream.encode(vf))
            self.num_frames += 1

    def close(self) -> None:
        """Flush the encoder and finish the mp4 (idempotent)."""
        if not self.closed:
            self._out.mux(self._stream.encode(None))
            self._out.close()
            self.closed = True

    def discard(self) -> None:
        if not self.closed:
            with contextlib.suppress(av.FFmpegError):
                self._out.close()
            self.closed = True
        self.path.unlink(missing_ok=True)


def _signature(stream: av.video.stream.VideoStream) -> tuple:
    cc = stream.codec_context
    return cc.name, cc.width, cc.height, cc.pix_fmt, bytes(cc.extradata or b"")


def append_segment(final: Path, keep_frames: int, segment: Path, fps: int) -> bool:
    """Replace ``final`` by its first ``keep_frames`` frames followed by all frames of ``segment``.

    Packets are copied, not re-encoded. Returns False (and changes nothing) when the two streams
    were encoded with different parameters and cannot share a file; the caller then starts a new
    file. The result is written to a temp file and moved over ``final`` atomically.
    """
    with av.open(str(final)) as old, av.open(str(segment)) as seg:
        old_s, seg_s = old.streams.video[0], seg.streams.video[0]
        if _signature(old_s) != _signature(seg_s):
            return False
        tmp = temp_path(final)
        try:
            with av.open(str(tmp), "w", format="mp4") as out:
                out_s = out.add_stream_from_template(old_s)
                for src, limit, offset in ((old, keep_frames, 0), (seg, None, keep_frames)):
                    stream = src.streams.video[0]
                    per_frame = float(1 / (fps * stream.time_base))  # pts ticks per frame
                    cut = float("inf") if limit is None else (limit - 0.5) * per_frame
                    shift = round(offset * per_frame)
                    for pkt in src.demux(stream):
                        if pkt.dts is None or pkt.pts >= cut:  # end-of-stream marker / uncommitted
                            continue
                        pkt.pts, pkt.dts = pkt.pts + shift, pkt.dts + shift
                        pkt.stream = out_s
                        out.mux(pkt)
            commit(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
    return True


def probe(root: Path, relpath: str) -> dict:
    """Codec, size and frame count of a video file (the count from the container index)."""
    path = Path(root) / relpath
    if not path.is_file():
        raise DatasetError(f"{relpath} is missing under {root}")
    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                raise DatasetError(f"{relpath} has no video stream")
            s = c.streams.video[0]
            n = s.frames or sum(1 for p in c.demux(s) if p.dts is not None)
            return {
                "codec": s.codec_context.name,
                "width": s.width,
                "height": s.height,
                "frames": n,
            }
    except av.FFmpegError as e:
        raise _corrupt(Path(root), path, e) from None


def count_packets(root: Path, relpath: str) -> int:
    """Frames actually present in the file (reads every packet, decodes none)."""
    path = Path(root) / relpath
    try:
        with av.open(str(path)) as c:
            return sum(1 for p in c.demux(c.streams.video[0]) if p.dts is not None and p.size)
    except av.FFmpegError as e:
        raise _corrupt(Path(root), path, e) from None


def decode(root: Path, relpath: str, start: int, n: int, fps: int) -> np.ndarray:
    """Frames ``start .. start+n-1`` of a video file, shape ``(n, H, W, 3)`` uint8 RGB."""
    path = Path(root) / relpath
    if not path.is_file():
        raise DatasetError(f"{relpath} is missing under {root}")
    out: np.ndarray | None = None
    seen = 0
    rgb = VideoReformatter()  # one scaler for all frames (to_ndarray(format=) builds one per call)
    try:
        with av.open(str(path)) as c:
            s = c.streams.video[0]
            if start > 0:
                c.seek(int(Fraction(start, fps) / s.time_base), stream=s, backward=True)
            for frame in c.decode(s):
                k = round(frame.time * fps) - start
                if k < 0:
                    continue
                if k >= n:
                    break
                img = rgb.reformat(frame, format="rgb24").to_ndarray()
                if out is None:
                    out = np.empty((n, *img.shape), np.uint8)
                out[k] = img
                seen += 1
    except av.FFmpegError as e:
        raise _corrupt(Path(root), path, e) from None
    if out is None or seen != n:
        raise DatasetError(
            f"{relpath} holds {seen} of the {n} frames from frame {start} that meta/episodes lists"
        )
    return out


def tile_videos(videos: list[np.ndarray], cols: int | None = None) -> np.ndarray:
    """Videos ``(T_i, H_i, W_i, 3)`` uint8 in one grid ``(max T_i, rows·H, cols·W, 3)``: a
    shorter video holds its last frame, a smaller one is padded with black to the largest
    ``H, W``. ``cols`` defaults to a near-square grid."""
    if not videos:
        raise ValueError("no videos to tile")
    t = max(len(v) for v in videos)
    h, w = max(v.shape[1] for v in videos), max(v.shape[2] for v in videos)
    cols = min(cols or int(np.ceil(np.sqrt(len(videos)))), len(videos))
    rows = -(-len(videos) // cols)
    grid = np.zeros((t, rows * h, cols * w, 3), np.uint8)
    for k, v in enumerate(videos):
        r, c = divmod(k, cols)
        held = np.concatenate([v, np.repeat(v[-1:], t - len(v), axis=0)])
        grid[:, r * h : r * h + v.shape[1], c * w : c * w + v.shape[2]] = held
    return grid
