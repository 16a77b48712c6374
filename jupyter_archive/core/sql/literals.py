"""Query texts that differ only in their numbers share one compilation (the compile cache's second level).

A TAP or CasJobs client writes its values into the text (``WHERE objid = 1237648720693755918``), so
the compile cache, keyed by the text, misses on every new value. ``shape`` splits a text into its
shape (the text with each plain number, ``123`` or ``1.5``, replaced by a mark) and those numbers.
A ``Template`` is the compilation of the shape with a distinctive sentinel in each number's place;
rendering it pastes a new text's numbers where the sentinels are, exactly as written (so each is
typed by the engine as it would be in a fresh compilation; each is a plain number by the regular
expression, so nothing else can be pasted).

A template is kept only when it is *transparent*: rendered with the numbers of the text that was
just compiled for real, it gives exactly that compilation. A number that compilation depends on
(a ``TOP`` capped by the row limit, a number checked for range or folded into another)
renders differently, and the shape is then compiled afresh every time, as before.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace

from .compiled import Compiled, Late, Statement
from .healpix_index import bind

# One token at a time: quoted strings and identifiers, comments and words are kept whole, so a
# number inside them is never taken for a literal; a plain number stands alone (not part of a
# word, a qualified name or an exponent form).
_TOKENS = re.compile(
    r"""('(?:[^']|'')*'?)|("(?:[^"]|"")*"?)|(`[^`]*`?)|(\[[^\]]*\]?)|(--[^\n]*)|(/\*.*?(?:\*/|\Z))"""
    r"""|([^\W\d][\w$#@]*|[$@#:][\w$#@]*)|(?<![\w.])(\d+\.\d+|\d+)(?![\w.])|(\d[\w.]*|.)""",
    re.S,
)
_COUNT = re.compile(r"\b(?:TOP|LIMIT|OFFSET|FIRST|NEXT)\s*\(?\s*$", re.I)
_NUMBER = 8  # the group of a plain number
MARK = "\x00"  # stands for a number in a shape (never in a query text the pipeline accepts)


def shape(text: str) -> tuple[str, list[str]]:
    """The text's shape (each plain number replaced by ``MARK`` and its form) and the numbers, in order."""
    parts: list[str] = []
    numbers: list[str] = []
    for m in _TOKENS.finditer(text):
        number = m.group(_NUMBER)
        if number is None:
            parts.append(m.group(0))
        else:
            numbers.append(number)
            parts.append(MARK + ("d" if "." in number else "i"))
    return "".join(parts), numbers


def sentinels(numbers: list[str]) -> list[str]:
    """One distinctive number per number of a shape, of the same form (integer or decimal), none
    a part of another."""
    return [f"7{i:05d}3519" + (".2753" if "." in n else "") for i, n in enumerate(numbers)]


def fill(shape_text: str, numbers: list[str]) -> str:
    """The shape with ``numbers`` in the marks' places."""
    pieces = shape_text.split(MARK)
    out = [pieces[0]]
    for piece, number in zip(pieces[1:], numbers, strict=True):
        out.append(number + piece[1:])  # piece[0] is the mark's form letter
    return "".join(out)


class Template:
    """A compilation of a shape with sentinels for its numbers (``marks``); ``render`` puts a text's
    numbers in. ``fixed`` numbers (by position) were compiled as they are: a text matches the
    template only with the same ones there."""

    def __init__(self, compiled: Compiled, marks: list[str], fixed: dict[int, str]):
        self.compiled = compiled
        self.param_names = compiled.param_names
        self.slots = [(i, m) for i, m in enumerate(marks) if i not in fixed]
        self.fixed = fixed

    def matches(self, numbers: list[str]) -> bool:
        return len(numbers) == len(self.slots) + len(self.fixed) and all(numbers[i] == n for i, n in self.fixed.items())

    def _paste(self, text: str, numbers: list[str]) -> str:
        for i, mark in self.slots:
            text = text.replace(mark, numbers[i])
        return text

    def _statement(self, s: Statement, numbers: list[str]) -> Statement:
        source = self._paste(s.source, numbers)
        if s.late is None:
            return replace(s, sql=self._paste(s.sql, numbers), source=source)
        # Sky regions' range filters are made from the numbers pasted into their values
        regions = [replace(r, values=tuple(self._paste(v, numbers) for v in r.values)) for r in s.late.regions]
        late = Late(self._paste(s.late.sql, numbers), regions, s.late.bounds)
        return bind(replace(s, source=source, late=late), s.params)

    def render(self, numbers: list[str]) -> Compiled:
        """The compilation of the shape with ``numbers``: statements with the numbers pasted; no
        phases (only ``/compile`` shows them, and it never uses the cache)."""
        c = self.compiled
        statements = [self._statement(s, numbers) for s in c.statements]
        return Compiled(c.language, statements, [], lambda: self._paste(c.modified_query, numbers), dict(c.param_names))


def learn(text: str, real: Compiled, compile_text: Callable[[str], Compiled]) -> Template | None:
    """The template of ``text``'s shape (``real``: the text's own compilation), or None when no
    transparent one exists. Row counts are fixed; so is a number whose sentinel the compilation
    used up, and the shape is compiled once more; when the template is not transparent, the 0s and 1s
    are fixed too (``CONTAINS(...) = 1`` is a condition only with a 1) and it is tried once more: at
    most three compilations."""
    form, numbers = shape(text)
    marks = sentinels(numbers)
    # Row counts (TOP, LIMIT, OFFSET, FETCH FIRST) shape the compilation: fixed from the start.
    before = form.split(MARK)[:-1]
    fixed = {i: numbers[i] for i, b in enumerate(before) if _COUNT.search(b[1:] if i else b)}
    flags = {i: n for i, n in enumerate(numbers) if n in ("0", "1")}
    for _ in range(3):
        try:
            compiled = compile_text(fill(form, [numbers[i] if i in fixed else m for i, m in enumerate(marks)]))
        except Exception:  # noqa: BLE001 - a template is an optimisation: sentinels may make what the text did not (1e+7000013519)
            return None
        # a number may also stand only in what is made when values are bound (a late test's vertices)
        sql = "\n".join(s.sql + "".join(v for r in (s.late.regions if s.late else ()) for v in r.values) for s in compiled.statements)
        if missing := {i for i, m in enumerate(marks) if i not in fixed and m not in sql}:
            fixed |= {i: numbers[i] for i in missing}
            continue
        template = Template(compiled, marks, fixed)
        if template.slots and _same(template.render(numbers), real):
            return template
        if not flags.keys() - fixed.keys():
            return None
        fixed |= flags
    return None


def _same(a: Compiled, b: Compiled) -> bool:
    """Whether two compilations run the same statements."""
    return a.param_names == b.param_names and len(a.statements) == len(b.statements) and all(
        (x.kind, x.sql, x.params, x.into, x.tables) == (y.kind, y.sql, y.params, y.into, y.tables)
        for x, y in zip(a.statements, b.statements, strict=True)
    )  # fmt: skip
