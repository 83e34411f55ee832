"""``robot-rl train bc ...`` (behaviour cloning); ``train residual`` arrives with issue 4."""

from __future__ import annotations

from robot_rl.cli.compose import compose_config, to_container
from robot_rl.core import ConfigError
from robot_rl.envs.config import build_config

ALGOS = ("bc",)


def main(args: list[str]) -> int:
    from robot_rl.algos.bc_jobs import TrainBCJob, run_train_bc

    if not args or args[0] not in ALGOS:
        got = repr(args[0]) if args else "nothing"
        raise ConfigError(f"usage: robot-rl train {{{'|'.join(ALGOS)}}} key=value ...; got {got}")
    job = build_config(
        TrainBCJob, to_container(compose_config("train_bc", args[1:])), where="train bc"
    )
    run_train_bc(job)
    return 0
