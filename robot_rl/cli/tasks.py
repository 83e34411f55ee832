"""``robot-rl tasks``: the registered tasks with their instruction and gymnasium id."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table


def main(args: list[str]) -> int:
    from robot_rl.envs import TASKS, load_task_config

    table = Table(title="robot_rl tasks")
    for col in ("task", "gymnasium id", "episode steps", "instruction"):
        table.add_column(col)
    for name in TASKS.names():
        cfg = load_task_config(name)
        table.add_row(name, TASKS.get(name).gym_id, str(cfg.episode_length), cfg.instruction)
    Console().print(table)
    return 0
