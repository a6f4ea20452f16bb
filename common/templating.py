"""Mustache rendering for user-authored templates (email bodies, report headers).

chevron parses the template (tags, standalone lines, set-delimiter); rendering is done here
because chevron's renderer resolves names with ``getattr`` (a template could reach Python
attributes such as ``{{name.__class__}}`` or call bound methods in a section), reads partials
from the working directory, and resolves dotted names against every context instead of only
the first part (the spec's "Dotted Names - Context Precedence" case). Here a name can only
reach keys of the mappings it was given.
"""

from __future__ import annotations

import functools
import html
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chevron import ChevronError
from chevron.tokenizer import tokenize


class TemplateError(ValueError):
    """A template that cannot be rendered; the message says what and where."""


@dataclass(frozen=True)
class _Variable:
    name: str
    escape: bool


@dataclass(frozen=True)
class _Section:
    name: str
    inverted: bool
    children: tuple[_Node, ...]


_Node = str | _Variable | _Section

# chevron's tokenizer counts lines in module globals; one template at a time keeps the line
# numbers in its error messages right when renders run in worker threads.
_tokenize_lock = threading.Lock()

_UNSUPPORTED_TAGS = {
    "partial": "partials ({{> name}}) are not supported",
    "no escape?": "a triple mustache ({{{name}}}) is not closed with '}}}'",
}


def render(template: str, variables: Mapping[str, Any], *, escape_html: bool = True) -> str:
    """Render ``template`` with ``variables``.

    ``{{name}}`` is HTML-escaped as the Mustache spec requires; pass ``escape_html=False`` for
    output that is not HTML (a subject line, a text/plain body).
    """
    out: list[str] = []
    _render_nodes(_compile(template), [variables], escape_html, out)
    return "".join(out)


def validate(template: str) -> None:
    """Raise TemplateError if ``template`` cannot be rendered (used when a template is saved)."""
    _compile(template)


@functools.lru_cache(maxsize=64)
def _compile(template: str) -> tuple[_Node, ...]:
    # Cached: a bulk job renders the same template for every recipient.
    try:
        with _tokenize_lock:
            tokens = list(tokenize(template))
    except ChevronError as exc:
        raise TemplateError("; ".join(str(exc).splitlines())) from None
    except IndexError:
        # chevron indexes the first character of the tag's content: "{{}}" has none.
        raise TemplateError("empty tag '{{}}'") from None
    return _build_tree(tokens)


def _build_tree(tokens: list[tuple[str, str]]) -> tuple[_Node, ...]:
    # Each open section collects its children; the tokenizer has already checked that every
    # section is closed by a matching end tag.
    stack: list[tuple[str, bool, list[_Node]]] = [("", False, [])]
    for kind, key in tokens:
        if kind in _UNSUPPORTED_TAGS:
            raise TemplateError(_UNSUPPORTED_TAGS[kind])
        if kind == "literal":
            stack[-1][2].append(key)
            continue
        if kind == "set delimiter":
            continue
        if not key:
            raise TemplateError("a tag needs a name")
        if kind in ("variable", "no escape"):
            stack[-1][2].append(_Variable(key, escape=kind == "variable"))
        elif kind in ("section", "inverted section"):
            stack.append((key, kind == "inverted section", []))
        elif kind == "end":
            name, inverted, children = stack.pop()
            stack[-1][2].append(_Section(name, inverted, tuple(children)))
    return tuple(stack[0][2])


def _render_nodes(
    nodes: tuple[_Node, ...], contexts: list[Any], escape_html: bool, out: list[str]
) -> None:
    for node in nodes:
        if isinstance(node, str):
            out.append(node)
        elif isinstance(node, _Variable):
            value = _resolve(node.name, contexts)
            if value is not None:
                text = str(value)
                out.append(html.escape(text) if node.escape and escape_html else text)
        else:
            items = _section_items(_resolve(node.name, contexts))
            if node.inverted:
                if not items:
                    _render_nodes(node.children, contexts, escape_html, out)
                continue
            for item in items:
                contexts.append(item)
                _render_nodes(node.children, contexts, escape_html, out)
                contexts.pop()


def _resolve(name: str, contexts: list[Any]) -> Any:
    """Spec name resolution, reaching only mapping keys; None when the name does not resolve."""
    if name == ".":
        return contexts[-1]
    first, *rest = name.split(".")
    for context in reversed(contexts):
        if isinstance(context, Mapping) and first in context:
            value = context[first]
            break
    else:
        return None
    for part in rest:
        if not (isinstance(value, Mapping) and part in value):
            return None
        value = value[part]
    return value


def _section_items(value: Any) -> Sequence[Any]:
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return value
    return (value,) if value else ()
