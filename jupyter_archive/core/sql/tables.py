"""Table references: which tables a statement reads and writes, and what the resolver makes of them.

``Resolution`` asks the request's ``Resolver`` for each reference (a name, or an SQL² path made
absolute) and remembers the tables a batch creates, so a later statement may read them first.
"""

from __future__ import annotations

from sqlglot import exp

from ..errors import ArchiveError, bad_request
from .compiled import Parsed, Resolver, TableTarget
from .dialects import LanguageSpec
from .scan import node_position


def absolute_path(path: str, base: str | None) -> str:
    """An SQL² path made absolute against ``base``, with "." and ".." applied."""
    written = path
    if not path.startswith("/"):
        path = "/" + (base or "/").strip("/") + "/" + path
    segments: list[str] = []
    for seg in path.split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if not segments:
                where = "" if written.startswith("/") else f" (relative to {base or '/'})"
                raise bad_request(f"path {written} escapes the root /{where}", path=written)
            segments.pop()
        else:
            segments.append(seg)
    return "/" + "/".join(segments)


def table_parts(table: exp.Table) -> tuple[str, ...]:
    """The name parts as written: ("PhotoObj",), ("mydb", "T"), ("DR16", "", "PhotoObj")."""
    this = table.this
    if isinstance(this, exp.Placeholder) or isinstance(this, exp.Parameter):
        raise bad_request(f"a variable cannot stand for a table name: {this.sql()}")
    if not isinstance(this, exp.Identifier):
        raise bad_request(f"unsupported table reference: {table.sql()}")
    parts = []
    for key in ("catalog", "db", "this"):
        part = table.args.get(key)
        if part is None:
            continue
        if isinstance(part, (exp.Placeholder, exp.Parameter)):
            raise bad_request(f"a variable cannot stand for a table name: {part.sql()}")
        parts.append(part.name if isinstance(part, exp.Identifier) else "")  # T-SQL a..b: db ""
    return tuple(parts)


def write_targets(stmt: exp.Expr) -> list[exp.Table]:
    """The tables a statement creates or changes (not the tables it reads)."""
    def unwrap(node):
        return node.this if isinstance(node, exp.Schema) else node

    if isinstance(stmt, (exp.Insert, exp.Update, exp.Delete, exp.Alter)):
        targets = [unwrap(stmt.this)]
    elif isinstance(stmt, exp.Create):
        # CREATE INDEX changes the table it is on
        targets = [stmt.this.args.get("table") if isinstance(stmt.this, exp.Index) else unwrap(stmt.this)]
    elif isinstance(stmt, exp.Drop):
        targets = list(stmt.args.get("tables") or []) or [stmt.this]
        on = stmt.args.get("cluster")  # DROP INDEX ix ON t
        if isinstance(on, exp.OnProperty):
            targets.append(on.this)
    elif isinstance(stmt, exp.TruncateTable):
        targets = list(stmt.expressions)
    else:
        targets = []
    into = find_into(stmt)
    if into is not None:
        targets.append(into.this)
    return [t for t in targets if isinstance(t, exp.Table)]


def find_into(stmt: exp.Expr) -> exp.Into | None:
    """The T-SQL ``SELECT ... INTO`` clause of a statement, if any (only at its top)."""
    intos = list(stmt.find_all(exp.Into))
    if not intos:
        return None
    owner = intos[0].parent
    top = stmt
    while isinstance(top, exp.SetOperation):  # INTO sits on the leftmost SELECT of a UNION
        top = top.this
    if len(intos) > 1 or owner is not top:
        raise ArchiveError("unsupported", "SELECT ... INTO is allowed only in the outermost SELECT", 400)
    return intos[0]


def _with_of(node: exp.Expr) -> exp.With | None:
    w = node.args.get("with_")
    return w if isinstance(w, exp.With) else None


