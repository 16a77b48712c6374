/**
 * The tree the sidebar shows (contexts -> tables -> columns), kept apart from the DOM so its
 * rules (what is expanded, what a filter keeps, what a keyboard step selects) are unit-tested.
 *
 * Tables are loaded lazily: a context's tables arrive when it is first expanded (or when a
 * filter needs them). A filter matches table and column names, case-insensitively, and keeps
 * the ancestors of every match visible and open.
 */
import type { IColumn, IContext, ITable } from './api';

/** `empty` is the line an open context with no tables shows ("no tables"). */
export type NodeKind = 'context' | 'table' | 'column' | 'empty';

/** One visible line of the tree. */
export interface IRow {
  kind: NodeKind;
  /** Stable identity: "DEMO", "DEMO/PhotoObj", "DEMO/PhotoObj/ra". */
  key: string;
  depth: number;
  label: string;
  context: string;
  table?: string;
  column?: IColumn;
  tableInfo?: ITable;
  contextInfo?: IContext;
  expandable: boolean;
  expanded: boolean;
  /** Whether the context's tables are still being fetched. */
  loading?: boolean;
}

export class TreeModel {
  private _contexts: IContext[] = [];
  private _tables = new Map<string, ITable[]>();
  private _loading = new Set<string>();
  private _expanded = new Set<string>();
  private _filter = '';

  get contexts(): readonly IContext[] {
    return this._contexts;
  }

  get filter(): string {
    return this._filter;
  }

  setContexts(contexts: IContext[]): void {
    this._contexts = [...contexts];
  }

  setTables(context: string, tables: ITable[]): void {
    this._tables.set(context, [...tables].sort((a, b) => a.name.localeCompare(b.name)));
    this._loading.delete(context);
  }

  tablesOf(context: string): ITable[] | undefined {
    return this._tables.get(context);
  }

  setLoading(context: string, loading: boolean): void {
    if (loading) {
      this._loading.add(context);
    } else {
      this._loading.delete(context);
    }
  }

  /** Contexts whose tables are not known yet (what a caller must fetch to filter fully). */
  unloadedContexts(): string[] {
    return this._contexts.map(c => c.name).filter(n => !this._tables.has(n));
  }

  setFilter(text: string): void {
    this._filter = text.trim().toLowerCase();
  }

  isExpanded(key: string): boolean {
    return this._expanded.has(key);
  }

  /** Opens or closes a node; returns the new state. */
  toggle(key: string, open?: boolean): boolean {
    const next = open ?? !this._expanded.has(key);
    if (next) {
      this._expanded.add(key);
    } else {
      this._expanded.delete(key);
    }
    return next;
  }

  /** The lines to draw, in order, with the filter applied. */
  rows(): IRow[] {
    const out: IRow[] = [];
    const f = this._filter;
    for (const ctx of this._contexts) {
      const tables = this._tables.get(ctx.name);
      const ctxMatches = !f || ctx.name.toLowerCase().includes(f);
      const keptTables: { table: ITable; columns: IColumn[]; tableMatches: boolean }[] = [];
      for (const table of tables ?? []) {
        const tableMatches = !f || ctxMatches || table.name.toLowerCase().includes(f);
        const cols = table.columns ?? [];
        const matchingCols = f ? cols.filter(c => c.name.toLowerCase().includes(f)) : cols;
        if (tableMatches || matchingCols.length) {
          keptTables.push({ table, columns: tableMatches ? cols : matchingCols, tableMatches });
        }
      }
      if (f && !ctxMatches && !keptTables.length) {
        continue;
      }
      // Under a filter, a context with matches below it is shown open.
      const ctxOpen = this._expanded.has(ctx.name) || (!!f && !ctxMatches && keptTables.length > 0);
      out.push({
        kind: 'context',
        key: ctx.name,
        depth: 0,
        label: ctx.name,
        context: ctx.name,
        contextInfo: ctx,
        expandable: true,
        expanded: ctxOpen,
        loading: this._loading.has(ctx.name)
      });
      if (!ctxOpen) {
        continue;
      }
      if (tables && !tables.length) {
        out.push({
          kind: 'empty',
          key: `${ctx.name}/`,
          depth: 1,
          label: 'no tables',
          context: ctx.name,
          expandable: false,
          expanded: false
        });
      }
      for (const { table, columns, tableMatches } of keptTables) {
        const key = `${ctx.name}/${table.name}`;
        const tableOpen = this._expanded.has(key) || (!!f && !tableMatches);
        out.push({
          kind: 'table',
          key,
          depth: 1,
          label: table.name,
          context: ctx.name,
          table: table.name,
          tableInfo: table,
          expandable: columns.length > 0,
          expanded: tableOpen
        });
        if (!tableOpen) {
          continue;
        }
        for (const column of columns) {
          out.push({
            kind: 'column',
            key: `${key}/${column.name}`,
            depth: 2,
            label: column.name,
            context: ctx.name,
            table: table.name,
            column,
            expandable: false,
            expanded: false
          });
        }
      }
    }
    return out;
  }

  /** The table a key names (a table's or one of its columns' line), or undefined. */
  tableAt(key: string | undefined): { context: string; table: string } | undefined {
    const r = this.rows().find(x => x.key === key);
    return r?.table ? { context: r.context, table: r.table } : undefined;
  }

  /** The key a keyboard step lands on from `key` (ArrowUp/ArrowDown/Home/End), or undefined. */
  step(key: string | undefined, move: 'up' | 'down' | 'first' | 'last'): string | undefined {
    const rows = this.rows();
    if (!rows.length) {
      return undefined;
    }
    const i = rows.findIndex(r => r.key === key);
    switch (move) {
      case 'first':
        return rows[0].key;
      case 'last':
        return rows[rows.length - 1].key;
      case 'up':
        return rows[Math.max(0, i < 0 ? 0 : i - 1)].key;
      case 'down':
        return rows[Math.min(rows.length - 1, i + 1)].key;
    }
  }

  /** The parent's key ("DEMO/PhotoObj" for a column of it), for ArrowLeft on a closed node. */
  static parentKey(key: string, kind: NodeKind): string | undefined {
    if (kind === 'context') {
      return undefined;
    }
    const parts = key.split('/');
    return kind === 'column' ? parts.slice(0, -1).join('/') : parts[0];
  }
}

/** The text a column line shows after its name: "float64 · deg". */
export function columnDetail(c: IColumn): string {
  return [c.datatype, c.unit].filter(Boolean).join(' · ');
}

/** The `%%archive` cell that "Query in notebook" inserts. */
export function queryCell(context: string, table: string, top = 100): string {
  const name = /^[A-Za-z_][A-Za-z0-9_]*$/.test(table) ? table : `"${table.replace(/"/g, '""')}"`;
  return `%%archive --context ${context}\nSELECT TOP ${top} * FROM ${name}`;
}
