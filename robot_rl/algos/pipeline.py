"""``robot-rl pipeline``: demonstrations → behaviour cloning → evaluation → residual RL → one
report folder.

``runs/<name>/`` ends up holding ``data/`` (the LeRobot dataset), ``bc/`` (checkpoints,
TensorBoard logs, ``training.png``), ``eval/`` (``report.json``, plots, rollout video),
``residual/`` (the residual actor-critic, its learning curve, base vs base+residual on the same
episodes) and ``summary.md``, the page to open first.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from robot_rl.algos.bc import BCConfig, policy_config
from robot_rl.algos.bc_jobs import EvalJob, TrainBCJob, run_eval, run_train_bc
from robot_rl.algos.demos import collect_demos
from robot_rl.algos.residual import ResidualConfig
from robot_rl.algos.residual_job import TrainResidualJob, run_train_residual
from robot_rl.core.errors import ConfigError
from robot_rl.core.progress import progress_bar
from robot_rl.envs import load_task_config
from robot_rl.envs.config import build_config
from robot_rl.policies.policy import check_noise_scale


@dataclass
class ResidualStage:
    """Stage 4 of the pipeline: residual RL on the frozen BC policy (``pipeline.yaml: residual``).

    Off by default (``env_steps: 0``): on arm_push its recipe (``residual_arm_push``) keeps a
    Ta = 2 BC policy at its 95-97% in 76.8k env steps (~35 min alone on 2 CPU cores); from a
    Ta = 4 base of 87-93% it peaked at 94.5-96.5% on its evaluation episodes (+0.5-2.5 points
    on fresh ones, within noise; BENCHMARKS.md, residual RL).
    """

    env_steps: int = 0  # 0 skips the stage
    num_envs: int = 16
    eval_every: int = 0  # env steps between evaluations; 0: a quarter of env_steps
    # ResidualConfig fields; the CLI fills them from configs/algo/<residual.algo_config>.yaml
    algo: dict[str, Any] = field(default_factory=dict)
    base_noise_scale: float = 1.0  # the BC base's sampling noise in the stage; 0: deterministic

    def __post_init__(self) -> None:
        check_noise_scale(self.base_noise_scale, "residual.base_noise_scale")
        if self.env_steps < 0 or self.num_envs < 1 or self.eval_every < 0:
            raise ConfigError(
                "residual.env_steps and residual.eval_every must be >= 0 and residual.num_envs "
                f">= 1, got {self.env_steps}, {self.eval_every}, {self.num_envs}"
            )
        if "env_steps" in self.algo:
            raise ConfigError("set the stage's length with residual.env_steps, not residual.algo")


@dataclass
class PipelineJob:
    """``robot-rl pipeline`` (``configs/pipeline.yaml``)."""

    task: dict[str, Any] = field(default_factory=dict)
    policy: dict[str, Any] = field(default_factory=dict)
    algo: dict[str, Any] = field(default_factory=dict)
    name: str | None = None  # runs/<name>/; default <task>_<policy>
    runs: str = "runs"
    episodes: int = 200  # demonstrations
    noise: float = 0.1  # expert imperfection in the demonstrations
    collect_envs: int = 16
    images: bool = False  # record camera video and train an image policy
    eval_every: int = 1000
    eval_episodes: int = 200
    eval_envs: int = 50
    video_episodes: int = 4
    seed: int = 0
    device: str = "auto"
    overwrite: bool = False  # replace an existing runs/<name>/
    residual: ResidualStage = field(default_factory=ResidualStage)

    def __post_init__(self) -> None:
        for key in ("episodes", "eval_episodes", "collect_envs", "eval_envs"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key} must be >= 1, got {getattr(self, key)}")
        if self.video_episodes < 0 or self.eval_every < 0:
            raise ConfigError(
                f"video_episodes and eval_every must be >= 0, got {self.video_episodes}, "
                f"{self.eval_every}"
            )
        if self.noise < 0:
            raise ConfigError(f"noise must be >= 0, got {self.noise}")


def run_pipeline(job: PipelineJob, console: Console | None = None) -> dict[str, Any]:
    """Run every stage; returns what ``summary.md`` reports."""
    console = console or Console()
    task = dict(job.task)
    if job.images:
        task["image"] = {**task.get("image", {}), "enabled": True}
    task_cfg = load_task_config(task.get("name", ""), task)
    root = Path(job.runs) / (job.name or f"{task_cfg.name}_{job.policy.get('name')}")
    # every setting is checked before anything is deleted or collected
    residual = residual_job(job, task, root / "residual")
    check_settings(job.policy, job.algo)
    stages = 4 if residual is not None else 3
    if root.exists():
        if not job.overwrite:
            raise ConfigError(f"{root} exists; pass overwrite=true to replace it or name=<new>")
        shutil.rmtree(root)
    root.mkdir(parents=True)
    times: dict[str, float] = {}

    console.rule(f"[bold]1/{stages} demonstrations[/]: {job.episodes} episodes of {task_cfg.name}")
    t0 = time.perf_counter()
    with progress_bar() as bar:
        bar_job = bar.add_task("collect", total=job.episodes)
        expert = collect_demos(
            task_cfg,
            root / "data",
            job.episodes,
            num_envs=job.collect_envs,
            seed=job.seed,
            noise=job.noise,
            progress=lambda k: bar.update(bar_job, completed=k),
        )
    times["collect"] = time.perf_counter() - t0
    console.print(f"expert success {expert.success_rate:.1%} (noise {job.noise})")

    console.rule(f"[bold]2/{stages} behaviour cloning[/]: {job.policy.get('name')} policy")
    t0 = time.perf_counter()
    train = run_train_bc(
        TrainBCJob(
            task=task,
            policy=job.policy,
            algo=job.algo,
            dataset=str(root / "data"),
            out=str(root / "bc"),
            eval_every=job.eval_every,
            eval_episodes=min(50, job.eval_episodes),
            eval_envs=job.eval_envs,
            seed=job.seed,
            device=job.device,
        ),
        console,
    )
    times["train"] = time.perf_counter() - t0

    console.rule(f"[bold]3/{stages} evaluation[/]: {job.eval_episodes} episodes")
    t0 = time.perf_counter()
    checkpoint = train["best_checkpoint"] or train["checkpoint"]
    report = run_eval(
        EvalJob(
            checkpoint=checkpoint,
            task=task,
            episodes=job.eval_episodes,
            num_envs=job.eval_envs,
            seed=job.seed + 1,  # episodes the checkpoint was not selected on
            out=str(root / "eval"),
            video_episodes=job.video_episodes,
            device=job.device,
        ),
        console,
    )
    times["eval"] = time.perf_counter() - t0
    residual_result = None
    if residual is not None:
        console.rule(f"[bold]4/4 residual RL[/]: {residual.algo['env_steps']} env steps")
        t0 = time.perf_counter()
        residual.base = checkpoint
        residual.demos = str(root / "data")
        residual_result = run_train_residual(residual, console)
        times["residual"] = time.perf_counter() - t0
    result = {
        "task": task_cfg.name,
        "policy": job.policy.get("name"),
        "expert": expert.summary(),
        "train": {k: v for k, v in train.items() if k != "loss_curve"},
        "eval": {n: t["summary"] for n, t in report["tasks"].items()},
        "checkpoint": checkpoint,
        "residual": residual_result,
        "seconds": times,
    }
    (root / "pipeline.json").write_text(json.dumps(result, indent=2) + "\n")
    (root / "summary.md").write_text(summary_markdown(result, report, root))
    console.print(f"[bold green]report[/]: {root / 'summary.md'}")
    return result


def residual_job(job: PipelineJob, task: dict[str, Any], out: Path) -> TrainResidualJob | None:
    """The residual stage's job (base and demos are filled in once they exist), or None when
    ``residual.env_steps`` is 0. Bad ``residual.algo`` fields raise ConfigError."""
    stage = job.residual
    if stage.env_steps == 0:
        return None
    algo = {**stage.algo, "env_steps": stage.env_steps}
    build_config(ResidualConfig, algo, where="residual.algo")
    return TrainResidualJob(
        task=task,
        algo=algo,
        out=str(out),
        num_envs=stage.num_envs,
        eval_every=stage.eval_every or max(1, stage.env_steps // 4),
        eval_episodes=job.eval_episodes,
        eval_envs=job.eval_envs,
        seed=job.seed,
        device=job.device,
        base_noise_scale=stage.base_noise_scale,
        heldout_episodes=job.eval_episodes,
    )


def check_settings(policy: dict[str, Any], algo: dict[str, Any]) -> None:
    """Build the typed policy and algo configs once (with placeholder shapes) so that a typo in a
    ``policy.*`` / ``algo.*`` override fails before the pipeline starts."""
    policy_config(policy, state_dim=1, action_dim=1)
    build_config(BCConfig, algo, where="algo")


def heldout_text(r: dict[str, Any]) -> str:
    """The residual stage's held-out comparison (base vs best, and the final residual, on fresh
    episodes), if it ran."""
    h = r.get("heldout")
    if not h:
        return ""
    base, best = h["base"]["success_rate"], h["best"]["success_rate"]
    text = f"; on {h['best']['episodes']} fresh episodes: base {base:.1%} → best {best:.1%}"
    if "last" in h:  # summaries from before the final residual was scored there lack it
        text += f" (final {h['last']['success_rate']:.1%})"
    return text


def summary_markdown(result: dict[str, Any], report: dict[str, Any], root: Path) -> str:
    """The run's front page: what was done, how well it works, where everything is."""
    lines = [
        f"# {result['policy']} policy on {result['task']}",
        "",
        "| stage | result | wall time |",
        "|---|---|---|",
    ]
    e = result["expert"]
    lines.append(
        f"| demonstrations | {e['episodes']} episodes, expert success {e['success_rate']:.1%} "
        f"| {result['seconds']['collect']:.0f} s |"
    )
    t = result["train"]
    lines.append(
        f"| behaviour cloning | {t['steps']} steps, best eval success {t['best_success']:.1%} "
        f"| {result['seconds']['train']:.0f} s |"
    )
    for name, s in result["eval"].items():
        lines.append(
            f"| evaluation ({name}) | success **{s['success_rate']:.1%}** (95% CI "
            f"{s['success_ci95_low']:.1%}–{s['success_ci95_high']:.1%}) over {s['episodes']} "
            f"episodes, mean length {s['mean_length']:.1f} | {result['seconds']['eval']:.0f} s |"
        )
    r = result.get("residual")
    if r:
        lines.append(
            f"| residual RL | {r['env_steps']} env steps; on the same {r['episodes']} episodes: "
            f"base {r['base_success']:.1%} → base+residual **{r['final_success']:.1%}** "
            f"(best {r['best_success']:.1%} at {r['best_env_steps']} steps{heldout_text(r)}) "
            f"| {result['seconds']['residual']:.0f} s |"
        )
    lines += ["", "![training](bc/training.png)", ""]
    if r:
        lines += ["![residual RL](residual/success.png)", ""]
    lines += [f"![{p}](eval/{p})" for p in report.get("plots", [])]
    videos = [t["video"] for t in report["tasks"].values() if t.get("video")]
    lines += ["", "Rollouts: " + ", ".join(f"[{v}](eval/{v})" for v in videos), ""]
    lines += [
        "Files: `data/` (LeRobot v3 dataset), `bc/checkpoints/` (policy checkpoints: "
        "config.json + model.safetensors), `bc/tb/` (TensorBoard: "
        f"`tensorboard --logdir {root / 'bc' / 'tb'}`), `eval/report.json`.",
        "",
        f"Re-evaluate: `robot-rl eval checkpoint={result['checkpoint']} episodes=500`",
        "",
    ]
    return "\n".join(lines)
