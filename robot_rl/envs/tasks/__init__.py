"""Task families. Importing this package registers every task."""

from robot_rl.envs.tasks.arm import tasks as _arm_tasks  # noqa: F401
