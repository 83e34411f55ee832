"""Launch XML/YAML -> the nodes to start, with ROS 2 launch semantics.

Supported actions (each takes ``if``/``unless``):
``<arg name default description>`` (with ``<choice value/>`` children or YAML ``choices``),
``<let name value>``, ``<group scoped>``, ``<push_ros_namespace namespace>`` (also
``push-ros-namespace``), ``<node pkg exec name namespace output>`` with ``<param name value>``
(nested ``<param name>`` gives dotted names), ``<param from>``, ``<remap from to>``, and
``<include file>`` with ``<arg name value>``. As in ``ros2 launch``: an ``<arg>`` already set
(command line, include) keeps its value; a ``<group>`` is scoped unless ``scoped="false"``; an
``<include>`` is not scoped (its args and lets stay visible afterwards); a relative ``from`` or
``file`` path is relative to the working directory (write ``$(dirname)/x.yaml``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robot_rl.core.errors import ConfigError
from robot_rl.deploy.launch.entity import Entity, load_entities
from robot_rl.deploy.launch.substitute import substitute
from robot_rl.deploy.rosargs import (
    format_param_value,
    join_namespace,
    parse_param_value,
    validate_namespace,
    validate_node_name,
)

_NS = "ros_namespace"  # the launch configuration launch_ros keeps the pushed namespace in
_MAX_INCLUDE_DEPTH = 32


@dataclass(frozen=True)
class NodeSpec:
    """One node a launch file starts.

    Attributes:
        pkg: ROS package (``robot_rl_ros``).
        exec: executable name inside the package.
        name: node name, or None for the executable's own default.
        namespace: absolute namespace (``/`` for the root).
        params: inline parameters (dotted names) -> typed values; they override ``param_files``.
        param_files: ROS 2 parameter files, in file order.
        remaps: ``(from, to)`` rules, unresolved, in file order.
        source: the launch file that declared the node.
    """

    pkg: str
    exec: str
    name: str | None = None
    namespace: str = "/"
    params: dict[str, Any] = field(default_factory=dict)
    param_files: list[Path] = field(default_factory=list)
    remaps: list[tuple[str, str]] = field(default_factory=list)
    source: Path | None = field(default=None, compare=False)

    def ros_args(self) -> list[str]:
        """Standard ROS 2 node arguments: ``--ros-args -r __node:=.. -r __ns:=.. ...``."""
        args = ["--ros-args"]
        if self.name:
            args += ["-r", f"__node:={self.name}"]
        args += ["-r", f"__ns:={self.namespace}"]
        for path in self.param_files:
            args += ["--params-file", str(path)]
        for key, value in self.params.items():
            args += ["-p", f"{key}:={format_param_value(value)}"]
        for src, dst in self.remaps:
            args += ["-r", f"{src}:={dst}"]
        return args


def _text(e: Entity, key: str, configs: Mapping[str, str], *, required: bool = False) -> str | None:
    """Attribute ``key`` of ``e`` as a string with substitutions done."""
    value = e.take(key, required=required)
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if not isinstance(value, str):
        raise ConfigError(f"<{e.tag}> in {e.file}: {key!r} must be a string, got {value!r}")
    return substitute(value, configs, e.file)


def _required(e: Entity, key: str, configs: Mapping[str, str]) -> str:
    """Attribute ``key`` of ``e``, which must be present, with substitutions done."""
    value = _text(e, key, configs, required=True)
    assert value is not None  # take(required=True) raised otherwise
    return value


def _truth(text: str, e: Entity, key: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise ConfigError(
        f"<{e.tag}> in {e.file}: {key}={text!r} must be true, false, 1 or 0 after substitution"
    )


def _enabled(e: Entity, configs: Mapping[str, str]) -> bool:
    if_text, unless_text = _text(e, "if", configs), _text(e, "unless", configs)
    if if_text is not None and unless_text is not None:
        raise ConfigError(f"<{e.tag}> in {e.file} has both 'if' and 'unless'; use one")
    if if_text is not None:
        return _truth(if_text, e, "if")
    if unless_text is not None:
        return not _truth(unless_text, e, "unless")
    return True


def _namespace(configs: Mapping[str, str], ns: str | None) -> str:
    """``ns`` under the pushed namespace (unless absolute), made absolute and validated."""
    joined = join_namespace(configs.get(_NS), ns) or "/"
    return validate_namespace(joined if joined.startswith("/") else "/" + joined)


def _path(text: str) -> Path:
    return Path(text) if Path(text).is_absolute() else Path.cwd() / text


def _children(e: Entity, allowed: tuple[str, ...]) -> list[Entity]:
    for child in e.children:
        if child.tag not in allowed:
            expected = ", ".join(f"<{t}>" for t in allowed) or "none"
            raise ConfigError(
                f"<{e.tag}> in {e.file}: unknown child <{child.tag}> (expected: {expected})"
            )
    return e.children


class _Interpreter:
    def __init__(self) -> None:
        self.nodes: list[NodeSpec] = []
        self.depth = 0

    def run_file(self, path: Path, configs: dict[str, str]) -> None:
        root = load_entities(path)
        root.done()
        self.run_all(root.children, configs)

    def run_all(self, entities: list[Entity], configs: dict[str, str]) -> None:
        for e in entities:
            handler = _ACTIONS.get(e.tag)
            if handler is None:
                raise ConfigError(
                    f"unknown launch tag <{e.tag}> in {e.file}; robot-rl launch supports "
                    + ", ".join(f"<{t}>" for t in sorted(set(_ACTIONS)))
                )
            if _enabled(e, configs):
                handler(self, e, configs)

    def arg(self, e: Entity, configs: dict[str, str]) -> None:
        name = _required(e, "name", configs)
        default = _text(e, "default", configs)
        e.take("description")
        choices = e.take("choices")
        if choices is not None and not isinstance(choices, list):
            raise ConfigError(f"<arg {name}> in {e.file}: 'choices' must be a list")
        choices = [str(c) for c in choices or []]
        for choice in _children(e, ("choice",)):
            choices.append(_required(choice, "value", configs))
            choice.done()
        e.done()
        if name not in configs:
            if default is None:
                raise ConfigError(
                    f"launch argument {name!r} of {e.file} is required: pass {name}:=VALUE"
                )
            configs[name] = default
        if choices and configs[name] not in choices:
            raise ConfigError(
                f"launch argument {name}={configs[name]!r} of {e.file} must be one of {choices}"
            )

    def let(self, e: Entity, configs: dict[str, str]) -> None:
        name = _required(e, "name", configs)
        value = _required(e, "value", configs)
        e.done()
        configs[name] = value

    def group(self, e: Entity, configs: dict[str, str]) -> None:
        scoped = _text(e, "scoped", configs)
        e.done()
        if scoped is None or _truth(scoped, e, "scoped"):
            self.run_all(e.children, dict(configs))
        else:
            self.run_all(e.children, configs)

    def push_ros_namespace(self, e: Entity, configs: dict[str, str]) -> None:
        pushed = _required(e, "namespace", configs)
        e.done()
        configs[_NS] = _namespace(configs, pushed)

    def include(self, e: Entity, configs: dict[str, str]) -> None:
        path = _path(_required(e, "file", configs))
        for arg in _children(e, ("arg", "let")):
            name = _required(arg, "name", configs)
            configs[name] = _required(arg, "value", configs)
            arg.done()
        e.done()
        if not path.is_file():
            raise ConfigError(f"<include> in {e.file}: {path} does not exist")
        if self.depth >= _MAX_INCLUDE_DEPTH:
            raise ConfigError(f"<include> of {path} in {e.file} nests too deep (an include cycle?)")
        self.depth += 1
        try:
            self.run_file(path, configs)
        finally:
            self.depth -= 1

    def node(self, e: Entity, configs: dict[str, str]) -> None:
        pkg = _required(e, "pkg", configs)
        executable = _required(e, "exec", configs)
        name = _text(e, "name", configs)
        if name is not None:
            validate_node_name(name)
        namespace = _namespace(configs, _text(e, "namespace", configs))
        e.take("output")  # stdout and stderr are always shown, prefixed with the node's name
        e.done()
        params: dict[str, Any] = {}
        files: list[Path] = []
        remaps: list[tuple[str, str]] = []
        for child in _children(e, ("param", "remap")):
            if child.tag == "remap":
                src = _required(child, "from", configs)
                remaps.append((src, _required(child, "to", configs)))
            elif "from" in child.attrs:
                path = _path(_required(child, "from", configs))
                if not path.is_file():
                    raise ConfigError(f"<param from> in {e.file}: {path} does not exist")
                files.append(path)
            else:
                self.param(child, "", configs, params)
            child.done()
        self.nodes.append(
            NodeSpec(pkg, executable, name, namespace, params, files, remaps, source=e.file)
        )

    def param(self, e: Entity, prefix: str, configs: dict[str, str], out: dict[str, Any]) -> None:
        key = prefix + _required(e, "name", configs)
        nested = _children(e, ("param",))
        raw = e.take("value")
        if (raw is None) == (not nested):
            raise ConfigError(
                f"<param name={key!r}> in {e.file} needs either a value or nested <param>s"
            )
        for child in nested:
            self.param(child, key + ".", configs, out)
            child.done()
        if raw is None:
            return
        if isinstance(raw, str):
            out[key] = parse_param_value(substitute(raw, configs, e.file))
        else:
            out[key] = raw  # a YAML launch file gives typed values


_ACTIONS = {
    "arg": _Interpreter.arg,
    "let": _Interpreter.let,
    "group": _Interpreter.group,
    "push_ros_namespace": _Interpreter.push_ros_namespace,
    "push-ros-namespace": _Interpreter.push_ros_namespace,
    "include": _Interpreter.include,
    "node": _Interpreter.node,
}


def parse_launch(path: str | Path, overrides: Mapping[str, str] | None = None) -> list[NodeSpec]:
    """The nodes ``path`` starts, given command-line ``name:=value`` launch arguments.

    Raises ConfigError (one line, naming the file) for an unknown tag or attribute, a missing
    required argument, an unknown substitution or a missing file.
    """
    interpreter = _Interpreter()
    interpreter.run_file(Path(path), dict(overrides or {}))
    return interpreter.nodes
