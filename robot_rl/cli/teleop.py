"""``robot-rl teleop`` (drive a simulated task from a device) and ``robot-rl record`` (record
teleoperated demonstrations into a LeRobot v3 dataset, the layout ``robot-rl collect`` writes)."""

from __future__ import annotations

import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robot_rl.cli.compose import compose_config, to_container
from robot_rl.core import ConfigError
from robot_rl.envs.config import build_config

DEVICES = ("keyboard", "gamepad", "spacemouse")


@dataclass
class TeleopConfig:
    task: dict[str, Any] = field(default_factory=dict)
    device: str = "keyboard"
    seed: int = 0
    speed: float = 1.0
    linear_scale: float = 1.0
    angular_scale: float = 0.5

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ConfigError(f"device must be one of {list(DEVICES)}, got {self.device!r}")
        if self.speed < 0:
            raise ConfigError(f"speed must be >= 0 (0 = unthrottled), got {self.speed}")


@dataclass
class RecordConfig(TeleopConfig):
    out: str | None = None
    episodes: int = 10
    resume: bool = False
    instruction: str | None = None
    images: bool = False
    bag: str | None = None  # also write each kept episode as a rosbag2 (MCAP) under this dir

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.episodes < 1:
            raise ConfigError(f"episodes must be >= 1, got {self.episodes}")
        if not self.out:
            raise ConfigError("record needs out=DIR (where to write the dataset)")
        if self.instruction is not None and not self.instruction.strip():
            raise ConfigError("instruction must not be empty (omit it to use the task's)")


def _env_and_device(cfg: TeleopConfig, images: bool):
    """The task's env (one instance), its teleop mapping and the device (plus the terminal
    keyboard for the session keys when the device is not the keyboard)."""
    from robot_rl.envs import load_task_config, make
    from robot_rl.teleop.command import merge
    from robot_rl.teleop.devices import NullDevice, TerminalKeyboard, make_device
    from robot_rl.teleop.mapping import mapping_for

    task_cfg = dict(cfg.task)
    if images:
        task_cfg["image"] = {**task_cfg.get("image", {}), "enabled": True}
    task = load_task_config(task_cfg.get("name", ""), task_cfg)
    device = make_device(cfg.device)
    if cfg.device != "keyboard":
        keys = TerminalKeyboard() if os.isatty(sys.stdin.fileno()) else NullDevice()
        device = _Merged(device, keys, merge)
    try:
        env = make(task, 1, seed=cfg.seed)
        mapping = mapping_for(
            env.profile.robot_type, linear_scale=cfg.linear_scale, angular_scale=cfg.angular_scale
        )
        if mapping.action_dim != env.action_dim:
            raise ConfigError(
                f"the {env.profile.robot_type} mapping makes {mapping.action_dim}-d actions, "
                f"task {task.name} takes {env.action_dim}"
            )
    except BaseException:
        device.close()
        raise
    return task, env, mapping, device


class _Merged:
    """A motion device with the terminal keyboard's keys alongside."""

    def __init__(self, motion, keys, merge) -> None:
        self.name, self._motion, self._keys, self._merge = motion.name, motion, keys, merge

    def poll(self):
        return self._merge(self._motion.poll(), self._keys.poll())

    def close(self) -> None:
        try:
            self._motion.close()
        finally:
            self._keys.close()


def _exit_on_hangup() -> None:
    """SIGTERM / SIGHUP (a closed ssh session) unwind like Ctrl-C does, so the terminal is
    restored and the dataset writer released; the episode in progress is dropped."""

    def handler(signum: int, frame: object) -> None:
        sys.exit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)


def _help(device: str) -> str:
    from robot_rl.teleop.devices import KEY_HELP
    from robot_rl.teleop.gamepad import GAMEPAD_HELP
    from robot_rl.teleop.spacemouse import SPACEMOUSE_HELP

    extra = {"gamepad": GAMEPAD_HELP, "spacemouse": SPACEMOUSE_HELP}.get(device)
    return KEY_HELP + (f"\n{extra}" if extra else "")


def teleop_main(args: list[str]) -> int:
    from robot_rl.teleop.session import Session

    cfg: TeleopConfig = build_config(
        TeleopConfig, to_container(compose_config("teleop", args)), where="teleop"
    )
    _exit_on_hangup()
    task, env, mapping, device = _env_and_device(cfg, images=False)
    print(f"teleop {task.name} with device={cfg.device}: {task.instruction}\n{_help(cfg.device)}")
    try:
        session = Session(
            env, device, mapping, instruction=task.instruction, seed=cfg.seed,
            speed=cfg.speed, wait_for_start=False,
        )  # fmt: skip
        res = session.run()
    finally:
        device.close()
        env.close()
    print(f"{res.saved} episodes finished, {res.successes} successes")
    return 0


