"""``robot-rl collect`` (expert demonstrations ⇒ dataset) and ``robot-rl evaluate``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from robot_rl.cli.compose import compose_config, to_container
from robot_rl.core import ConfigError
from robot_rl.envs.config import build_config


@dataclass
class CollectConfig:
    task: dict[str, Any] = field(default_factory=dict)
    episodes: int = 100
    out: str | None = None
    num_envs: int = 16
    seed: int = 0
    noise: float = 0.0
    images: bool = False
    overwrite: bool = False
    resume: bool = False

    def __post_init__(self) -> None:
        if self.episodes < 1:
            raise ConfigError(f"episodes must be >= 1, got {self.episodes}")
        if self.num_envs < 1:
            raise ConfigError(f"num_envs must be >= 1, got {self.num_envs}")
        if self.noise < 0:
            raise ConfigError(f"noise must be >= 0, got {self.noise}")
        if self.overwrite and self.resume:
            raise ConfigError("overwrite=true and resume=true contradict each other")


@dataclass
class EvaluateConfig:
    task: dict[str, Any] = field(default_factory=dict)
    controller: str = "expert"
    episodes: int = 200
    num_envs: int = 32
    seed: int = 0
    noise: float = 0.0

    def __post_init__(self) -> None:
        if self.controller not in ("expert", "random"):
            raise ConfigError(f"controller must be 'expert' or 'random', got {self.controller!r}")
        if self.episodes < 1 or self.num_envs < 1:
            raise ConfigError("episodes and num_envs must be >= 1")


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )


def _make_env_and_expert(task_cfg: dict, num_envs: int, seed: int, noise: float, images: bool):
    from robot_rl.envs import load_task_config, make
    from robot_rl.envs.experts import make_expert

    name = task_cfg.get("name", "")
    if images:
        task_cfg = {**task_cfg, "image": {**task_cfg.get("image", {}), "enabled": True}}
    cfg = load_task_config(name, task_cfg)
    env = make(cfg, num_envs, seed=seed)
    expert = make_expert(name, env, noise=noise, seed=seed)
    return cfg, env, expert


def _print_summary(console: Console, title: str, summary: dict) -> None:
    console.print(
        f"[bold]{title}[/]: success {summary['success_rate']:.1%} "
        f"(95% CI {summary['success_ci95_low']:.1%}–{summary['success_ci95_high']:.1%}) over "
        f"{summary['episodes']} episodes, mean length {summary['mean_length']:.1f} steps, "
        f"mean return {summary['mean_return']:.2f}"
    )
    print(json.dumps({"summary": summary}))


def _check_resumable(writer, features: dict, fps: int) -> None:
    """The episodes to append must have the dataset's rate and features."""
    if writer.fps != fps:
        raise ConfigError(
            f"resume: dataset {writer.root} is at {writer.fps} fps, this task at {fps}"
        )
    have = {k: tuple(f.shape) for k, f in writer.features.items()}
    want = {k: tuple(f.shape) for k, f in features.items()}
    if have != want:
        raise ConfigError(
            f"resume: dataset {writer.root} has features {have}, this task produces {want}"
        )


def collect_main(args: list[str]) -> int:
    from robot_rl.algos.demos import dataset_features, episode_frames
    from robot_rl.algos.rollout import rollout
    from robot_rl.data import DatasetWriter

    cfg: CollectConfig = build_config(
        CollectConfig, to_container(compose_config("collect", args)), where="collect"
    )
    if not cfg.out:
        raise ConfigError("collect needs out=DIR (where to write the dataset)")
    out = Path(cfg.out)
    writer = DatasetWriter.open(out) if cfg.resume else None
    # A resumed run continues with a fresh seed: the same seed would replay (and so duplicate) the
    # episodes already in the dataset.
    seed = cfg.seed + (writer.num_episodes if writer is not None else 0)
    try:
        task_cfg, env, expert = _make_env_and_expert(
            cfg.task, cfg.num_envs, seed, cfg.noise, cfg.images
        )
        features = dataset_features(env)
        fps = round(1.0 / env.control_dt)
        if writer is not None:
            _check_resumable(writer, features, fps)
    except BaseException:
        if writer is not None:
            writer.close()
        raise
    if writer is None:
        writer = DatasetWriter.create(
            out,
            fps=fps,
            features=features,
            robot_type=env.profile.robot_type,
            overwrite=cfg.overwrite,
        )
    console = Console()
    console.print(
        f"collecting {cfg.episodes} episodes of [bold]{task_cfg.name}[/] with the scripted "
        f"expert (noise {cfg.noise}) in {cfg.num_envs} parallel envs → {out}"
    )

    def on_episode(i: int, frames: dict[str, torch.Tensor], ep: dict) -> None:
        writer.add_episode(
            episode_frames(frames, env),
            task=task_cfg.instruction,
            extras={"success": ep["success"]},
        )

    with writer, _progress() as bar:
        job = bar.add_task("episodes", total=cfg.episodes)
        stats = rollout(
            env,
            expert.act,
            cfg.episodes,
            seed=seed,
            on_reset=expert.reset,
            on_episode=on_episode,
            record_images=task_cfg.image.enabled,
            progress=lambda k: bar.update(job, completed=k),
        )
    env.close()
    _print_summary(console, f"expert on {task_cfg.name}", stats.summary())
    console.print(f"dataset: {out}  (inspect: robot-rl dataset info {out})")
    return 0


def evaluate_main(args: list[str]) -> int:
    from robot_rl.algos.rollout import rollout

    cfg: EvaluateConfig = build_config(
        EvaluateConfig, to_container(compose_config("evaluate", args)), where="evaluate"
    )
    task_cfg, env, expert = _make_env_and_expert(cfg.task, cfg.num_envs, cfg.seed, cfg.noise, False)
    if cfg.controller == "random":
        gen = torch.Generator().manual_seed(cfg.seed)

        def controller(obs):
            return torch.rand((env.num_envs, env.action_dim), generator=gen) * 2 - 1

        on_reset = None
    else:
        controller, on_reset = expert.act, expert.reset
    console = Console()
    with _progress() as bar:
        job = bar.add_task(f"{cfg.controller} on {task_cfg.name}", total=cfg.episodes)
        stats = rollout(
            env,
            controller,
            cfg.episodes,
            seed=cfg.seed,
            on_reset=on_reset,
            progress=lambda k: bar.update(job, completed=k),
        )
    env.close()
    _print_summary(console, f"{cfg.controller} on {task_cfg.name}", stats.summary())
    return 0
