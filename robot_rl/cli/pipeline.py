"""``robot-rl pipeline``: collect → train BC → evaluate → ``runs/<name>/summary.md``."""

from __future__ import annotations

from robot_rl.cli.compose import compose_config, to_container
from robot_rl.envs.config import build_config


def main(args: list[str]) -> int:
    from robot_rl.algos.pipeline import PipelineJob, run_pipeline

    raw = to_container(compose_config("pipeline", args))
    stage = raw.get("residual") or {}
    # the residual stage's recipe: configs/algo/<algo_config>.yaml, residual.algo overriding it
    recipe = to_container(compose_config("train_residual", [f"algo={stage.pop('algo_config')}"]))
    algo = {k: v for k, v in recipe["algo"].items() if k not in ("name", "env_steps")}
    stage["algo"] = {**algo, **(stage.get("algo") or {})}
    job = build_config(PipelineJob, raw, where="pipeline")
    run_pipeline(job)
    return 0
