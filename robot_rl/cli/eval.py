"""``robot-rl eval checkpoint=DIR``: evaluate a policy checkpoint in the batched simulator."""

from __future__ import annotations

from robot_rl.cli.compose import compose_config, to_container
from robot_rl.envs.config import build_config


def main(args: list[str]) -> int:
    from robot_rl.algos.bc_jobs import EvalJob, run_eval

    job = build_config(EvalJob, to_container(compose_config("eval", args)), where="eval")
    run_eval(job)
    return 0
