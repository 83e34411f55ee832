"""``robot-rl collect`` (expert demonstrations ⇒ dataset) and ``robot-rl evaluate``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from robot_rl.cli.compose import compose_config, to_container
from robot_rl.core import ConfigError
from robot_rl.core.progress import progress_bar
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


def _task_config(task_cfg: dict, images: bool):
    from robot_rl.envs import load_task_config

    if images:
        task_cfg = {**task_cfg, "image": {**task_cfg.get("image", {}), "enabled": True}}
    return load_task_config(task_cfg.get("name", ""), task_cfg)


def _print_summary(console: Console, title: str, summary: dict) -> None:
    console.print(
        f"[bold]{title}[/]: success {summary['success_rate']:.1%} "
        f"(95% CI {summary['success_ci95_low']:.1%}–{summary['success_ci95_high']:.1%}) over "
        f"{summary['episodes']} episodes, mean length {summary['mean_length']:.1f} steps, "
        f"mean return {summary['mean_return']:.2f}"
    )
    print(json.dumps({"summary": summary}))


def collect_main(args: list[str]) -> int:
    from robot_rl.algos.demos import collect_demos

    cfg: CollectConfig = build_config(
        CollectConfig, to_container(compose_config("collect", args)), where="collect"
    )
    if not cfg.out:
        raise ConfigError("collect needs out=DIR (where to write the dataset)")
    out = Path(cfg.out)
    task_cfg = _task_config(cfg.task, cfg.images)
    console = Console()
    console.print(
        f"collecting {cfg.episodes} episodes of [bold]{task_cfg.name}[/] with the scripted "
        f"expert (noise {cfg.noise}) in {cfg.num_envs} parallel envs → {out}"
    )
    with progress_bar() as bar:
        job = bar.add_task("episodes", total=cfg.episodes)
        stats = collect_demos(
            task_cfg,
            out,
            cfg.episodes,
            num_envs=cfg.num_envs,
            seed=cfg.seed,
            noise=cfg.noise,
            overwrite=cfg.overwrite,
            resume=cfg.resume,
            progress=lambda k: bar.update(job, completed=k),
        )
    _print_summary(console, f"expert on {task_cfg.name}", stats.summary())
    console.print(f"dataset: {out}  (inspect: robot-rl dataset info {out})")
    return 0


def evaluate_main(args: list[str]) -> int:
    from robot_rl.algos.rollout import rollout

    cfg: EvaluateConfig = build_config(
        EvaluateConfig, to_container(compose_config("evaluate", args)), where="evaluate"
    )
    from robot_rl.algos.demos import make_env_and_expert

    task_cfg = _task_config(cfg.task, False)
    env, expert = make_env_and_expert(task_cfg, cfg.num_envs, cfg.seed, cfg.noise)
    if cfg.controller == "random":
        gen = torch.Generator().manual_seed(cfg.seed)

        def controller(obs):
            return torch.rand((env.num_envs, env.action_dim), generator=gen) * 2 - 1

        on_reset = None
    else:
        controller, on_reset = expert.act, expert.reset
    console = Console()
    with progress_bar() as bar:
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
