"""Mustache rendering for user-authored templates (email bodies, report headers).

chevron parses the template (tags, standalone lines, set-delimiter); rendering is done here
because chevron's renderer resolves names with ``getattr`` (a template could reach Python
attributes such as ``{{name.__class__}}`` or call bound methods in a section), reads partials
from the working directory, and resolves dotted names against every context instead of only
the first part (the spec's "Dotted Names - Context Precedence" case). Here a name can only
reach keys of the mappings it was given.

Sections over lists multiply: n nested sections over a list of k items render their body k^n
times, so a few hundred bytes of template can ask for gigabytes. Three limits keep a render
cheap whatever the template and data: section nesting depth (checked when compiling), the
rendered size (rendering stops as soon as the output passes it) and a time budget (checked
every few hundred steps). Each raises TemplateError saying which limit was hit.
"""

from __future__ import annotations

import functools
import html
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chevron import ChevronError
from chevron.tokenizer import tokenize

# Sections inside sections (the spec's deepest case is 5).
MAX_SECTION_DEPTH = 5
# Characters one render may produce: an email message part, and the editor's preview.
MAX_RENDERED_CHARS = 512 * 1024
PREVIEW_MAX_CHARS = 256 * 1024
RENDER_TIME_BUDGET_S = 1.0
# Nodes visited between two looks at the clock.
_CLOCK_EVERY = 256


class TemplateError(ValueError):
    """A template that cannot be rendered; the message says what and where."""


class OutputTooLarge(TemplateError):
    """The rendered text passed the size limit."""

    def __init__(self, max_chars: int) -> None:
        super().__init__(
            f"the rendered text is longer than {max_chars:,} characters "
            "(check sections nested over long lists)"
        )


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


def render(
    template: str,
    variables: Mapping[str, Any],
    *,
    escape_html: bool = True,
    max_chars: int = MAX_RENDERED_CHARS,
    time_budget_s: float = RENDER_TIME_BUDGET_S,
) -> str:
    """Render ``template`` with ``variables``.

    ``{{name}}`` is HTML-escaped as the Mustache spec requires; pass ``escape_html=False`` for
    output that is not HTML (a subject line, a text/plain body). TemplateError when the output
    would pass ``max_chars`` characters or rendering takes longer than ``time_budget_s``.
    """
    renderer = _Renderer(escape_html, max_chars, time.monotonic() + time_budget_s)
    renderer.nodes(_compile(template), [variables])
    return "".join(renderer.out)


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
            if len(stack) > MAX_SECTION_DEPTH:
                raise TemplateError(
                    f"sections nested more than {MAX_SECTION_DEPTH} deep (at '{{{{#{key}}}}}')"
                )
            stack.append((key, kind == "inverted section", []))
        elif kind == "end":
            name, inverted, children = stack.pop()
            stack[-1][2].append(_Section(name, inverted, tuple(children)))
    return tuple(stack[0][2])


class _Renderer:
    """One render: the output so far and the limits it runs under."""

    def __init__(self, escape_html: bool, max_chars: int, deadline: float) -> None:
        self.escape_html = escape_html
        self.max_chars = max_chars
        self.deadline = deadline
        self.out: list[str] = []
        self.size = 0
        self.steps = 0

    def nodes(self, nodes: tuple[_Node, ...], contexts: list[Any]) -> None:
        for node in nodes:
            self.step()
            if isinstance(node, str):
                self.write(node)
            elif isinstance(node, _Variable):
                value = _resolve(node.name, contexts)
                if value is not None:
                    text = str(value)
                    self.write(html.escape(text) if node.escape and self.escape_html else text)
            else:
                self.section(node, contexts)

    def section(self, node: _Section, contexts: list[Any]) -> None:
        items = _section_items(_resolve(node.name, contexts))
        if node.inverted:
            if not items:
                self.nodes(node.children, contexts)
            return
        for item in items:
            self.step()
            contexts.append(item)
            self.nodes(node.children, contexts)
            contexts.pop()

    def step(self) -> None:
        self.steps += 1
        if self.steps % _CLOCK_EVERY == 0 and time.monotonic() > self.deadline:
            raise TemplateError("rendering took too long (check sections nested over long lists)")

    def write(self, text: str) -> None:
        self.size += len(text)
        if self.size > self.max_chars:
            raise OutputTooLarge(self.max_chars)
        self.out.append(text)


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
