"""mkdocs hooks for facescan's documentation site (loaded by ``hooks:`` in mkdocs.yml).

* ``<!-- readme: HEADING -->`` alone on a line is replaced by the body of the README section with that
  heading (up to the next heading of the same or a higher level; for the ``# facescan`` title, the intro
  before the first section), so the site reuses the README's text instead of a copy. The README's links
  to the model cards and to docs/ are pointed at their pages here; links to other repository files
  (LICENSE, src/…) keep their text only.
* ``<!-- cli-help -->`` is replaced by ``facescan --help`` and every command's ``--help`` (plain click
  output, rendered in a subprocess with ``TYPER_USE_RICH=0``), so the CLI page is always the CLI's own.
* Links to pages (``models/index.md``) in the notebook's Markdown, which mkdocs-jupyter leaves as they
  are, are pointed at the pages' URLs, so they work both in Jupyter and on the site.
* The tutorial notebook is shown executed when ``build/docs/tutorial.ipynb`` (written by
  ``jupyter nbconvert --execute … --output-dir build/docs``) is newer than ``docs/tutorial.ipynb``;
  otherwise the committed notebook is shown without outputs.
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import re
import subprocess
import sys
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.plugins import event_priority

log = logging.getLogger("mkdocs.hooks.facescan")

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
EXECUTED_TUTORIAL = ROOT / "build" / "docs" / "tutorial.ipynb"
README_MARK = re.compile(r"^<!-- readme: (?P<heading>.+?) -->[ \t]*$", re.MULTILINE)
CLI_MARK = "<!-- cli-help -->"
NOTEBOOK_LINK = re.compile(r'href="(?P<path>[^":#?]+\.md)(?P<anchor>#[^"]*)?"')
README_LINK = re.compile(r"(?<!!)\[(?P<text>[^\]]+)\]\((?P<target>[^)\s]+)\)")
MODEL_CARD_PATH = re.compile(r"^src/facescan/models/(?P<name>[\w-]+\.md)$")

_cli_help: str | None = None


# ------------------------------------------------------------------------------- README sections
def readme_section(text: str, heading: str) -> str:
    """The body of the README section titled ``heading`` (its heading line left out)."""
    lines = text.splitlines()
    start = level = None
    fenced = False
    for i, line in enumerate(lines):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        m = None if fenced else re.match(r"^(#{1,6}) +(.*?)\s*$", line)
        if not m:
            continue
        if start is None and m.group(2) == heading:
            start, level = i + 1, len(m.group(1))
        elif start is not None and (len(m.group(1)) <= level or level == 1):  # the title: its intro only
            return "\n".join(lines[start:i]).strip("\n")
    if start is None:
        raise PluginError(f"README.md has no section titled {heading!r} (used by <!-- readme: {heading} -->)")
    return "\n".join(lines[start:]).strip("\n")


def include_readme(markdown: str, page_uri: str, docs_dir: str) -> str:
    readme = README.read_text(encoding="utf-8")
    here = posixpath.dirname(page_uri) or "."

    def link(m: re.Match) -> str:
        text, target = m.group("text"), m.group("target")
        if re.match(r"^([a-z][a-z0-9+.-]*:|#|/)", target):  # a URL, an anchor or an absolute path: as it is
            return m.group(0)
        path, _, anchor = target.partition("#")
        card = MODEL_CARD_PATH.match(path)
        if card:
            path = "models/" + card.group("name")
        elif path.startswith("docs/"):
            path = path.removeprefix("docs/")
        else:  # a repository file that is not part of the site (LICENSE, src/…): its name, unlinked
            return text
        if not (Path(docs_dir) / path).is_file():
            raise PluginError(f"README.md links to {target}, which is not in {docs_dir}")
        return f"[{text}]({posixpath.relpath(path, here)}{'#' + anchor if anchor else ''})"

    def repl(m: re.Match) -> str:
        return README_LINK.sub(link, readme_section(readme, m.group("heading")))

    return README_MARK.sub(repl, markdown)


# ------------------------------------------------------------------------------- CLI reference
_HELP_SCRIPT = r"""
import json, re, sys
from typer.testing import CliRunner
from facescan.cli import app

runner = CliRunner()
out, todo = [], [[]]
while todo:
    path = todo.pop(0)
    res = runner.invoke(app, [*path, "--help"], prog_name="facescan", terminal_width=78)
    if res.exit_code != 0:
        sys.exit(f"facescan {' '.join(path)} --help exited {res.exit_code}: {res.output}")
    out.append([path, res.output])
    section = re.search(r"^Commands:\n((?:  .*\n?)+)", res.output, re.MULTILINE)
    if section:  # each command's subcommands right after it
        todo[0:0] = [[*path, line.split()[0]] for line in section.group(1).splitlines() if re.match(r"^  \S", line)]
print(json.dumps(out))
"""


def cli_help() -> str:
    """Markdown for every command's ``--help`` (computed once per build)."""
    global _cli_help
    if _cli_help is None:
        env = {**os.environ, "TYPER_USE_RICH": "0", "NO_COLOR": "1", "COLUMNS": "78", "TERM": "dumb"}
        proc = subprocess.run([sys.executable, "-c", _HELP_SCRIPT], capture_output=True, text=True, env=env,
                              cwd=ROOT, timeout=120)
        if proc.returncode != 0:
            raise PluginError(f"could not render the CLI's --help: {proc.stderr.strip() or proc.stdout.strip()}")
        parts = []
        for path, text in json.loads(proc.stdout):
            name = " ".join(["facescan", *path])
            level = "#" * min(2 + len(path), 4)
            parts.append(f"{level} `{name}`\n\n```text\n{text.rstrip()}\n```\n")
        _cli_help = "\n".join(parts)
    return _cli_help


# ------------------------------------------------------------------------------- events
def on_pre_build(config, **kwargs) -> None:
    global _cli_help
    _cli_help = None  # `mkdocs serve` rebuilds: render the CLI's help again


@event_priority(-100)  # after mkdocs-jupyter has wrapped the notebook's file (its wrapper recomputes the path)
def on_files(files, config, **kwargs):
    tutorial = files.get_file_from_path("tutorial.ipynb")
    if tutorial is None:
        return files
    source = Path(tutorial.abs_src_path)
    if EXECUTED_TUTORIAL.is_file() and EXECUTED_TUTORIAL.stat().st_mtime >= source.stat().st_mtime:
        tutorial.abs_src_path = str(EXECUTED_TUTORIAL)
        log.info("tutorial: showing the executed notebook %s", EXECUTED_TUTORIAL.relative_to(ROOT))
    else:
        log.info("tutorial: no executed copy newer than docs/tutorial.ipynb in build/docs/; shown without outputs")
    return files


def on_page_markdown(markdown: str, page, config, files, **kwargs) -> str:
    if "<!-- readme: " in markdown:
        markdown = include_readme(markdown, page.file.src_uri, config["docs_dir"])
    if CLI_MARK in markdown:
        markdown = markdown.replace(CLI_MARK, cli_help())
    return markdown


def on_page_content(html: str, page, config, files, **kwargs) -> str:
    if not page.file.src_uri.endswith(".ipynb"):
        return html
    here = posixpath.dirname(page.file.src_uri)

    def repl(m: re.Match) -> str:
        target = files.get_file_from_path(posixpath.normpath(posixpath.join(here, m.group("path"))))
        if target is None:
            log.warning("%s links to %s, which is not a page of the site", page.file.src_uri, m.group("path"))
            return m.group(0)
        return f'href="{target.url_relative_to(page.file)}{m.group("anchor") or ""}"'

    return NOTEBOOK_LINK.sub(repl, html)
