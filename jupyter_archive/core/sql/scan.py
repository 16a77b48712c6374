"""Query text as characters: statements split at ``;`` (and T-SQL's ``GO``), positions, Quasar operators.

Quotes and comments are skipped by each language's rules (``LanguageSpec``), so that a ``;`` or an
operator inside a string never counts. Nothing here parses SQL; ``parse.py`` does, chunk by chunk.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import ArchiveError

if TYPE_CHECKING:
    from sqlglot import exp

    from .dialects import LanguageSpec


@dataclass(frozen=True)
class Chunk:
    """One statement's text and where it starts in the whole query (1-based line/column)."""

    text: str
    offset: int
    line: int
    col: int


def line_col(text: str, offset: int) -> tuple[int, int]:
    """1-based (line, column) of ``offset`` in ``text``."""
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def syntax_error(text: str, offset: int, what: str) -> ArchiveError:
    line, col = line_col(text, offset)
    return ArchiveError(
        "syntax_error", f"syntax error at line {line}, column {col}: {what}", 400, position=(line, col)
    )


_GO_LINE = re.compile(r"[ \t]*GO[ \t]*(?:--[^\n]*)?(?=\r?\n|$)", re.IGNORECASE)
_LEADING_GO = re.compile(r"\s*GO[ \t]*(?:--[^\n]*)?(?:\r?\n|$)", re.IGNORECASE)
_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z_0-9]*)?\$")

# Quasar SQL² operators we do not translate; matched only in code, never inside quotes.
_QUASAR_OPS = re.compile(r"\[\s*:?\s*[*_]\s*:?\s*\]|\{\s*:?\s*[*_]\s*:?\s*\}|\?\?|~~")


def _skip_quoted(text: str, i: int, close: str, backslash: bool) -> int:
    """Index just past the quoted span opening at ``i``; doubled ``close`` is an escape."""
    j, n = i + 1, len(text)
    while j < n:
        c = text[j]
        if backslash and c == "\\":
            j += 2
            continue
        if c == close:
            if j + 1 < n and text[j + 1] == close:
                j += 2
                continue
            return j + 1
        j += 1
    kind = {"'": "string", '"': "quoted text", "`": "identifier", "]": "identifier"}[close]
    raise syntax_error(text, i, f"unterminated {kind} starting here")


def scan(text: str, spec: LanguageSpec) -> tuple[list[Chunk], list[tuple[int, int]]]:
    """Split ``text`` into statements at top-level ``;`` (and ``GO`` lines in T-SQL).

    Returns the non-empty chunks and the spans of unquoted, uncommented code (for operator
    checks). Raises a positioned syntax error for an unterminated string or comment.
    """
    chunks: list[Chunk] = []
    code: list[tuple[int, int]] = []
    n = len(text)
    i = start = 0
    code_start = 0
    has_code = False

    def emit(end: int) -> None:
        if not has_code:
            return
        begin = start
        if spec.go_batches:  # "...; GO" ends a batch too, though GO is not alone on its line
            m = _LEADING_GO.match(text, begin, end)
            if m:
                begin = m.end()
        piece = text[begin:end]
        if not piece.strip():
            return
        lead = len(piece) - len(piece.lstrip())
        line, col = line_col(text, begin + lead)
        chunks.append(Chunk(piece.strip(), begin + lead, line, col))

    while i < n:
        if spec.go_batches and (i == 0 or text[i - 1] == "\n"):
            m = _GO_LINE.match(text, i)
            if m:
                code.append((code_start, i))
                emit(i)
                i = start = code_start = m.end()
                has_code = False
                continue
        c = text[i]
        j = None  # end of a quoted/comment span starting at i
        quoted = True
        if c == "'":
            escape = spec.backslash_strings or (
                spec.dollar_quotes and i > 0 and text[i - 1] in "eE" and (i < 2 or not text[i - 2].isalnum())
            )
            j = _skip_quoted(text, i, "'", escape)
        elif c == '"':
            j = _skip_quoted(text, i, '"', spec.backslash_strings)
        elif c == "`" and spec.backtick_idents:
            j = _skip_quoted(text, i, "`", False)
        elif c == "[" and spec.bracket_idents:
            j = _skip_quoted(text, i, "]", False)
        elif text.startswith("--", i) or (c == "#" and spec.hash_comments):
            k = text.find("\n", i)
            j, quoted = (n if k < 0 else k), False
        elif text.startswith("/*", i):
            k = text.find("*/", i + 2)
            if k < 0:
                raise syntax_error(text, i, "unterminated comment starting here")
            j, quoted = k + 2, False
        elif c == "$" and spec.dollar_quotes:
            m = _DOLLAR_TAG.match(text, i)
            if m:
                k = text.find(m.group(0), m.end())
                if k < 0:
                    raise syntax_error(text, i, "unterminated $-quoted string starting here")
                j = k + len(m.group(0))
        if j is not None:
            code.append((code_start, i))
            code_start = j
            has_code = has_code or quoted
            i = j
            continue
        if c == ";":
            code.append((code_start, i))
            emit(i)
            start = code_start = i + 1
            has_code = False
        elif not c.isspace():
            has_code = True
        i += 1
    code.append((code_start, n))
    emit(n)
    return chunks, [(a, b) for a, b in code if b > a]


def check_quasar_operators(text: str, code: list[tuple[int, int]]) -> None:
    """Refuse Quasar's structural operators (``[*]``, ``{*}``, ``??``, ``~~`` ...) by name."""
    for a, b in code:
        m = _QUASAR_OPS.search(text, a, b)
        if m:
            op = re.sub(r"\s+", "", m.group(0))
            line, col = line_col(text, m.start())
            raise ArchiveError(
                "unsupported",
                f"the SQL² operator {op} is not supported (line {line}, column {col})",
                400,
                position=(line, col),
                details={"operator": op},
            )


def node_position(text: str, chunk: Chunk, node: exp.Expr) -> tuple[int, int] | None:
    """Where a node was written in the whole query text, if the parser recorded it
    (sqlglot records positions on identifiers and some literals; take the first one)."""
    starts = [n.meta["start"] for n in node.walk() if "start" in n.meta]
    if not starts:
        return None
    return line_col(text, chunk.offset + min(starts))


def sub_chunk(text: str, chunk: Chunk, a: int, b: int) -> Chunk:
    """The part ``[a, b)`` of a chunk's text as a chunk of its own, stripped, with its position."""
    piece = chunk.text[a:b]
    lead = len(piece) - len(piece.lstrip())
    offset = chunk.offset + a + lead
    line, col = line_col(text, offset)
    return Chunk(piece.strip(), offset, line, col)