def record_main(args: list[str]) -> int:
    from robot_rl.algos.demos import check_resumable, dataset_features, episode_frames
    from robot_rl.data import DatasetWriter
    from robot_rl.teleop.session import Recorder, Session

    cfg: RecordConfig = build_config(
        RecordConfig, to_container(compose_config("teleop_record", args)), where="record"
    )
    out = Path(cfg.out or "")
    has_dataset = (out / "meta" / "info.json").is_file()
    if cfg.resume and not has_dataset:
        raise ConfigError(f"resume=true but {out} holds no dataset (no meta/info.json)")
    if not cfg.resume and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(
            f"{out} already exists and is not empty; pass resume=true to append to its dataset "
            "or choose another out=DIR"
        )
    if cfg.bag:
        check_bag_dir(Path(cfg.bag), cfg.resume)
    _exit_on_hangup()
    task, env, mapping, device = _env_and_device(cfg, images=cfg.images)
    try:
        features, fps = dataset_features(env), round(1.0 / env.control_dt)
        if cfg.resume:
            writer = DatasetWriter.open(out)
            try:
                check_resumable(writer, features, fps)
            except BaseException:
                writer.close()
                raise
        else:
            writer = DatasetWriter.create(out, fps, features, robot_type=env.profile.robot_type)
    except BaseException:
        device.close()
        env.close()
        raise
    have = writer.num_episodes
    instruction = cfg.instruction or task.instruction
    recorder = Recorder(
        writer,
        lambda f: episode_frames(f, env),
        # the dataset declares the cameras whenever the task renders them (images=true or
        # task.image.enabled=true), so they must be recorded then
        record_images=bool(env.cfg.image.enabled),
        on_saved=_bag_writer(out, Path(cfg.bag), fps) if cfg.bag else None,
    )
    print(
        f"recording {cfg.episodes} episodes of {task.name} at {fps} fps with device={cfg.device} "
        f"→ {out}" + (f" (appending after {have} episodes)" if have else "")
    )
    print(f"instruction: {instruction}\n{_help(cfg.device)}")
    session = Session(
        env, device, mapping, instruction=instruction, recorder=recorder, episodes=cfg.episodes,
        seed=cfg.seed + 1000 * have, speed=cfg.speed, wait_for_start=True,
    )  # fmt: skip
    try:
        res = session.run()
    finally:
        try:
            recorder.close()
        finally:
            device.close()
            env.close()
    print(
        f"done: kept {res.saved} episodes ({res.successes} successes, {res.discarded} dropped); "
        f"{out} now holds {have + res.saved} episodes"
    )
    return 0


def check_bag_dir(bags: Path, resume: bool) -> None:
    """Before recording: ``bag=DIR`` must be a directory this recording may add to."""
    if bags.exists() and not bags.is_dir():
        raise ConfigError(f"bag={bags} exists and is not a directory")
    if not resume and bags.is_dir() and any(bags.iterdir()):
        raise ConfigError(
            f"bag={bags} already holds bags; choose another directory, or pass resume=true to "
            "add to the dataset and its bags"
        )


def _bag_writer(root: Path, bags: Path, fps: int):
    """Writes each committed episode, read back from the dataset, as ``bags/episode_<k>``
    (through a temporary name, so a kill never leaves a partial bag under the final one). A
    failure is reported and the recording goes on: the episode is safe in the dataset."""
    import shutil

    from robot_rl.data.reader import LeRobotDataset
    from robot_rl.data.rosbag import write_episode_bag

    bags.mkdir(parents=True, exist_ok=True)

    def write(index: int, task: str) -> None:
        path = bags / f"episode_{index:06d}"
        tmp = bags / f".episode_{index:06d}.partial"
        try:
            shutil.rmtree(tmp, ignore_errors=True)
            ds = LeRobotDataset(root)
            names = {k: f.names for k, f in ds.features.items()}
            write_episode_bag(tmp, ds.episode(index), fps=fps, task=task, names=names)
            os.replace(tmp, path)
        except Exception as e:  # noqa: BLE001 — the dataset already holds the episode
            print(f"\nwarning: episode {index} was not written as a bag ({e})", file=sys.stderr)
            shutil.rmtree(tmp, ignore_errors=True)

    return write
