"""Look at one episode of a dataset: an mp4 of its cameras beside action/state plots, or a PNG.

The mp4 draws the static parts of each frame (axes, curves, legends) once and then, per frame, only
restores that background and redraws the camera image, the time cursors and the title (matplotlib
blitting on an Agg canvas), so a 100-frame episode renders in a few seconds on a CPU. Uses
matplotlib's object API, not pyplot: no global backend or figure state is touched.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from robot_rl.core.errors import ConfigError, DatasetError
from robot_rl.data.reader import LeRobotDataset
from robot_rl.data.video import VideoSegment, tile_videos

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

EXTENSIONS = (".mp4", ".png")
DPI = 100
MAX_LIVE_LEGEND = 8  # more entries than this would cover the curves of a small mp4 panel


def plot_keys(ds: LeRobotDataset) -> list[str]:
    """Numeric (non-video, non-bool) features whose name mentions ``action`` or ``state``."""
    return [
        k
        for k, f in ds.features.items()
        if not f.is_video and f.dtype != "bool" and ("action" in k or "state" in k)
    ]


def _labels(ds: LeRobotDataset, key: str, dim: int) -> list[str]:
    names = ds.features[key].names
    return list(names) if names and len(names) == dim else [f"{key}[{j}]" for j in range(dim)]


def _success(ds: LeRobotDataset, episode: int) -> bool | None:
    table = ds.episodes_table()
    if "success" not in table.column_names:
        return None
    v = table.column("success")[episode].as_py()
    return None if v is None else bool(v)


def _title(task: str, episode: int, frame: int | None, n: int, success: bool | None) -> str:
    parts = [task or "(no task)", f"episode {episode}"]
    parts.append(f"frame {frame}/{n - 1}" if frame is not None else f"{n} frames")
    if success is not None:
        parts.append("success" if success else "failure")
    return "  |  ".join(parts)


def _plot_curves(ax: Axes, ds: LeRobotDataset, key: str, values: np.ndarray, legend: bool) -> None:
    """``values (T, D)`` of feature ``key`` against frame index, one labelled line per entry."""
    for j, label in enumerate(_labels(ds, key, values.shape[1])):
        ax.plot(values[:, j], lw=1.0, label=label)
    ax.set_title(key, fontsize=9, loc="left")
    ax.set_xlim(0, max(len(values) - 1, 1))
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    if legend:
        ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)


def _new_figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _load(root: str | Path, episode: int) -> tuple[LeRobotDataset, dict[str, np.ndarray]]:
    ds = LeRobotDataset(root)
    if not 0 <= episode < ds.num_episodes:
        last = f" (0..{ds.num_episodes - 1})" if ds.num_episodes else ""
        raise DatasetError(
            f"episode {episode} is out of range: {root} has {ds.num_episodes} "
            f"episode{'' if ds.num_episodes == 1 else 's'}{last}"
        )
    return ds, ds.episode(episode)


def render_mp4(
    ds: LeRobotDataset, episode: int, ep: dict[str, np.ndarray], out: Path, fps: int
) -> Path:
    """Write an H.264 mp4 with one frame per episode frame: cameras (tiled) beside live plots of
    the action/state features with a moving cursor, and a title with task, frame and success."""
    n = len(ep["frame_index"])
    keys = plot_keys(ds)
    cams = tile_videos([ep[k] for k in ds.video_keys]) if ds.video_keys else None
    rows = max(len(keys), 1)
    fig = _new_figure(12.8 if cams is not None else 9.6, max(4.8, 2.0 * rows))
    gs = fig.add_gridspec(
        rows, 2 if cams is not None else 1, left=0.04, right=0.84, top=0.9, hspace=0.4
    )
    image = None
    if cams is not None:
        ax_img = fig.add_subplot(gs[:, 0])
        ax_img.set_axis_off()
        ax_img.set_title(", ".join(ds.video_keys), fontsize=8)
        image = ax_img.imshow(cams[0], animated=True, interpolation="nearest")
    cursors = []
    for r, k in enumerate(keys):
        ax = fig.add_subplot(gs[r, 1 if cams is not None else 0])
        values = ep[k].reshape(n, -1).astype(np.float64)
        _plot_curves(ax, ds, k, values, legend=values.shape[1] <= MAX_LIVE_LEGEND)
        cursors.append(ax.axvline(0, color="k", lw=1.0, animated=True))
        if r == len(keys) - 1:
            ax.set_xlabel("frame", fontsize=8)
    success = _success(ds, episode)
    title = fig.text(0.5, 0.96, "", ha="center", va="center", fontsize=10, animated=True)

    canvas = fig.canvas
    canvas.draw()
    background = canvas.copy_from_bbox(fig.bbox)
    w, h = canvas.get_width_height()
    h2, w2 = h - h % 2, w - w % 2  # yuv420p needs even sides
    out.parent.mkdir(parents=True, exist_ok=True)
    seg = VideoSegment(out.parent, (h2, w2, 3), fps)
    try:
        for t in range(n):
            canvas.restore_region(background)
            if image is not None and cams is not None:
                image.set_data(cams[t])
                fig.draw_artist(image)
            for c in cursors:
                c.set_xdata([t, t])
                fig.draw_artist(c)
            task = ds.tasks[int(ep["task_index"][t])]
            title.set_text(_title(task, episode, t, n, success))
            fig.draw_artist(title)
            canvas.blit(fig.bbox)
            rgba = np.asarray(canvas.buffer_rgba())
            seg.write(rgba[None, :h2, :w2, :3])
        seg.close()
        seg.path.replace(out)
    finally:
        seg.discard()
    return out


def render_png(ds: LeRobotDataset, episode: int, ep: dict[str, np.ndarray], out: Path) -> Path:
    """Write one summary figure: first/middle/last camera frames above the full action/state plots
    (legends from the feature names in ``meta/info.json`` when it has them)."""
    n = len(ep["frame_index"])
    keys = plot_keys(ds)
    cams = tile_videos([ep[k] for k in ds.video_keys]) if ds.video_keys else None
    img_rows = 1 if cams is not None else 0
    rows = max(img_rows + len(keys), 1)
    fig = _new_figure(10.0, 2.6 * rows)
    gs = fig.add_gridspec(rows, 3, left=0.06, right=0.8, top=1 - 0.35 / rows, hspace=0.45)
    if cams is not None:
        for c, t in enumerate(sorted({0, (n - 1) // 2, n - 1})):
            ax = fig.add_subplot(gs[0, c])
            ax.imshow(cams[t], interpolation="nearest")
            ax.set_title(
                f"frame {t}" + (f"  ({', '.join(ds.video_keys)})" if c == 0 else ""), fontsize=8
            )
            ax.set_axis_off()
    for r, k in enumerate(keys):
        ax = fig.add_subplot(gs[img_rows + r, :])
        _plot_curves(ax, ds, k, ep[k].reshape(n, -1).astype(np.float64), legend=True)
        if r == len(keys) - 1:
            ax.set_xlabel("frame", fontsize=8)
    task = ds.tasks[int(ep["task_index"][0])] if n else ""
    fig.suptitle(_title(task, episode, None, n, _success(ds, episode)), fontsize=10)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=DPI)
    return out


def render_episode(
    root: str | Path, episode: int = 0, out: str | Path | None = None, fps: int | None = None
) -> Path:
    """Render episode ``episode`` of the dataset at ``root`` to ``out`` (``.mp4`` or ``.png``;
    default ``<dataset name>_episode_<K>.mp4`` in the working directory) and return the path.

    Args:
        root: dataset directory.
        episode: episode index, ``0 <= episode < num_episodes``.
        out: output file; its extension picks the mp4 video or the PNG summary.
        fps: mp4 frame rate; the dataset's fps by default (ignored for PNG).
    """
    out = Path(out) if out is not None else Path(f"{Path(root).name}_episode_{episode}.mp4")
    if out.suffix.lower() not in EXTENSIONS:
        raise ConfigError(f"out={str(out)!r} has an unknown extension; expected .mp4 or .png")
    if fps is not None and (isinstance(fps, bool) or fps < 1):
        raise ConfigError(f"fps must be an integer >= 1, got {fps!r}")
    ds, ep = _load(root, episode)
    if out.suffix.lower() == ".png":
        return render_png(ds, episode, ep, out)
    return render_mp4(ds, episode, ep, out, fps or ds.fps)
