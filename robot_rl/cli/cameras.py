"""``robot-rl cameras [max_index=N]`` lists cameras; ``robot-rl cameras SOURCE`` tests one."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from robot_rl.core import ConfigError

USAGE = "usage: robot-rl cameras [max_index=N] | robot-rl cameras SOURCE [save=FILE.png]"


def _kv(args: list[str], keys: tuple[str, ...]) -> tuple[list[str], dict[str, str]]:
    """Split ``key=value`` options (only ``keys``) from positional arguments."""
    pos, kv = [], {}
    for a in args:
        key, sep, value = a.partition("=")
        if sep and key in keys:
            kv[key] = value
        elif sep and "://" not in a and not Path(a).exists():
            raise ConfigError(f"unexpected option {a!r}; {USAGE}")
        else:
            pos.append(a)
    return pos, kv


def main(args: list[str]) -> int:
    """List the device indices OpenCV can open, or open SOURCE and grab one frame."""
    from robot_rl.teleop.cameras import Camera, list_cameras

    pos, kv = _kv(args, ("max_index", "save"))
    console = Console()
    if len(pos) > 1:
        raise ConfigError(f"one SOURCE at most, got {pos}; {USAGE}")
    if not pos:
        try:
            max_index = int(kv.get("max_index", 8))
        except ValueError:
            raise ConfigError(f"max_index must be an integer, got {kv['max_index']!r}") from None
        cams = list_cameras(max_index)
        if not cams:
            console.print(f"no cameras found (probed device indices 0..{max_index - 1})")
            return 0
        table = Table("index", "resolution", "fps", "backend")
        for c in cams:
            table.add_row(str(c.source), f"{c.width}x{c.height}", f"{c.fps:g}", c.backend)
        console.print(table)
        return 0
    with Camera(pos[0]) as cam:
        info = cam.info
        frame, stamp = cam.read()
    console.print(
        f"[green]ok[/]: {info.source!r} via {info.backend}: {info.width}x{info.height} at "
        f"{info.fps:g} fps; frame {frame.shape[1]}x{frame.shape[0]} at t={stamp:.3f} s, "
        f"mean RGB {tuple(int(v) for v in frame.reshape(-1, 3).mean(0))}"
    )
    if "save" in kv:
        import cv2

        if not cv2.imwrite(kv["save"], frame[..., ::-1]):
            raise ConfigError(f"could not write {kv['save']!r} (use a .png or .jpg name)")
        console.print(f"saved the frame to {kv['save']}")
    return 0
