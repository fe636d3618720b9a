"""YAML with a line number for every key and list item, and pydantic errors mapped to them.

Shared by the voice-script loader and :mod:`bot.policy` (which imports it from
here, so the script loader never depends on the policy module).

* ``text_keys=True`` (scripts): mapping keys keep the text the author wrote:
  ``1: affirm`` gives the key ``"1"`` and ``05`` stays ``"05"`` (not the integer 5),
  and ``on:`` stays ``"on"`` (YAML 1.1 would read it as ``True``);
  ``text_keys=False`` (the policy): keys are read as YAML values and must be strings;
* duplicate keys are errors, not "last one wins".
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml
from pydantic import ValidationError

__all__ = ["Lines", "dotted", "pydantic_problems", "read_yaml"]

PathKey = tuple[str | int, ...]


class Lines:
    """YAML line (1-based) of every key and list item, by its path in the document."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.lines: dict[PathKey, int] = {(): 1}

    def at(self, path: Iterable[str | int]) -> int:
        key = tuple(path)
        while key not in self.lines:
            key = key[:-1]
        return self.lines[key]

    def where(self, path: Iterable[str | int]) -> str:
        return f"{self.file}:{self.at(path)}"


def read_yaml(text: str, lines: Lines, problems: list[str], *, what: str = "file", text_keys: bool = True) -> Any:
    """Parse ``text``; syntax errors, duplicate and non-scalar keys go to ``problems``."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        problems.append(f"{lines.file}:{line}: YAML syntax error: {exc.problem or exc}")
        return None
    except yaml.YAMLError as exc:  # pragma: no cover - marks are always present in practice
        problems.append(f"{lines.file}:1: YAML error: {exc}")
        return None
    if node is None:
        problems.append(f"{lines.file}:1: the {what} is empty")
        return None
    return _construct(node, (), lines, problems, yaml.SafeLoader(""), text_keys)


def _key(key_node: yaml.Node, ctor: yaml.SafeLoader, text_keys: bool) -> str | None:
    """The key of a mapping entry, or None when it is not one a file may use."""
    if not isinstance(key_node, yaml.ScalarNode):
        return None
    if text_keys:
        return None if key_node.tag == "tag:yaml.org,2002:merge" else str(key_node.value)
    key = ctor.construct_object(key_node, deep=True)
    return key if isinstance(key, str) else None


def _construct(node: yaml.Node, path: PathKey, lines: Lines, problems: list[str], ctor: yaml.SafeLoader,
               text_keys: bool) -> Any:
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            key = _key(key_node, ctor, text_keys)
            if key is None:
                problems.append(f"{lines.file}:{line}: keys must be plain words"
                                + (" or numbers" if text_keys else ""))
                continue
            if key in out:
                problems.append(f"{lines.file}:{line}: duplicate key '{key}' (first at line {lines.at((*path, key))})")
                continue
            lines.lines[(*path, key)] = line
            out[key] = _construct(value_node, (*path, key), lines, problems, ctor, text_keys)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item in enumerate(node.value):
            lines.lines[(*path, index)] = item.start_mark.line + 1
            items.append(_construct(item, (*path, index), lines, problems, ctor, text_keys))
        return items
    try:
        return ctor.construct_object(node, deep=True)
    except yaml.YAMLError as exc:
        problems.append(f"{lines.file}:{node.start_mark.line + 1}: {exc}")
        return None


def pydantic_problems(exc: ValidationError, lines: Lines, *, root: str = "script") -> list[str]:
    """``FILE:LINE: dotted.path: message`` for every error of a pydantic validation."""
    out = []
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if isinstance(p, (str, int)))
        # pydantic adds a "[key]" part for a bad dict key, and names of validators and
        # union branches; keep the path to what the author wrote.
        loc = tuple(p for p in loc if not _synthetic(p))
        where = lines.where(loc[:-1] if err["type"] == "missing" else loc)
        name = dotted(loc, root=root)
        if err["type"] == "missing":
            message = f"{name}: missing key"
        elif err["type"] == "extra_forbidden":
            message = f"{name}: unknown key"
        else:
            message = f"{name}: {err['msg']}"
        out.append(f"{where}: {message}")
    return out


def _synthetic(part: str | int) -> bool:
    return isinstance(part, str) and (part == "[key]" or part.startswith(("function-", "literal[")))


def dotted(loc: Iterable[str | int], *, root: str = "script") -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or root
