"""A griffe extension for the documentation site: the library's docstrings are written in
reStructuredText (roles, definition lists, ``::`` literal blocks), which mkdocstrings renders
as Markdown. This rewrites the three constructs Markdown would garble, so each adapter's
options (a definition list in its class docstring) show as a definition list on the site:

* ``:func:`~selinon_like.keys.pack_key``` becomes `` `pack_key` `` (a role, then the target;
  ``~`` keeps the last component, as Sphinx does);
* an option — a term line starting with a double-backquoted name, followed without a blank line by
  lines indented deeper — becomes a Markdown definition list item (the term, then
  ``:   definition``);
* a paragraph ending in ``::`` introduces the indented block after it: the block becomes a
  fenced code block (YAML when it reads like YAML) and ``::`` a plain ``:``.

Used by mkdocs.yml (mkdocstrings' ``extensions`` option); :func:`rst_to_markdown` is tested in
tests/test_docs.py.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

__all__ = ["RstDocstrings", "rst_to_markdown"]

_ROLE = re.compile(r":(?:[a-z]+:)?[a-z]+:`(~?)([^`<]+?)(?:\s*<([^>]+)>)?`")
_YAMLISH = re.compile(r"^(-\s+)?[A-Za-z_][\w.-]*:(\s|$)")


def _role(match: re.Match[str]) -> str:
    short, target, explicit = match.group(1), match.group(2).strip(), match.group(3)
    if explicit:  # :class:`text <target>`: the text is what a reader should see
        return f"`{target}`"
    return f"`{target.rsplit('.', 1)[-1] if short else target}`"


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def rst_to_markdown(text: str) -> str:
    """``text`` (a dedented docstring in reStructuredText) as Markdown, for the three
    constructs listed in the module docstring; everything else passes through."""
    lines = _ROLE.sub(_role, text).split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped.endswith("::") and not stripped.startswith(".."):
            # A literal block: the paragraph's "::" becomes ":" ("::" alone disappears).
            lead = line.rstrip()[:-2].rstrip()
            if lead.strip():
                out.append(lead + ":")
            base = _indent(line)
            j = i + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            block: list[str] = []
            while j < len(lines) and (not lines[j].strip() or _indent(lines[j]) > base):
                block.append(lines[j])
                j += 1
            while block and not block[-1].strip():
                block.pop()
            if block:
                depth = min(_indent(b) for b in block if b.strip())
                body = [b[depth:] for b in block]
                language = "yaml" if _YAMLISH.match(body[0]) else "python"
                prefix = " " * base
                out += ["", f"{prefix}```{language}", *(prefix + b for b in body), f"{prefix}```"]
                out.append("")
                i = j
                continue
            i += 1
            continue
        if stripped.startswith("``") and not stripped.startswith("```"):
            # An option: a term starting with ``name`` (it may wrap at the same indent), then
            # lines indented deeper, no blank line between.
            base = _indent(line)
            j = i
            term: list[str] = []
            while (
                j < len(lines)
                and lines[j].strip()
                and _indent(lines[j]) == base
                and not lines[j].lstrip().startswith(("* ", "- "))
            ):
                term.append(lines[j].strip())
                j += 1
            if j < len(lines) and lines[j].strip() and _indent(lines[j]) > base and term:
                definition: list[str] = []
                depth = _indent(lines[j])
                while j < len(lines) and lines[j].strip() and _indent(lines[j]) >= depth:
                    definition.append(lines[j][depth:])
                    j += 1
                prefix = " " * base
                if out and out[-1].strip():
                    out.append("")
                out.append(prefix + " ".join(term))
                out.append(f"{prefix}:   {definition[0]}")
                out += [f"{prefix}    {d}" for d in definition[1:]]
                out.append("")
                i = j
                continue
        out.append(line)
        i += 1
    return "\n".join(out)


class RstDocstrings(griffe.Extension):
    """Rewrite each docstring with :func:`rst_to_markdown` as griffe loads it."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rst_to_markdown(obj.docstring.value)
