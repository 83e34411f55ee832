"""``robot-rl <command> [subcommand] [args] [key=value ...]``."""

from __future__ import annotations

import sys
from collections.abc import Callable

from robot_rl.core.errors import RobotRLError

USAGE = """usage: robot-rl <command> [key=value ...]

commands:
  tasks                         list registered tasks
  collect   task=... episodes=N out=DIR [noise=.. images=true]   record expert demonstrations
  evaluate  task=... controller=expert|random episodes=N          success rate with 95% CI
  dataset   info|validate|viz DIR | convert-bag BAG out=DIR fps=N   inspect, check, plot, import
  train     bc task=... policy=diffusion|flow dataset=DIR      behaviour cloning
  train     residual base=DIR [demos=DIR]                      residual RL on a frozen BC policy
  train     reflex [task=arm_push]                             the safety layer's risk critic
  train     ppo task=... [num_envs=N resume=DIR]               PPO from scratch, parallel envs
  eval      checkpoint=DIR episodes=N                          evaluate a policy: report + video
  eval      reflex checkpoint=DIR                              reflex critic: precision, recall
  teleop    task=... device=keyboard|gamepad|spacemouse         drive the simulated robot
  record    task=... device=... out=DIR [episodes=N resume=true]  record teleop demonstrations
  pipeline  [task=... policy=...]                              collect → train → eval → runs/<name>/
  cameras   [SOURCE] [save=FILE.png]                           list / open cameras, grab a frame
  launch    FILE [name:=value ...]                             ROS 2 launch file, without ROS

Overrides use Hydra syntax, e.g. task=arm_pick_place task.randomization.friction=[0.5,1.5]."""


def _commands() -> dict[str, Callable[[list[str]], int]]:
    from robot_rl.cli import cameras, collect, dataset, launch, pipeline, tasks, teleop, train
    from robot_rl.cli import eval as eval_cmd

    return {
        "tasks": tasks.main,
        "collect": collect.collect_main,
        "evaluate": collect.evaluate_main,
        "dataset": dataset.main,
        "train": train.main,
        "eval": eval_cmd.main,
        "pipeline": pipeline.main,
        "launch": launch.main,
        "teleop": teleop.teleop_main,
        "record": teleop.record_main,
        "cameras": cameras.main,
    }


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    commands = _commands()
    name, rest = args[0], args[1:]
    if name not in commands:
        print(
            f"robot-rl: unknown command {name!r}; commands are {sorted(commands)}", file=sys.stderr
        )
        return 2
    try:
        return commands[name](rest)
    except RobotRLError as e:
        print(f"robot-rl {name}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"robot-rl {name}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
