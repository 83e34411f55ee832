"""``robot-rl train bc ...`` (behaviour cloning), ``robot-rl train residual ...``,
``robot-rl train reflex ...`` (the safety layer's risk critic) and ``robot-rl train ppo ...``
(PPO from scratch in parallel envs)."""

from __future__ import annotations

from robot_rl.cli.compose import compose_config, to_container
from robot_rl.core import ConfigError
from robot_rl.envs.config import build_config

ALGOS = ("bc", "residual", "reflex", "ppo")


def main(args: list[str]) -> int:
    if not args or args[0] not in ALGOS:
        got = repr(args[0]) if args else "nothing"
        raise ConfigError(f"usage: robot-rl train {{{'|'.join(ALGOS)}}} key=value ...; got {got}")
    config = to_container(compose_config(f"train_{args[0]}", args[1:]))
    if args[0] == "bc":
        from robot_rl.algos.bc_jobs import TrainBCJob, run_train_bc

        run_train_bc(build_config(TrainBCJob, config, where="train bc"))
    elif args[0] == "residual":
        from robot_rl.algos.residual_job import TrainResidualJob, run_train_residual

        run_train_residual(build_config(TrainResidualJob, config, where="train residual"))
    elif args[0] == "ppo":
        from robot_rl.algos.ppo_job import TrainPPOJob, run_train_ppo

        run_train_ppo(build_config(TrainPPOJob, config, where="train ppo"))
    else:
        from robot_rl.algos.reflex import TrainReflexJob, run_train_reflex

        run_train_reflex(build_config(TrainReflexJob, config, where="train reflex"))
    return 0