def is_cte_reference(table: exp.Table) -> bool:
    """Whether an unqualified table name refers to a CTE visible where it stands."""
    if table.args.get("db") is not None or table.args.get("catalog") is not None:
        return False
    if not isinstance(table.this, exp.Identifier):
        return False
    name = table.name.casefold()
    node: exp.Expr = table
    via_cte: exp.CTE | None = None
    while node.parent is not None:
        child, node = node, node.parent
        if isinstance(node, exp.CTE):
            via_cte = node
            continue
        if isinstance(node, exp.With):
            ctes = list(node.expressions)
            idx = next((k for k, c in enumerate(ctes) if c is via_cte), len(ctes))
            # A CTE sees the ones before it, and itself when the WITH is RECURSIVE.
            visible = ctes[: idx + 1] if node.args.get("recursive") else ctes[:idx]
            if any(c.alias.casefold() == name for c in visible):
                return True
            continue
        w = _with_of(node)
        if w is not None and child is not w and any(c.alias.casefold() == name for c in w.expressions):
            return True
    return False


def read_tables(stmt: exp.Expr, targets: list[exp.Table]) -> list[exp.Table]:
    """Every table reference a statement reads: not a write target, not a CTE name, not a
    table function, not the new name of ALTER TABLE ... RENAME TO."""
    skip = {id(t) for t in targets}
    out = []
    for table in stmt.find_all(exp.Table):
        if id(table) in skip or isinstance(table.this, exp.Func):
            continue
        if isinstance(table.parent, exp.AlterRename):
            continue
        if is_cte_reference(table):
            continue
        out.append(table)
    # find_all is breadth-first; report in text order for readable phases.
    return sorted(out, key=lambda t: (t.this.meta.get("start", 0) if isinstance(t.this, exp.Expr) else 0))


class Resolution:
    """Resolves a batch's table references through the resolver, remembering the tables the
    batch itself creates so that a later statement may read them before they exist."""

    def __init__(self, resolver: Resolver, spec: LanguageSpec, base_path: str | None):
        self.resolver, self.spec, self.base_path = resolver, spec, base_path
        self.created: list[TableTarget] = []

    def key(self, table: exp.Table) -> tuple[tuple[str, ...], tuple[str, ...] | str]:
        """(written parts, what the resolver is asked with: parts, or an absolute path)."""
        parts = table_parts(table)
        if not self.spec.paths:
            return parts, parts
        path = absolute_path("/".join(parts), self.base_path)
        return tuple(p for p in parts[-1].split("/") if p) or parts, path

    def resolve(self, table: exp.Table, role: str, *, missing_ok: bool = False) -> TableTarget:
        _, key = self.key(table)
        if role == "new":
            target = self.resolver.new_table(key, language=self.spec.name)
            self.created.append(target)
            return target
        write = role == "write"
        try:
            if isinstance(key, str):
                return self.resolver.resolve_path(key, write=write)
            return self.resolver.resolve_name(key, write=write)
        except ArchiveError as err:
            if err.code != "unknown_table":
                raise
            if not (missing_ok or self.created):
                raise
            try:
                target = self.resolver.new_table(key, language=self.spec.name)
            except ArchiveError:
                raise err from None
            if missing_ok or any(same_table(target, c) for c in self.created):
                return target
            raise


def same_table(a: TableTarget, b: TableTarget) -> bool:
    """Whether two targets are one engine table (names compare case-insensitively)."""
    return (a.catalog.casefold(), a.schema.casefold(), a.name.casefold()) == (
        b.catalog.casefold(),
        b.schema.casefold(),
        b.name.casefold(),
    )


def _label(written: tuple[str, ...], key) -> str:
    return key if isinstance(key, str) else ".".join(written)


