"""A griffe extension for the API reference (``mkdocs.yml``): the docstrings' ``>>>`` examples
become fenced ``pycon`` blocks, so Markdown shows them as code instead of nested quotes (and
``# doctest:`` directives are left out of what a reader sees)."""

from __future__ import annotations

import re

import griffe

DIRECTIVE = re.compile(r"\s*# doctest:.*$")


def fenced(text: str) -> str:
    """Each run of ``>>>`` / ``...`` lines and the output lines after them (to a blank line) fenced."""
    out, in_example = [], False
    for line in text.splitlines():
        stripped = line.lstrip()
        starts = stripped.startswith(">>>")
        if starts and not in_example:
            out.append("```pycon")
            in_example = True
        elif in_example and not stripped:
            out.append("```")
            in_example = False
        out.append(DIRECTIVE.sub("", line) if in_example else line)
    if in_example:
        out.append("```")
    return "\n".join(out)


class DoctestFences(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None and ">>>" in obj.docstring.value:
            obj.docstring.value = fenced(obj.docstring.value)
