"""The config reference: every key a config may hold, read from ``config.schema.json``.

The schema is the single definition of a config (:mod:`memristor_mat.config`); this module walks
it and writes one Markdown table row per key: its path (``<task>``, ``<method>``, ``<device>``
and ``<name>`` standing for names the user picks), what it takes, its default and its
description. README's "Config reference" section is this table, between two marker comments; a
test keeps them equal, and ``python -m memristor_mat.config_reference README.md`` rewrites it
after a schema change. Torch-free.
"""

from __future__ import annotations

import json
import sys
from importlib import resources
from pathlib import Path
from typing import Any, Iterator

__all__ = ["BEGIN", "END", "reference_markdown", "reference_rows", "replace_reference"]

BEGIN = "<!-- config reference: generated from config.schema.json by memristor_mat.config_reference -->"
END = "<!-- end of config reference -->"

# the placeholder of a mapping's user-chosen names, by the mapping's key
_NAMES = {"tasks": "<task>", "methods": "<method>", "devices": "<device>", "comparisons": "<name>"}


def _registry_names() -> dict[str, list[str]]:
    """The names a key takes from a registry, by key path: listed from the registry itself."""
    from .datasets import DATASETS
    from .methods import METHODS
    from .models import ARCHITECTURES
    from .noise_registry import NOISE_MODELS

    weights = [name for name, entry in NOISE_MODELS.items()
               if entry.kind == "weights" and [c.name for c in entry.conditions] == ["sigma"]]
    references = list(NOISE_MODELS["gaussian"].options["properties"]["reference"]["enum"])
    return {
        "noise.options.reference": references,
        "tasks.<task>.noise.options.reference": references,
        "tasks.<task>.dataset.name": list(DATASETS),
        "tasks.<task>.model.arch": list(ARCHITECTURES),
        "tasks.<task>.methods": list(METHODS),
        "tasks.<task>.evaluation.devices.<device>.model": list(NOISE_MODELS),
        "noise.model": weights,
        "tasks.<task>.noise.model": weights,
    }


def _schema() -> dict:
    return json.loads((resources.files("memristor_mat") / "config.schema.json").read_text(encoding="utf-8"))


class _Walker:
    def __init__(self, schema: dict) -> None:
        self.schema = schema
        self.names = _registry_names()
        self.expanded: dict[str, str] = {}  # an object definition -> the path it was first listed at

    def resolve(self, node: dict) -> tuple[dict, str | None]:
        """``node`` with its ``$ref`` (or a one-element ``allOf`` of one) merged in, and the
        definition's name."""
        ref = node.get("$ref")
        if ref is None and len(node.get("allOf", [])) == 1 and "$ref" in node["allOf"][0]:
            ref = node["allOf"][0]["$ref"]
        if ref is None:
            return node, None
        name = ref.rsplit("/", 1)[-1]
        target, _ = self.resolve(self.schema["$defs"][name])
        merged = {**target, **{k: v for k, v in node.items() if k not in ("$ref", "allOf")}}
        return merged, name

    def kind(self, node: dict) -> str:
        node, _ = self.resolve(node)
        if "enum" in node:
            return " / ".join("null" if v is None else f"`{v}`" for v in node["enum"])
        if "oneOf" in node:
            return " or ".join(self.kind(alternative) for alternative in node["oneOf"])
        kind = node.get("type", "any")
        if kind == "array":
            return f"list of {self.kind(node.get('items', {}))}"
        if kind == "object":
            return "mapping"
        if kind in ("integer", "number"):
            bounds = [f"{symbol} {node[key]:g}" for key, symbol in
                      (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="), ("exclusiveMaximum", "<"))
                      if key in node and not (key == "maximum" and node[key] >= 2**63 - 1)]
            return kind + (f" ({', '.join(bounds)})" if bounds else "")
        return kind

    def rows(self, node: dict, path: str) -> Iterator[tuple[str, str, str, str]]:
        """Rows of the keys below ``node`` (an object schema) at ``path``."""
        node, _ = self.resolve(node)
        for key, child in node.get("properties", {}).items():
            yield from self.key_rows(child, f"{path}.{key}" if path else key, key)
        names = node.get("additionalProperties")
        if isinstance(names, dict) and path:
            leaf = path.rsplit(".", 1)[-1]
            yield from self.entries(names, f"{path}.{_NAMES.get(leaf, '<name>')}")

    def entries(self, node: dict, path: str) -> Iterator[tuple[str, str, str, str]]:
        resolved, definition = self.resolve(node)
        if definition is not None and definition in self.expanded:
            return
        if definition is not None:
            self.expanded[definition] = path
        yield from self.rows(resolved, path)

    def key_rows(self, node: dict, path: str, key: str) -> Iterator[tuple[str, str, str, str]]:
        resolved, definition = self.resolve(node)
        description = resolved.get("description", "")
        if path in self.names:
            description += f" (one of: {', '.join(f'`{name}`' for name in self.names[path])})"
        default = json.dumps(resolved["default"]) if "default" in resolved else ""
        if definition is not None and definition in self.expanded and _is_object(resolved):
            seen = self.expanded[definition]
            described = f"as `{seen}`" + (f"; {description}" if description else "")
            yield path, self.kind(resolved), default, described
            return
        yield path, self.kind(resolved), default, description
        if definition is not None and _is_object(resolved):
            self.expanded[definition] = path
        for alternative in resolved.get("oneOf", []):  # e.g. null or a mapping of keys
            if "properties" in alternative:
                yield from self.rows(alternative, path)
        if "properties" in resolved or isinstance(resolved.get("additionalProperties"), dict):
            yield from self.rows(resolved, path)
        items = resolved.get("items")
        if isinstance(items, dict) and "properties" in items:  # a list of mappings: their keys
            yield from self.rows(items, f"{path}[]")


def _is_object(node: dict) -> bool:
    return "properties" in node or isinstance(node.get("additionalProperties"), dict) or any(
        "properties" in alternative for alternative in node.get("oneOf", []))


def reference_rows(schema: dict | None = None) -> list[tuple[str, str, str, str]]:
    """``(key path, what it takes, default, description)`` for every key of the config schema,
    in the schema's order; a definition used twice is listed once and referred to after."""
    return list(_Walker(schema or _schema()).rows(schema or _schema(), ""))


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def reference_markdown(schema: dict | None = None) -> str:
    """The reference as a Markdown table (without the markers)."""
    lines = ["| key | takes | default | what it is |", "|---|---|---|---|"]
    for path, kind, default, description in reference_rows(schema):
        shown = f"`{_cell(default)}`" if default else ""
        lines.append(f"| `{path}` | {_cell(kind)} | {shown} | {_cell(description)} |")
    return "\n".join(lines) + "\n"


def replace_reference(text: str, schema: dict | None = None) -> str:
    """``text`` (README) with the table between :data:`BEGIN` and :data:`END` regenerated."""
    if BEGIN not in text or END not in text:
        raise ValueError(f"the text has no config reference block ({BEGIN!r} ... {END!r})")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{reference_markdown(schema)}{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    """``python -m memristor_mat.config_reference README.md``: rewrite its reference block."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m memristor_mat.config_reference README.md", file=sys.stderr)
        return 2
    path = Path(argv[0])
    path.write_text(replace_reference(path.read_text(encoding="utf-8")), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
