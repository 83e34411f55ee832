"""Sim-to-sim sweeps: one task config per domain-randomization setting, so that an evaluation
(``robot-rl eval checkpoint=DIR sweep=randomization``) shows which term a policy is sensitive to.

A term is a field of the task config's ``randomization`` block (:class:`RandomizationConfig`)
or, when the task has one, of its ``perturbation`` block; each block's dataclass defaults are
its neutral values (``[1, 1]`` multipliers, zero noise, no delay, no pushes).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from robot_rl.envs.config import TaskConfig

BLOCKS = ("randomization", "perturbation")
"""Task config blocks whose fields are randomization terms."""

SCHEDULE = "schedule"
"""Dataclass field metadata key of a block field that only says when another term acts (the
humanoid's time between pushes, which matters only with pushes): such a field is kept as
configured in every setting, never a setting of its own."""


def randomization_terms(task: TaskConfig) -> dict[str, tuple[str, str]]:
    """Setting name ⇒ ``(block, field)`` of every term ``task`` configures away from its neutral
    value, in field order (``randomization`` first); the name is the field's, or
    ``<block>.<field>`` should two blocks share a field name."""
    terms: dict[str, tuple[str, str]] = {}
    for block, values in _blocks(task).items():
        neutral = _neutral(values)
        for f in dataclasses.fields(values):
            if _plain(getattr(values, f.name)) == _plain(getattr(neutral, f.name)):
                continue
            name = f.name if f.name not in terms else f"{block}.{f.name}"
            terms[name] = (block, f.name)
    return terms


def randomization_settings(task: TaskConfig) -> dict[str, TaskConfig]:
    """``nominal`` (every term neutral), then each configured term alone at its configured
    value, then ``all`` (``task`` itself). Everything but the terms stays as ``task`` has it;
    ``task`` is not modified."""
    blocks = _blocks(task)
    neutral = {block: _neutral(values) for block, values in blocks.items()}
    settings = {"nominal": dataclasses.replace(task, **neutral)}
    for name, (block, field) in randomization_terms(task).items():
        alone = dataclasses.replace(neutral[block], **{field: getattr(blocks[block], field)})
        settings[name] = dataclasses.replace(task, **{**neutral, block: alone})
    settings["all"] = task
    return settings


def term_values(task: TaskConfig) -> dict[str, Any]:
    """Setting name ⇒ the configured value of its term (for reports)."""
    return {
        name: _plain(getattr(getattr(task, block), field))
        for name, (block, field) in randomization_terms(task).items()
    }


SWEEPS: dict[str, Callable[[TaskConfig], dict[str, TaskConfig]]] = {
    "randomization": randomization_settings,
}
"""``sweep=<name>`` of ``robot-rl eval``: the named task configs to evaluate one checkpoint in."""


def _blocks(task: TaskConfig) -> dict[str, Any]:
    return {b: getattr(task, b) for b in BLOCKS if dataclasses.is_dataclass(getattr(task, b, None))}


def _neutral(values: Any) -> Any:
    """The block's defaults, its schedule fields as configured."""
    kept = {
        f.name: getattr(values, f.name)
        for f in dataclasses.fields(values)
        if f.metadata.get(SCHEDULE)
    }
    return dataclasses.replace(type(values)(), **kept)


def _plain(value: Any) -> Any:
    """Configs hold ranges as lists (from YAML) or tuples (dataclass defaults): compare alike."""
    return tuple(value) if isinstance(value, list | tuple) else value
