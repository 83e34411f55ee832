"""``robot-rl eval checkpoint=DIR``: evaluate a policy checkpoint in the batched simulator;
``robot-rl eval reflex checkpoint=DIR``: a reflex critic on held-out rollouts."""

from __future__ import annotations

from robot_rl.cli.compose import compose_config, to_container
from robot_rl.envs.config import build_config


def main(args: list[str]) -> int:
    if args and args[0] == "reflex":
        from robot_rl.algos.reflex import EvalReflexJob, run_eval_reflex

        config = to_container(compose_config("eval_reflex", args[1:]))
        run_eval_reflex(build_config(EvalReflexJob, config, where="eval reflex"))
        return 0
    from robot_rl.algos.bc_jobs import EvalJob, run_eval

    job = build_config(EvalJob, to_container(compose_config("eval", args)), where="eval")
    run_eval(job)
    return 0
