"""Config composition for every command: ``configs/<command>.yaml`` + Hydra overrides (Compose
API), validated into typed dataclasses. Any problem becomes a one-line :class:`ConfigError`."""

from __future__ import annotations

from typing import Any

from hydra import compose, initialize_config_dir
from hydra.errors import HydraException, OverrideParseException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from robot_rl.core import ConfigError, asset_root


def compose_config(command: str, overrides: list[str]) -> DictConfig:
    """Compose ``configs/<command>.yaml`` with ``key=value`` overrides."""
    config_dir = asset_root() / "configs"
    if not (config_dir / f"{command}.yaml").is_file():
        raise ConfigError(f"no config for command {command!r} in {config_dir}")
    for o in overrides:
        if "=" not in o:
            raise ConfigError(f"argument {o!r} is not a key=value override")
        key, value = o.split("=", 1)
        if key in GROUPS and (not value or value == "null" or value.startswith("[")):
            raise ConfigError(f"{key}= takes one name, got {value!r}")
    base: DictConfig | None = None
    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base=None):
            try:
                base = compose(config_name=command, overrides=_group_choices(overrides))
                overrides = [_allow_group_field(o, base) for o in overrides]
                return compose(config_name=command, overrides=overrides)
            except (HydraException, OmegaConfBaseException) as e:
                msg = _one_line(e)
                if msg.startswith("Could not override") and base is not None:
                    keys = sorted(k for k in base if k not in GROUPS)
                    groups = [f"{g}.<field>" for g in GROUPS if g in base]
                    raise ConfigError(
                        f"{msg} It is not a key of {command}; keys are {keys}, plus {groups}"
                    ) from None
                if isinstance(e, OverrideParseException):
                    msg = f"cannot parse overrides {overrides}: {msg}"
                raise ConfigError(msg) from None
    except (HydraException, OmegaConfBaseException) as e:
        raise ConfigError(_one_line(e)) from None


GROUPS = ("task", "policy", "algo", "safety")


def _group_choices(overrides: list[str]) -> list[str]:
    return [o for o in overrides if o.split("=", 1)[0] in GROUPS]


def _allow_group_field(override: str, base: DictConfig) -> str:
    """A group file (task, policy, algo) sets only what differs from its typed defaults, so
    ``task.image.height`` may be absent from the composed config; add it (Hydra's ``+``) and let
    the typed config reject keys that really do not exist, naming them."""
    key = override.split("=", 1)[0]
    if key.startswith(("+", "~")) or "." not in key:
        return override
    group = key.split(".", 1)[0]
    # Likewise a field (at any depth) of an open mapping such as the pipeline's residual.algo: {}
    # or train_ppo's train_task: {}: the nearest existing ancestor of the key is a mapping.
    parent, node = key.rsplit(".", 1)[0], _MISSING
    while node is _MISSING:
        node = OmegaConf.select(base, parent, default=_MISSING)
        if node is _MISSING and "." not in parent:
            break
        parent = parent.rsplit(".", 1)[0]
    open_map = isinstance(node, DictConfig)
    if (group in GROUPS or open_map) and OmegaConf.select(base, key, default=_MISSING) is _MISSING:
        return "+" + override
    return override


_MISSING = object()


def _one_line(e: Exception) -> str:
    """Hydra spreads its messages over lines (option lists on tab-indented lines): fold them."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    out: list[str] = []
    options: list[str] = []
    for ln in lines:
        if ln.startswith(("Config search path", "provider=", "See https://", "To append")):
            continue
        if str(e).find("\t" + ln) >= 0 and out and out[-1].startswith("Available options"):
            options.append(ln)
            continue
        out.append(ln)
    msg = " ".join(out)
    if options:
        msg += " " + ", ".join(options)
    return msg or type(e).__name__


def to_container(cfg: DictConfig) -> dict[str, Any]:
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
