/**
 * A paged grid of rows in the main area: a table's rows ("Preview") or a finished job's
 * result. Pages come from the server (offset/limit), so a large table never lands in the
 * browser whole. Plain HTML table: themed by JupyterLab's CSS variables, keyboard-usable.
 */
import { Widget } from '@lumino/widgets';

import type { IRowsPage } from './api';

/** Fetches a page; `order`/`desc` only for sources that can sort (see `sortable`). */
export type PageSource = (offset: number, limit: number, order?: string, desc?: boolean) => Promise<IRowsPage>;

export class PreviewWidget extends Widget {
  private _offset = 0;
  private _order: string | undefined;
  private _desc = false;
  private _grid: HTMLElement;
  private _status: HTMLElement;
  private _prev: HTMLButtonElement;
  private _next: HTMLButtonElement;

  constructor(
    readonly source: PageSource,
    readonly pageSize = 100,
    readonly total: number | null = null,
    readonly sortable = false
  ) {
    super();
    this.addClass('jp-ArchivePreview');
    const bar = document.createElement('div');
    bar.className = 'jp-ArchivePreview-bar';
    this._prev = button('‹ Previous', 'Previous page', () => void this.load(this._offset - this.pageSize));
    this._next = button('Next ›', 'Next page', () => void this.load(this._offset + this.pageSize));
    this._status = document.createElement('span');
    this._status.className = 'jp-ArchivePreview-status';
    this._status.setAttribute('aria-live', 'polite');
    bar.append(this._prev, this._next, this._status);
    this._grid = document.createElement('div');
    this._grid.className = 'jp-ArchivePreview-grid';
    this.node.append(bar, this._grid);
  }

  get offset(): number {
    return this._offset;
  }

  async load(offset = 0): Promise<void> {
    offset = Math.max(0, offset);
    this._status.textContent = 'Loading…';
    let page: IRowsPage;
    try {
      page = await this.source(offset, this.pageSize, this._order, this._desc);
    } catch (err) {
      this._status.textContent = `Error: ${(err as Error).message}`;
      this._grid.replaceChildren();
      return;
    }
    this._offset = offset;
    this._grid.replaceChildren(this.renderTable(page));
    const last = offset + page.rows;
    const of = this.total !== null ? ` of ${this.total.toLocaleString()}` : '';
    this._status.textContent = page.rows ? `Rows ${offset + 1}–${last}${of}` : `No rows${of}`;
    this._prev.disabled = offset === 0;
    this._next.disabled = this.total !== null ? last >= this.total : page.rows < this.pageSize;
  }

  /** Sort by a column (again: the other way), from the first page. */
  sortBy(column: string): Promise<void> {
    this._desc = this._order === column ? !this._desc : false;
    this._order = column;
    return this.load(0);
  }

  private renderTable(page: IRowsPage): HTMLTableElement {
    const table = renderTable(page);
    if (this.sortable) {
      table.querySelectorAll('th').forEach((th, i) => {
        const name = page.columns[i].name;
        const sorted = this._order === name;
        th.setAttribute('aria-sort', sorted ? (this._desc ? 'descending' : 'ascending') : 'none');
        const b = button(name + (sorted ? (this._desc ? ' ▾' : ' ▴') : ''), `Sort by ${name}`, () => void this.sortBy(name));
        b.className = 'jp-ArchivePreview-sort';
        th.replaceChildren(b);
      });
    }
    return table;
  }
}

function button(label: string, title: string, onClick: () => void): HTMLButtonElement {
  const b = document.createElement('button');
  b.className = 'jp-Button jp-mod-styled jp-mod-reject';
  b.textContent = label;
  b.title = title;
  b.setAttribute('aria-label', title);
  b.addEventListener('click', onClick);
  return b;
}

function renderTable(page: IRowsPage): HTMLTableElement {
  const table = document.createElement('table');
  table.className = 'jp-ArchivePreview-table';
  const head = table.createTHead().insertRow();
  for (const c of page.columns) {
    const th = document.createElement('th');
    th.textContent = c.name;
    th.title = [c.datatype, c.unit, c.description].filter(Boolean).join(' · ');
    head.appendChild(th);
  }
  const body = table.createTBody();
  for (const row of page.data) {
    const tr = body.insertRow();
    for (const v of row) {
      tr.insertCell().textContent = v === null || v === undefined ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v);
    }
  }
  return table;
}
