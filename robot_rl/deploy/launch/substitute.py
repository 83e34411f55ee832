"""Launch-file substitutions (``$(var x)``, ``$(env X default)``, ``$(find-pkg-share pkg)``, ...).

The grammar is the ROS 2 launch frontend's: ``$(name arg ...)``, arguments separated by spaces,
quoted with ``'`` or ``"`` when they hold spaces, and substitutions may nest
(``$(env ROBOT $(var robot))``). ``$(eval ...)`` runs Python in ROS 2 and is refused here.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from robot_rl.core.errors import ConfigError
from robot_rl.core.paths import asset_root

SUPPORTED = ("var", "env", "optenv", "find-pkg-share", "dirname", "filename")


def share_dir(pkg: str) -> Path:
    """``$(find-pkg-share pkg)``: the package's share directory.

    ``robot_rl`` is the asset root (the repository top in a checkout, ``<prefix>/share/robot_rl``
    in a wheel, see ``robot_rl.core.paths``); ``robot_rl_ros`` is ``ros2_ws/src/robot_rl_ros`` of
    a source checkout, else ``<sys.prefix>/share/robot_rl_ros``. Other packages are looked up in
    ``AMENT_PREFIX_PATH`` as ament does.
    """
    if pkg == "robot_rl":
        try:
            return asset_root()
        except FileNotFoundError as e:
            raise ConfigError(str(e)) from None
    candidates: list[Path] = []
    if pkg == "robot_rl_ros":
        with contextlib.suppress(FileNotFoundError):  # no checkout: look in the prefixes
            candidates.append(asset_root() / "ros2_ws" / "src" / pkg)
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if prefix:
            candidates.append(Path(prefix) / "share" / pkg)
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    if pkg == "robot_rl_ros":
        return Path(sys.prefix) / "share" / pkg
    raise ConfigError(
        f"$(find-pkg-share {pkg}): unknown package {pkg!r} (known without ROS: robot_rl, "
        "robot_rl_ros; others are searched in AMENT_PREFIX_PATH)"
    )


class _Reader:
    """Recursive-descent reader of one attribute value."""

    def __init__(self, text: str, configs: Mapping[str, str], file: Path) -> None:
        self.text, self.configs, self.file = text, configs, file

    def fail(self, msg: str) -> ConfigError:
        return ConfigError(f"{self.file}: {msg} in {self.text!r}")

    def read(self) -> str:
        out, i = [], 0
        while (j := self.text.find("$(", i)) >= 0:
            out.append(self.text[i:j])
            value, i = self.substitution(j + 2)
            out.append(value)
        out.append(self.text[i:])
        return "".join(out)

    def substitution(self, i: int) -> tuple[str, int]:
        """Evaluate the substitution whose name starts at ``i``; return (value, index after)."""
        words: list[str] = []
        current: list[str] | None = None
        text = self.text
        while True:
            if i >= len(text):
                raise self.fail("unterminated '$('")
            c = text[i]
            if c == ")":
                break
            if c.isspace():
                if current is not None:
                    words.append("".join(current))
                    current = None
                i += 1
            elif text.startswith("$(", i):
                value, i = self.substitution(i + 2)
                current = (current or []) + [value]
            elif c in "'\"":
                end = text.find(c, i + 1)
                if end < 0:
                    raise self.fail(f"unterminated quote {c}")
                inner = _Reader(text[i + 1 : end], self.configs, self.file).read()
                current = (current or []) + [inner]
                i = end + 1
            else:
                current = (current or []) + [c]
                i += 1
        if current is not None:
            words.append("".join(current))
        if not words:
            raise self.fail("empty substitution '$()'")
        return self.evaluate(words[0], words[1:]), i + 1

    def evaluate(self, name: str, args: list[str]) -> str:
        def arity(lo: int, hi: int) -> None:
            if not lo <= len(args) <= hi:
                want = str(lo) if lo == hi else f"{lo} to {hi}"
                raise self.fail(f"$({name}) takes {want} argument(s), got {len(args)}")

        if name == "var":
            arity(1, 1)
            if args[0] not in self.configs:
                raise self.fail(
                    f"launch argument {args[0]!r} is not set (declare it with "
                    f'<arg name="{args[0]}" default=.../> or <let/>, or pass {args[0]}:=VALUE)'
                )
            return self.configs[args[0]]
        if name in ("env", "optenv"):
            arity(1, 2)
            value = os.environ.get(args[0])
            if value is not None:
                return value
            if len(args) == 2 or name == "optenv":
                return args[1] if len(args) == 2 else ""
            raise self.fail(f"environment variable {args[0]} is not set and has no default")
        if name == "find-pkg-share":
            arity(1, 1)
            return str(share_dir(args[0]))
        if name == "dirname":
            arity(0, 0)
            return str(self.file.parent)
        if name == "filename":
            arity(0, 0)
            return str(self.file)
        if name == "eval":
            raise self.fail(
                "$(eval ...) runs Python and is not supported by robot-rl launch; "
                "use <let>, $(var) and if/unless instead"
            )
        raise self.fail(f"unknown substitution $({name} ...); supported: {', '.join(SUPPORTED)}")


def substitute(text: str, configs: Mapping[str, str], file: Path) -> str:
    """``text`` with every ``$(...)`` replaced.

    Args:
        text: an attribute value from a launch file.
        configs: launch configurations (declared args, lets, command-line overrides).
        file: the launch file the text comes from (absolute; for ``$(dirname)`` and errors).
    """
    return _Reader(text, configs, file).read()
