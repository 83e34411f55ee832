"""``robot-rl dataset info|validate DIR``."""

from __future__ import annotations

import json

from rich.console import Console

from robot_rl.core import ConfigError

SUBCOMMANDS = ("info", "validate")


def main(args: list[str]) -> int:
    from robot_rl.data import dataset_info, validate_dataset

    if len(args) < 2 or args[0] not in SUBCOMMANDS:
        raise ConfigError(f"usage: robot-rl dataset {{{'|'.join(SUBCOMMANDS)}}} DIR")
    sub, root = args[0], args[1]
    extra = args[2:]
    if extra:
        raise ConfigError(f"unexpected arguments {extra}")
    console = Console()
    if sub == "info":
        info = dataset_info(root)
        console.print_json(json.dumps(info, default=str))
        return 0
    warnings = validate_dataset(root)
    for w in warnings:
        console.print(f"[yellow]warning[/]: {w}")
    console.print(
        f"[green]ok[/]: {root} is a valid dataset"
        + (f" ({len(warnings)} warnings)" if warnings else "")
    )
    return 0
