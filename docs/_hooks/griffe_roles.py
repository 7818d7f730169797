"""Griffe extension: facescan's docstrings use Sphinx roles (:class:`ImageResult`, :func:`~a.b.c`);
mkdocstrings renders Markdown, so each role becomes a plain code span (``~`` keeps the last name)."""

from __future__ import annotations

import re

import griffe

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|data|attr|exc|obj|const):`(?P<tilde>~?)(?P<target>[^`]+)`")


def _plain(m: re.Match) -> str:
    target = m.group("target")
    return f"`{target.rsplit('.', 1)[-1] if m.group('tilde') else target}`"


class SphinxRoles(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(_plain, obj.docstring.value)
