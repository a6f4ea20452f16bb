"""The text/plain part of a message whose job has only an HTML template.

Mail clients that show text only, screen readers and spam filters all expect a plain part
beside the HTML; html2text turns the rendered HTML into readable Markdown-like text (links kept
as ``[label](url)``, images dropped). Bulk jobs often render the same HTML for many recipients
(no personal fields), so the last few conversions are cached.
"""

from __future__ import annotations

from functools import lru_cache

import html2text

# Lines wrapped as mail clients expect; very long words (URLs) are never broken.
WRAP_AT = 78


@lru_cache(maxsize=64)
def html_to_text(html: str) -> str:
    converter = html2text.HTML2Text()
    converter.body_width = WRAP_AT
    converter.ignore_images = True
    converter.ignore_emphasis = False
    converter.unicode_snob = True  # é stays é, not e
    return converter.handle(html).strip() + "\n"


def text_part(html: str, text: str | None) -> str:
    """A message's plain part: the job's own text template as rendered, else one derived from
    the HTML. Every delivery path (the local mailers and the cloud Lambda) takes it from here."""
    return text if text else html_to_text(html)
