"""One statement's text into sqlglot trees, with errors positioned in the whole query.

T-SQL statements may follow each other without ``;``: a parse error where a new statement starts
splits the chunk there.
"""

from __future__ import annotations

from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from ..errors import ArchiveError
from .checks import ENGINE_STATEMENTS, check_first_words
from .dialects import DEFAULT_FIRST_WORDS, LanguageSpec
from .scan import Chunk, line_col, sub_chunk


def parse_chunk(text: str, chunk: Chunk, spec: LanguageSpec) -> list[tuple[Chunk, exp.Expr]]:
    """Parse one statement's text (``text`` is the whole query, for positions); T-SQL may
    hold several statements without separators, each returned with its own chunk."""
    dialect = spec.dialect()
    try:
        tokens = dialect.tokenize(chunk.text)
    except TokenError as e:
        raise ArchiveError(
            "syntax_error",
            f"syntax error at line {chunk.line}, column {chunk.col}: {e}",
            400,
            position=(chunk.line, chunk.col),
        ) from None
    if not tokens:
        return []
    try:
        check_first_words(tokens, spec)
    except ArchiveError as err:
        err.position = err.position or (chunk.line, chunk.col)
        raise
    try:
        stmts = dialect.parser().parse(tokens, chunk.text)
    except ParseError as e:
        info = e.errors[0] if e.errors else {}
        line, col = info.get("line"), info.get("col")
        highlight = info.get("highlight") or ""
        description = info.get("description") or str(e).splitlines()[0]
        if line is None or col is None:
            raise ArchiveError(
                "syntax_error", f"syntax error at line {chunk.line}, column {chunk.col}: {description}", 400,
                position=(chunk.line, chunk.col),
            ) from None
        if highlight and "\n" not in highlight:
            col = max(1, col - len(highlight) + 1)  # sqlglot points at the token's end
        lines = chunk.text.split("\n")
        local = sum(len(x) + 1 for x in lines[: line - 1]) + col - 1
        line, col = line_col(text, chunk.offset + local)
        near = f" near '{highlight}'" if highlight else ""
        error = ArchiveError(
            "syntax_error", f"syntax error at line {line}, column {col}: {description}{near}", 400, position=(line, col)
        )
        split = _statement_split(tokens, local, highlight) if spec.loose_statements else None
        if split is None:
            raise error from None
        # T-SQL runs statements one after the other without ';': split where the next one
        # starts, provided what comes before it parses on its own.
        head, tail = sub_chunk(text, chunk, 0, split), sub_chunk(text, chunk, split, len(chunk.text))
        try:
            first = parse_chunk(text, head, spec)
        except ArchiveError as err:
            if err.code == "syntax_error":
                raise error from None
            raise
        return first + parse_chunk(text, tail, spec)
    stmts = [s for s in stmts if s is not None]
    return [(chunk, s) for s in stmts]


_STATEMENT_STARTS = (DEFAULT_FIRST_WORDS - {"("}) | ENGINE_STATEMENTS | {
    "DECLARE", "EXEC", "EXECUTE", "PRINT", "BEGIN", "COMMIT", "ROLLBACK", "MERGE", "IF", "WHILE", "RETURN",
}  # fmt: skip


def _statement_split(tokens: list, error_at: int, highlight: str) -> int | None:
    """Where a T-SQL statement without ';' may start, for a parse error at ``error_at``:
    the offending token itself if it starts statements, else the last statement keyword
    opening a line before it (``SELECT 1`` newline ``ATTACH ...`` parses ATTACH as an alias)."""
    if error_at > 0 and highlight.upper() in _STATEMENT_STARTS:
        return error_at
    best = None
    for prev, tok in zip(tokens, tokens[1:]):
        if tok.start >= error_at:
            break
        if tok.line > prev.line and tok.text.upper() in _STATEMENT_STARTS:
            best = tok.start
    return best
