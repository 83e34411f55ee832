"""``robot-rl pipeline``: collect → train BC → evaluate → ``runs/<name>/summary.md``."""

from __future__ import annotations

from robot_rl.cli.compose import compose_config, to_container
from robot_rl.envs.config import build_config


def main(args: list[str]) -> int:
    from robot_rl.algos.pipeline import PipelineJob, run_pipeline

    job = build_config(
        PipelineJob, to_container(compose_config("pipeline", args)), where="pipeline"
    )
    run_pipeline(job)
    return 0