def resolve_statement(p: Parsed, res: Resolution, text: str) -> list[str]:
    """Resolve every table of one statement, setting its kind and target; the lines of the phase."""
    stmt = p.stmt
    targets = write_targets(stmt)
    lines: list[str] = []

    def add(table: exp.Table, role: str, *, missing_ok: bool = False) -> TableTarget:
        try:
            written, key = res.key(table)
            target = res.resolve(table, role, missing_ok=missing_ok)
        except ArchiveError as err:
            err.position = err.position or node_position(text, p.chunk, table)
            raise
        p.refs.append((table, target, role, written))
        mark = {"read": "", "write": " (write)", "new": " (new table)"}[role]
        engine_name = f"{target.catalog}.{target.schema}.{target.name}"
        lines.append(f"{_label(written, key)} -> {target.context}: {engine_name}{mark}")
        return target

    into = find_into(stmt)
    if into is not None:
        p.kind, p.into = "write", add(into.this, "new")
    elif isinstance(stmt, exp.Create) and isinstance(stmt.this, exp.Index):
        p.kind, p.into = "ddl", add(targets[0], "write")
    elif isinstance(stmt, exp.Drop) and str(stmt.args.get("kind")).upper() == "INDEX":
        p.kind = "ddl"
        p.into = _drop_index(p, res, add, text)
        lines.append(f"index {'.'.join(table_parts(targets[0]))} -> {p.into.context}: {p.into.catalog}.{p.into.schema}")
        return lines
    elif isinstance(stmt, exp.Create):
        p.into = add(targets[0], "new")
        as_select = stmt.args.get("expression") is not None and str(stmt.args.get("kind")).upper() == "TABLE"
        p.kind = "write" if as_select else "ddl"
    elif isinstance(stmt, (exp.Insert, exp.Update, exp.Delete)):
        p.kind, p.into = "write", add(targets[0], "write")
    elif isinstance(stmt, (exp.Drop, exp.Alter, exp.TruncateTable)):
        p.kind = "ddl"
        exists = isinstance(stmt, exp.Drop) and bool(stmt.args.get("exists"))
        for t in targets:
            target = add(t, "write", missing_ok=exists)
            p.into = p.into or target
        for rename in stmt.find_all(exp.AlterRename):
            # Later statements of the batch may use the new name before it exists.
            if p.into is not None and isinstance(rename.this, exp.Table):
                t = p.into
                res.created.append(TableTarget(t.catalog, t.schema, rename.this.name, t.context, t.writable))
    for table in read_tables(stmt, targets):
        add(table, "read")
    return lines


def _drop_index(p: Parsed, res: Resolution, add, text: str) -> TableTarget:
    """Resolve DROP INDEX: an index lives in its table's schema, so the table (``ON t``, or T-SQL's
    ``t.ix``) or the context (``DROP INDEX [context.]ix``) says where; the index node is pointed
    there and the (writable) table or context is the statement's target."""
    stmt = p.stmt
    node = stmt.args["tables"][0]
    parts = table_parts(node)
    on = stmt.args.get("cluster")
    stmt.set("cluster", None)  # DuckDB's DROP INDEX takes no ON: the index's qualified name says where
    exists = bool(stmt.args.get("exists"))
    if isinstance(on, exp.OnProperty) and isinstance(on.this, exp.Table):
        if len(parts) > 1:
            raise bad_request(f"DROP INDEX {'.'.join(parts)} ON ...: name the index without a table or context")
        target = add(on.this, "write", missing_ok=exists)
    elif res.spec.name == "tsql" and len(parts) > 1:  # T-SQL: DROP INDEX [context.]table.index
        table = exp.Table(this=node.args["db"].copy(), db=node.args["catalog"].copy() if node.args.get("catalog") else None)
        target = add(table, "write", missing_ok=exists)
    else:
        try:
            # where a table of that name would be: the context's schema, if the caller may write there
            target = res.resolver.new_table(res.key(node)[1], language=res.spec.name)
        except ArchiveError as err:
            err.position = err.position or node_position(text, p.chunk, node)
            raise
    index = TableTarget(target.catalog, target.schema, parts[-1], target.context, target.writable)
    p.refs.append((node, index, "index", parts))
    return index
