"""``robot-rl dataset info|validate DIR``, ``robot-rl dataset convert-bag BAG out=DIR fps=N`` and
``robot-rl dataset viz DIR [episode=K] [out=FILE.mp4|FILE.png] [fps=N]``."""

from __future__ import annotations

import json

from rich.console import Console

from robot_rl.core import ConfigError

SUBCOMMANDS = ("info", "validate", "convert-bag", "viz")
CONVERT_USAGE = (
    "usage: robot-rl dataset convert-bag BAG out=DIR fps=N [state=/topic] [action=/topic] "
    '[images=[/a,/b]] [task="..."] [instruction=/topic] [overwrite=true]'
)
CONVERT_KEYS = ("out", "fps", "state", "action", "images", "task", "instruction", "overwrite")
VIZ_USAGE = "usage: robot-rl dataset viz DIR [episode=K] [out=FILE.mp4|FILE.png] [fps=N]"
VIZ_KEYS = ("episode", "out", "fps")


def _parse_kv(extra: list[str]) -> dict[str, str]:
    """``key=value`` arguments into a dict; unknown keys and bare words are one-line errors."""
    out = {}
    for a in extra:
        key, sep, value = a.partition("=")
        if not sep or key not in CONVERT_KEYS:
            raise ConfigError(f"unexpected argument {a!r}; {CONVERT_USAGE}")
        out[key] = value.strip().strip("'\"")
    return out


def convert_bag(bag: str, extra: list[str], console: Console) -> int:
    """``convert-bag``: a rosbag2 / MCAP bag into a LeRobot v3 dataset (see ``bag_to_dataset``)."""
    from robot_rl.data.rosbag import ACTION_TOPIC, INSTRUCTION_TOPIC, STATE_TOPIC, bag_to_dataset

    kv = _parse_kv(extra)
    if "out" not in kv or "fps" not in kv:
        raise ConfigError(f"convert-bag needs out=DIR and fps=N; {CONVERT_USAGE}")
    try:
        fps = int(kv["fps"])
    except ValueError:
        raise ConfigError(f"fps must be an integer, got {kv['fps']!r}") from None
    images = None
    if "images" in kv:
        images = [t.strip().strip("'\"") for t in kv["images"].strip("[]").split(",") if t.strip()]
    ds = bag_to_dataset(
        bag,
        kv["out"],
        fps=fps,
        state_topic=kv.get("state", STATE_TOPIC),
        action_topic=kv.get("action", ACTION_TOPIC),
        image_topics=images,
        instruction_topic=kv.get("instruction", INSTRUCTION_TOPIC),
        task=kv.get("task") or None,
        overwrite=kv.get("overwrite", "false").lower() in ("1", "true", "yes"),
    )
    console.print(
        f"[green]ok[/]: {bag} -> {kv['out']}: {ds.num_episodes} episodes, {ds.num_frames} frames "
        f"at {fps} fps, cameras {', '.join(ds.video_keys) or 'none'}"
    )
    return 0


def viz(root: str, extra: list[str], console: Console) -> int:
    """``viz``: one episode as an mp4 (cameras + live action/state plots) or a PNG summary."""
    from robot_rl.data.viz import render_episode

    kv: dict[str, str] = {}
    for a in extra:
        key, sep, value = a.partition("=")
        if not sep or key not in VIZ_KEYS:
            raise ConfigError(f"unexpected argument {a!r}; {VIZ_USAGE}")
        kv[key] = value.strip().strip("'\"")
    ints: dict[str, int] = {}
    for key in ("episode", "fps"):
        if key in kv:
            try:
                ints[key] = int(kv[key])
            except ValueError:
                raise ConfigError(f"{key} must be an integer, got {kv[key]!r}") from None
    path = render_episode(root, ints.get("episode", 0), kv.get("out") or None, ints.get("fps"))
    console.print(f"[green]ok[/]: wrote {path}", soft_wrap=True)
    return 0


def main(args: list[str]) -> int:
    from robot_rl.data import dataset_info, validate_dataset

    if len(args) < 2 or args[0] not in SUBCOMMANDS:
        raise ConfigError(f"usage: robot-rl dataset {{{'|'.join(SUBCOMMANDS)}}} DIR|BAG")
    sub, root = args[0], args[1]
    extra = args[2:]
    console = Console()
    if sub == "convert-bag":
        return convert_bag(root, extra, console)
    if sub == "viz":
        return viz(root, extra, console)
    if extra:
        raise ConfigError(f"unexpected arguments {extra}")
    if sub == "info":
        info = dataset_info(root)
        console.print_json(json.dumps(info, default=str))
        return 0
    warnings = validate_dataset(root)
    for w in warnings:
        console.print(f"[yellow]warning[/]: {w}")
    console.print(
        f"[green]ok[/]: {root} is a valid dataset"
        + (f" ({len(warnings)} warnings)" if warnings else "")
    )
    return 0
