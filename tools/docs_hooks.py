"""MkDocs hooks: the pages that are made from the code (``mkdocs.yml`` names this file).

A page writes ``<!-- generated: WHAT -->`` where the generated Markdown goes:
``readme`` (the README, the home page: one text for both, its ``docs/`` links made relative),
``commands`` (the README's two commands, for Getting started),
``catalogue`` / ``extended`` (the catalogue's tables, ``catalogue_markdown``), ``cli`` (every
command's ``--help``, from the argument parser) and ``schema KIND`` (a file format's fields, from
``file_schema``) and ``include PATH`` (a file a command in the repository wrote, such as the
retraining study's tables). So the reference cannot disagree with the code it describes.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARKER = re.compile(r"<!-- generated: ([a-z-]+)(?: ([a-z0-9_./-]+))? -->")


def _augment():
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import augment

    return augment


def cli_reference() -> str:
    """Every subcommand's help, as ``python augment.py COMMAND --help`` prints it."""
    augment = _augment()
    parser = augment._parser()
    commands = next(action for action in parser._actions if action.__class__.__name__ == "_SubParsersAction")
    parts = ["```text", parser.format_help().rstrip(), "```"]
    for name, sub in commands.choices.items():
        parts += ["", f"## `{name}`", "", "```text", sub.format_help().rstrip(), "```"]
    return "\n".join(parts)


def _type_of(field: dict) -> str:
    if "type" in field:
        return field["type"] if isinstance(field["type"], str) else " or ".join(field["type"])
    if "$ref" in field:
        return field["$ref"].rsplit("/", 1)[-1]
    options = field.get("anyOf") or field.get("oneOf") or []
    return " or ".join(_type_of(option) for option in options) or "any"


def schema_reference(kind: str) -> str:
    """A file format's top-level fields as a table, then its whole JSON Schema (collapsed)."""
    schema = _augment().file_schema(kind)
    required = set(schema.get("required", []))
    rows = ["| field | type | required | description |", "|---|---|---|---|"]
    for name, field in schema.get("properties", {}).items():
        description = " ".join(str(field.get("description", "")).split()).replace("|", "\\|")
        rows.append(f"| `{name}` | {_type_of(field)} | {'yes' if name in required else ''} | {description} |")
    body = json.dumps(schema, indent=1)
    return "\n".join(rows + ["", f'??? note "The whole JSON Schema (`python augment.py schema {kind}`)"', "",
                             "    ```json", *("    " + line for line in body.splitlines()), "    ```"])


def generated(what: str, argument: str | None) -> str:
    if what == "readme":
        return (ROOT / "README.md").read_text().replace("](docs/", "](")
    if what == "commands":  # the README's two commands, word for word
        readme = (ROOT / "README.md").read_text()
        return readme[readme.index("## Two commands\n") + 16:readme.index("## Quickstart")].strip()
    augment = _augment()
    if what == "catalogue":
        return augment.catalogue_markdown(augment.ALL_AUGMENTATIONS)
    if what == "extended":
        return augment.catalogue_markdown(augment.EXTENDED_AUGMENTATIONS)
    if what == "cli":
        return cli_reference()
    if what == "schema" and argument:
        return schema_reference(argument)
    if what == "include" and argument:  # a file a command wrote (the study's tables), as it wrote it
        text = (ROOT / argument).read_text()  # its headings one level down, under the page's own
        return "\n".join("#" + line if line.startswith("#") else line for line in text.splitlines())
    raise ValueError(f"unknown generated section {what!r} {argument or ''}")


def on_page_markdown(markdown: str, page, config, files) -> str:
    return MARKER.sub(lambda match: generated(match.group(1), match.group(2)), markdown)
