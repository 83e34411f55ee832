"""The XML and YAML launch frontends read into one tree of :class:`Entity`.

XML: ``<launch><node pkg=".." exec=".."><param name=".." value=".."/></node></launch>``; every
element is an entity, its attributes the entity's attributes, its child elements the children.

YAML (``launch_yaml``): ``launch: [ {node: {pkg: .., exec: .., param: [{name: .., value: ..}]}} ]``;
each list item is a one-key mapping (the tag). A key holding a list of mappings (``param``,
``remap``, an include's ``arg``) becomes children with that tag; a group's actions sit under
``children:`` (or the group is the list itself); ``include: FILE`` is short for
``include: {file: FILE}``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from robot_rl.core.errors import ConfigError


@dataclass
class Entity:
    """One launch action or sub-element, from either frontend.

    Attributes:
        tag: element name (``node``, ``param``, ...).
        attrs: attribute name -> value (always ``str`` from XML; any YAML scalar or list).
        children: nested entities in file order.
        file: absolute path of the launch file, for ``$(dirname)`` and error messages.
    """

    tag: str
    attrs: dict[str, Any]
    children: list[Entity]
    file: Path
    _read: set[str] = field(default_factory=set, repr=False)

    def take(self, key: str, *, required: bool = False) -> Any:
        """The attribute ``key`` (None if absent), marking it as understood."""
        self._read.add(key)
        if key not in self.attrs:
            if required:
                raise ConfigError(f"<{self.tag}> in {self.file} needs a {key!r} attribute")
            return None
        return self.attrs[key]

    def done(self) -> None:
        """Raise if the file gave attributes this action does not understand."""
        unknown = sorted(set(self.attrs) - self._read)
        if unknown:
            raise ConfigError(
                f"<{self.tag}> in {self.file} has unsupported attribute(s) {', '.join(unknown)}"
            )


def _from_xml(element: ET.Element, file: Path) -> Entity:
    children = [_from_xml(child, file) for child in element]
    return Entity(str(element.tag), dict(element.attrib), children, file)


def _yaml_item(item: Any, file: Path) -> Entity:
    if not isinstance(item, dict) or len(item) != 1:
        raise ConfigError(
            f"{file}: each launch entry must be a mapping with one key (the action), got {item!r}"
        )
    ((tag, body),) = item.items()
    return _from_yaml(str(tag), body, file)


def _from_yaml(tag: str, body: Any, file: Path) -> Entity:
    if body is None:
        return Entity(tag, {}, [], file)
    if isinstance(body, list):
        return Entity(tag, {}, [_yaml_item(x, file) for x in body], file)
    if not isinstance(body, dict):
        if tag == "include":
            return Entity(tag, {"file": body}, [], file)
        raise ConfigError(f"{file}: '{tag}' must hold a mapping of attributes, got {body!r}")
    attrs: dict[str, Any] = {}
    children: list[Entity] = []
    for key, value in body.items():
        key = str(key)
        if key == "children":
            if not isinstance(value, list):
                raise ConfigError(f"{file}: 'children' of '{tag}' must be a list of actions")
            children.extend(_yaml_item(x, file) for x in value)
        elif isinstance(value, list) and value and all(isinstance(x, dict) for x in value):
            children.extend(_from_yaml(key, x, file) for x in value)
        else:
            attrs[key] = value
    return Entity(tag, attrs, children, file)


def load_entities(path: Path) -> Entity:
    """The root ``launch`` entity of an XML (``*.xml``) or YAML (``*.yaml``/``*.yml``) file."""
    path = Path(path).absolute()
    suffix = path.suffix.lower()
    if suffix == ".py":
        raise ConfigError(
            f"{path}: Python launch files are not supported by robot-rl launch; use XML or YAML"
        )
    if suffix not in (".xml", ".yaml", ".yml"):
        raise ConfigError(f"{path}: launch files must end in .xml, .yaml or .yml")
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"cannot read launch file {path}: {e.strerror}") from None
    if suffix == ".xml":
        try:
            root = ET.fromstring(text)
        except ET.ParseError as e:
            raise ConfigError(f"{path} is not valid XML: {e}") from None
        if root.tag != "launch":
            raise ConfigError(f"{path}: the root element must be <launch>, got <{root.tag}>")
        entity = _from_xml(root, path)
        entity.take("version")
        return entity
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {e}") from None
    if not isinstance(doc, dict) or set(doc) != {"launch"} or not isinstance(doc["launch"], list):
        raise ConfigError(f"{path}: a YAML launch file must be 'launch:' holding a list of actions")
    return _from_yaml("launch", doc["launch"], path)
