"""Task families. Importing this package registers every task."""

from robot_rl.envs.tasks.arm import tasks as _arm_tasks  # noqa: F401
from robot_rl.envs.tasks.car import race as _car_tasks  # noqa: F401
from robot_rl.envs.tasks.humanoid import tasks as _humanoid_tasks  # noqa: F401
