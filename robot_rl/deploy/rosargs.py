"""ROS 2 node arguments and names without ROS: ``--ros-args``, parameter files, name resolution.

A node started by ``ros2 launch`` or ``robot-rl launch`` receives its name, namespace, parameters
and remappings as standard ROS 2 command-line arguments (``--ros-args -r __node:=arm -p rate:=50
--params-file arm.yaml``). :func:`parse_ros_args` turns them into :class:`NodeOptions`, which
resolves topic names the way rcl does (ROS 2 design article "Topic and Service name mapping to
DDS" and "Remapping Names": https://design.ros2.org/articles/static_remapping.html).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from robot_rl.core.errors import ConfigError

_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MISSING: Any = object()


def _check_tokens(name: str, tokens: list[str], what: str) -> None:
    for token in tokens:
        if not _TOKEN.fullmatch(token):
            raise ConfigError(
                f"invalid ROS {what} {name!r}: each '/'-separated part must be letters, digits "
                f"and '_' not starting with a digit (got {token!r})"
            )


def validate_node_name(name: str) -> str:
    """Return ``name`` if it is a valid ROS node name (one token), else raise ConfigError."""
    if not name or "/" in name:
        raise ConfigError(f"invalid ROS node name {name!r}: expected one token like 'arm_driver'")
    _check_tokens(name, [name], "node name")
    return name


def validate_namespace(ns: str) -> str:
    """Return ``ns`` if it is a valid absolute ROS namespace (``/`` or ``/a/b``), else raise."""
    if not ns.startswith("/"):
        raise ConfigError(f"invalid ROS namespace {ns!r}: must be absolute (start with '/')")
    if ns != "/":
        if ns.endswith("/") or "//" in ns:
            raise ConfigError(f"invalid ROS namespace {ns!r}: no '//' and no trailing '/'")
        _check_tokens(ns, ns[1:].split("/"), "namespace")
    return ns


def validate_topic(name: str) -> str:
    """Return ``name`` if it is a valid ROS topic name (absolute, relative or ``~``-private)."""
    body = name
    if body == "~":
        return name
    if body.startswith("~/"):
        body = body[2:]
    elif body.startswith("/"):
        body = body[1:]
    if not body or body.endswith("/") or "//" in body or "~" in body:
        raise ConfigError(
            f"invalid ROS name {name!r}: expected '/abs/name', 'rel/name' or '~/private', "
            "without '//' or a trailing '/'"
        )
    _check_tokens(name, body.split("/"), "name")
    return name


def join_namespace(base: str | None, ns: str | None) -> str | None:
    """``ns`` under ``base`` if ``ns`` is relative, ``ns`` if absolute (launch_ros rules)."""
    if not ns:
        return base
    if not base or ns.startswith("/"):
        return ns.rstrip("/") or "/"
    return (base.rstrip("/") + "/" + ns).rstrip("/") or "/"


def parse_param_value(text: str) -> Any:
    """A ``-p key:=value`` value, typed as ROS 2 does (YAML): ``1``, ``1.5``, ``true``, ``[1, 2]``.

    Anything that is not a YAML scalar or list stays the string it was.
    """
    if text == "":
        return ""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if value is None or isinstance(value, dict):
        return text
    return value


def format_param_value(value: Any) -> str:
    """Inverse of :func:`parse_param_value`: the text that reads back as ``value``."""
    text = yaml.safe_dump(value, default_flow_style=True, width=1 << 30).strip()
    return text[: -len("...")].rstrip() if text.endswith("...") else text


def _flatten(prefix: str, tree: Mapping[str, Any], out: dict[str, Any]) -> None:
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            _flatten(name + ".", value, out)
        else:
            out[name] = value


def _node_key_matches(key: str, node_fqn: str) -> bool:
    """Whether params-file key ``/ns/name``, ``name``, ``/**`` or ``/**/name`` names the node.

    ``*`` matches one name token and ``**`` any number, as in ROS 2 parameter files.
    """
    key = key if key.startswith("/") else "/" + key
    if "*" not in key:
        return key == node_fqn
    parts = []
    for token in key[1:].split("/"):
        if token == "**":
            parts.append(r"(?:/[^/]+)*")
        elif token == "*":
            parts.append(r"/[^/]+")
        else:
            parts.append("/" + re.escape(token))
    return re.fullmatch("".join(parts), node_fqn) is not None


def load_params_file(path: str | Path, node_fqn: str) -> dict[str, Any]:
    """Parameters a ROS 2 params file gives the node ``node_fqn`` (e.g. ``/robot/arm_driver``).

    Top-level keys are node names holding ``ros__parameters``; wildcard keys (``/**``) apply
    first, then the node's exact key, so an exact entry overrides a wildcard one. Nested
    mappings flatten to dotted names (``a: {b: 1}`` gives ``a.b``).
    """
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as e:
        raise ConfigError(f"cannot read parameter file {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"parameter file {path} is not valid YAML: {e}") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ConfigError(f"parameter file {path} must map node names to ros__parameters")
    matched = [k for k in doc if _node_key_matches(str(k), node_fqn)]
    matched.sort(key=lambda k: "*" not in str(k))  # wildcards first, the exact name wins
    params: dict[str, Any] = {}
    for key in matched:
        entry = doc[key]
        if not isinstance(entry, dict) or not isinstance(entry.get("ros__parameters"), dict):
            raise ConfigError(
                f"parameter file {path}: entry {key!r} must hold a 'ros__parameters' mapping"
            )
        _flatten("", entry["ros__parameters"], params)
    return params


@dataclass
class NodeOptions:
    """A node's identity and configuration as ROS 2 arguments give it.

    Attributes:
        name: node name (one token).
        namespace: absolute namespace, ``/`` for the root.
        params: parameter name (dotted for nested) -> typed value.
        remaps: resolved source name -> resolved target name; the first rule for a name wins,
            as in rcl.
        args: the command-line arguments that are not ROS arguments, in order.
        log_level: ``--log-level`` if given.
    """

    name: str
    namespace: str = "/"
    params: dict[str, Any] = field(default_factory=dict)
    remaps: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)
    log_level: str | None = None

    def __post_init__(self) -> None:
        validate_node_name(self.name)
        validate_namespace(self.namespace)

    @property
    def fqn(self) -> str:
        """Fully qualified node name, e.g. ``/robot/arm_driver``."""
        return join_namespace(self.namespace, self.name) or "/"

    def expand(self, topic: str) -> str:
        """``topic`` made absolute under this node's namespace (private ``~`` under its name)."""
        validate_topic(topic)
        if topic.startswith("/"):
            return topic
        if topic == "~":
            return self.fqn
        if topic.startswith("~/"):
            return self.fqn + topic[1:]
        return join_namespace(self.namespace, topic) or "/"

    def resolve(self, topic: str) -> str:
        """The fully qualified name ``topic`` has on the wire: expanded, then remapped."""
        expanded = self.expand(topic)
        return self.remaps.get(expanded, expanded)

    def param(self, key: str, default: Any = _MISSING) -> Any:
        """Parameter ``key``; ``default`` if unset, a ConfigError if unset without a default."""
        if key in self.params:
            return self.params[key]
        if default is _MISSING:
            raise ConfigError(f"node {self.fqn}: parameter {key!r} is not set")
        return default

    def param_float(self, key: str, default: Any = _MISSING) -> float:
        """Parameter ``key`` as a float (an integer is accepted)."""
        value = self.param(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"node {self.fqn}: parameter {key!r} must be a number, got {value!r}")
        return float(value)

    def param_int(self, key: str, default: Any = _MISSING) -> int:
        """Parameter ``key`` as an integer."""
        value = self.param(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(
                f"node {self.fqn}: parameter {key!r} must be an integer, got {value!r}"
            )
        return value

    def param_bool(self, key: str, default: Any = _MISSING) -> bool:
        """Parameter ``key`` as a bool (``true``/``false``)."""
        value = self.param(key, default)
        if not isinstance(value, bool):
            raise ConfigError(
                f"node {self.fqn}: parameter {key!r} must be true or false, got {value!r}"
            )
        return value

    def param_str(self, key: str, default: Any = _MISSING) -> str:
        """Parameter ``key`` as a string."""
        value = self.param(key, default)
        if not isinstance(value, str):
            raise ConfigError(f"node {self.fqn}: parameter {key!r} must be a string, got {value!r}")
        return value


def _split_rule(rule: str, flag: str) -> tuple[str | None, str, str]:
    """``[node:]from:=to`` -> (node or None, from, to)."""
    if ":=" not in rule:
        raise ConfigError(f"ROS argument {flag} {rule!r} must look like 'from:=to'")
    lhs, rhs = rule.split(":=", 1)
    node, _, lhs = lhs.rpartition(":") if ":" in lhs else (None, "", lhs)
    if not lhs or (flag not in ("-p", "--param") and not rhs):
        raise ConfigError(f"ROS argument {flag} {rule!r} must look like 'from:=to'")
    return node or None, lhs, rhs


_TAKES_VALUE = {"-r", "--remap", "-p", "--param", "--params-file", "--log-level"}
_FLAGS = {"--enable-rosout-logs", "--disable-rosout-logs", "--enable-stdout-logs"}
_FLAGS |= {"--disable-stdout-logs", "--enable-external-lib-logs", "--disable-external-lib-logs"}


def parse_ros_args(argv: list[str], default_name: str) -> NodeOptions:
    """Options from a node's command line; ROS arguments sit between ``--ros-args`` and ``--``.

    Supports ``-r/--remap [node:]from:=to`` (including ``__node`` and ``__ns``),
    ``-p/--param key:=value`` (YAML-typed) and ``--params-file FILE``; parameter sources apply
    in command-line order, later ones overriding earlier ones. Rules prefixed with another
    node's name are ignored, as rcl does.
    """
    rules: list[tuple[str, str]] = []  # (flag, value) in order
    rest: list[str] = []
    in_ros, i = False, 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--ros-args":
            in_ros = True
        elif not in_ros:
            rest.append(arg)
        elif arg == "--":
            in_ros = False
        elif arg in _TAKES_VALUE:
            if i >= len(argv):
                raise ConfigError(f"ROS argument {arg} needs a value")
            rules.append((arg, argv[i]))
            i += 1
        elif arg not in _FLAGS:
            raise ConfigError(f"unknown ROS argument {arg!r} after --ros-args")

    identity: dict[str, str] = {}  # __node / __ns: the first rule wins, as for every remap
    log_level = None
    for flag, value in rules:
        if flag in ("-r", "--remap"):
            node, lhs, rhs = _split_rule(value, flag)
            if lhs in ("__node", "__ns") and node in (None, default_name):
                identity.setdefault(lhs, rhs)
        elif flag == "--log-level":
            log_level = value
    namespace = identity.get("__ns", "/")
    options = NodeOptions(
        name=identity.get("__node", default_name),
        namespace=namespace if namespace.startswith("/") else "/" + namespace,
        args=rest,
        log_level=log_level,
    )

    for flag, value in rules:
        if flag in ("-r", "--remap"):
            node, lhs, rhs = _split_rule(value, flag)
            if lhs in ("__node", "__ns") or node not in (None, options.name):
                continue
            options.remaps.setdefault(options.expand(lhs), options.expand(rhs))
        elif flag in ("-p", "--param"):
            node, key, raw = _split_rule(value, flag)
            if node in (None, options.name):
                options.params[key] = parse_param_value(raw)
        elif flag == "--params-file":
            options.params.update(load_params_file(value, options.fqn))
    return options
