"""Bounds on the values a query builds from a few characters of text.

DuckDB's ``memory_limit`` bounds its buffers, not the values an expression makes: ``range(1e9)`` in a
select list, ``repeat('x', 1e9)``, ``lpad``, a ``printf`` width of a billion each allocate gigabytes
outside it, enough to have the whole server killed for running out of memory. So the argument that
sets such a value's size is guarded in the engine's SQL: past ``LIMIT`` characters or elements the
engine raises an error (``error('archive: ...')``) before the value is made, wherever the size comes
from (a number, a parameter, a column); ``engines.engine_error`` makes it a 400 ``too_large``. The
argument, not the call, is guarded: DuckDB folds constant arguments at planning time, and would fold
the call itself before testing a guard around it.

SQL servers have their own limits and no ``error()``: ``unguard`` takes the guards out of SQL pushed
down to them.
"""

from __future__ import annotations

from sqlglot import exp

#: The most characters (or list elements) one value built by these functions may hold.
LIMIT = 65_536
#: The start of every guard's message (how ``unguard`` and ``engine_error`` know a guard).
MARK = "archive: "
# A printf or fmt width or precision of 5 digits or more (10,000+), or one taken from an argument.
_WIDE_FORMAT = r"%[^a-zA-Z%]*([0-9]{5,}|[*])|\{[^{}]*:[^{}]*([0-9]{5,}|\{)"
_RESIZE = {"list_resize", "array_resize"}
_FORMATS = {"printf", "format"}
_SERIES = {"range", "generate_series"}
_SIZED = (exp.GenerateSeries, exp.Repeat, exp.Space, exp.Pad, exp.Format)


def _sized(node: exp.Expr) -> bool:
    """Whether ``node`` may build a large value (a series as a table function streams its rows)."""
    if isinstance(node.parent, exp.Table):
        return False
    if isinstance(node, exp.Anonymous):
        return str(node.name).lower() in _RESIZE | _FORMATS | _SERIES and 0 < len(node.expressions) <= 3
    return isinstance(node, _SIZED)


def _guard(value: exp.Expr, too_big: exp.Expr, what: str) -> exp.Expr:
    """``value`` unless ``too_big`` holds, in which case the engine raises the guard's error."""
    message = f"{MARK}{what}: a value built in a query holds at most {LIMIT:,} characters or elements"
    fail = exp.Anonymous(this="error", expressions=[exp.Literal.string(message)])
    return exp.Case(ifs=[exp.If(this=too_big, true=fail)], default=value)


def _over(value: exp.Expr) -> exp.Expr:
    return exp.GT(this=exp.paren(value.copy(), copy=False), expression=exp.Literal.number(LIMIT))


def _series(node: exp.Expr) -> None:
    """A series as a list value: its end guarded so it has at most LIMIT elements (numbers or times).
    sqlglot reads ``range(...)`` as a series in DuckDB's SQL, as a plain function in other languages."""
    if isinstance(node, exp.GenerateSeries):
        start, end, step = node.args.get("start"), node.args.get("end"), node.args.get("step")
    else:
        args = node.expressions
        start, end = (exp.Literal.number(0), args[0]) if len(args) == 1 else (args[0], args[1])
        step = args[2] if len(args) > 2 else None
    if start is None or end is None:
        return
    step = step or exp.Literal.number(1)
    far = exp.Add(this=exp.paren(start.copy(), copy=False),
                  expression=exp.Mul(this=exp.Literal.number(LIMIT), expression=exp.paren(step.copy(), copy=False)))
    zero = exp.Mul(this=exp.paren(step.copy(), copy=False), expression=exp.Literal.number(0))  # 0 or a zero interval
    up = exp.and_(exp.GT(this=step.copy(), expression=zero), exp.GT(this=end.copy(), expression=far))
    down = exp.and_(exp.LT(this=step.copy(), expression=zero.copy()), exp.LT(this=end.copy(), expression=far.copy()))
    end.replace(_guard(end.copy(), exp.or_(up, down), "generate_series"))


def guard_values(stmt: exp.Expr) -> exp.Expr:
    """Guard, in place, every call in ``stmt`` that builds a value whose size an argument sets.

    A column of such a call keeps the name it had without the guard (its SQL as written)."""
    nodes = [n for n in stmt.walk() if _sized(n)]
    named = {}
    for node in nodes:
        top = node
        while top.parent is not None and not isinstance(top.parent, exp.Select):
            top = top.parent
        if isinstance(top.parent, exp.Select) and top.arg_key == "expressions" and not isinstance(top, exp.Alias):
            named.setdefault(id(top), (top, top.sql(dialect="duckdb")))
    # innermost first: a guard's test copies the call's arguments, which are then guarded already
    for node in reversed(nodes):
        if isinstance(node, exp.GenerateSeries) or (isinstance(node, exp.Anonymous) and str(node.name).lower() in _SERIES):
            _series(node)
        elif isinstance(node, exp.Repeat) and node.args.get("times") is not None:
            times, this = node.args["times"], node.this
            size = exp.Mul(this=exp.cast(times.copy(), "DOUBLE"),
                           expression=exp.Anonymous(this="length", expressions=[exp.cast(this.copy(), "VARCHAR")]))
            node.set("times", _guard(times.copy(), _over(size), "repeat"))
        elif isinstance(node, exp.Space):
            node.set("this", _guard(node.this.copy(), _over(node.this), "space"))
        elif isinstance(node, exp.Pad) and node.args.get("expression") is not None:
            width = node.args["expression"]
            node.set("expression", _guard(width.copy(), _over(width), "lpad" if node.args.get("is_left") else "rpad"))
        elif isinstance(node, exp.Anonymous) and str(node.name).lower() in _RESIZE and len(node.expressions) >= 2:
            size = node.expressions[1]
            size.replace(_guard(size.copy(), _over(size), str(node.name).lower()))
        elif (isinstance(node, exp.Format) or (isinstance(node, exp.Anonymous) and str(node.name).lower() in _FORMATS)):
            fmt = node.this if isinstance(node, exp.Format) else (node.expressions[0] if node.expressions else None)
            if isinstance(fmt, exp.Expr):
                wide = exp.Anonymous(this="regexp_matches", expressions=[fmt.copy(), exp.Literal.string(_WIDE_FORMAT)])
                name = "format" if isinstance(node, exp.Format) else str(node.name).lower()
                fmt.replace(_guard(fmt.copy(), wide, f"{name} (widths of 10,000 or more, or taken from arguments)"))
    for top, name in named.values():
        top.replace(exp.alias_(top.copy(), name, quoted=True))
    return stmt


def unguard(tree: exp.Expr) -> exp.Expr:
    """``tree`` (parsed from the engine's SQL) without the guards, for a server that has no ``error()``."""
    for case in list(tree.find_all(exp.Case)):
        ifs = case.args.get("ifs") or []
        fail = ifs[0].args.get("true") if len(ifs) == 1 else None
        if isinstance(fail, exp.Anonymous) and str(fail.name).lower() == "error" and fail.expressions:
            text = fail.expressions[0]
            if isinstance(text, exp.Literal) and text.is_string and text.name.startswith(MARK):
                case.replace(case.args["default"])
    return tree
