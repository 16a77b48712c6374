/**
 * A paged grid of rows in the main area: a table's rows ("Preview") or a finished job's
 * result. Pages come from the server (offset/limit), so a large table never lands in the
 * browser whole. Plain HTML table: themed by JupyterLab's CSS variables, keyboard-usable.
 * The same rows can be seen as a sky plot or a histogram (plot.ts), drawn from at most
 * PLOT_LIMIT of them fetched in one request: all of them when they fit, else a uniform random
 * sample the server draws (`sampler`; a source without one, a query run again, plots its first rows).
 */
import { Widget } from '@lumino/widgets';

import type { IRowsPage } from './api';
import { histogramPlot, isNumeric, num, PLOT_LIMIT, raDecColumns, sampleNote, skyPlot } from './plot';

/** What the preview shows: the paged table or a picture of the rows. */
export type PreviewView = 'table' | 'sky' | 'histogram';

/** Fetches a page; `order`/`desc` only for sources that can sort (see `sortable`). */
export type PageSource = (offset: number, limit: number, order?: string, desc?: boolean) => Promise<IRowsPage>;

/** Fetches a uniform random sample of `size` rows of the whole source, drawn by the server. */
export type SampleSource = (size: number) => Promise<IRowsPage>;

export class PreviewWidget extends Widget {
  private _offset = 0;
  private _order: string | undefined;
  private _desc = false;
  private _grid: HTMLElement;
  private _status: HTMLElement;
  private _prev: HTMLButtonElement;
  private _next: HTMLButtonElement;
  private _view: PreviewView = 'table';
  private _views: Record<PreviewView, HTMLButtonElement>;
  private _pick: HTMLSelectElement;
  private _page: IRowsPage | null = null;
  // The rows the plots are drawn from, for the sort they were fetched in.
  private _sample: { key: string; page: IRowsPage } | null = null;
  private _by: Partial<Record<PreviewView, string>> = {};

  constructor(
    readonly source: PageSource,
    readonly pageSize = 100,
    readonly total: number | null = null,
    readonly sortable = false,
    readonly sampler?: SampleSource
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
    this._views = {
      table: button('Table', 'Show the rows as a table', () => void this.showView('table')),
      sky: button('Sky plot', 'Show the rows on the sky (RA, Dec)', () => void this.showView('sky')),
      histogram: button('Histogram', 'Show a histogram of a column', () => void this.showView('histogram'))
    };
    const views = document.createElement('span');
    views.className = 'jp-ArchivePreview-views';
    views.setAttribute('role', 'group');
    views.setAttribute('aria-label', 'View');
    views.append(...Object.values(this._views));
    this._pick = document.createElement('select');
    this._pick.className = 'jp-ArchivePreview-pick';
    this._pick.addEventListener('change', () => {
      this._by[this._view] = this._pick.value;
      void this.showView(this._view);
    });
    bar.append(views, this._prev, this._next, this._pick, this._status);
    this._grid = document.createElement('div');
    this._grid.className = 'jp-ArchivePreview-grid';
    this.node.append(bar, this._grid);
    this.setView('table');
  }

  get view(): PreviewView {
    return this._view;
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
    this._page = page;
    this.setView('table');
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

  /**
   * Show the table (its current page) or a plot. A plot fetches its rows once: all of them in the
   * preview's order (again when the sort changes) when they fit in PLOT_LIMIT, else a random sample
   * of PLOT_LIMIT the server draws (of no order: any sort draws the same), and says on itself which.
   */
  async showView(view: PreviewView): Promise<void> {
    if (view === 'table') {
      return this.load(this._offset);
    }
    this.setView(view);
    const sampled = this.sampler !== undefined && (this.total === null || this.total > PLOT_LIMIT);
    const key = sampled ? 'sample' : `${this._order ?? ''}|${this._desc}`;
    if (this._sample?.key !== key) {
      this._status.textContent = 'Loading rows for the plot…';
      try {
        const page = sampled ? await this.sampler!(PLOT_LIMIT) : await this.source(0, PLOT_LIMIT, this._order, this._desc);
        this._sample = { key, page };
      } catch (err) {
        this._status.textContent = `Error: ${(err as Error).message}`;
        this._grid.replaceChildren();
        return;
      }
    }
    if (this._view !== view) {
      return; // the user moved on while the rows came
    }
    const page = this._sample!.page;
    const unsorted = this.sortable ? 'table order' : 'result order';
    const note = page.sample
      ? sampleNote(page.rows, page.sample.total, PLOT_LIMIT, undefined, false, unsorted, true)
      : sampleNote(page.rows, this.total, PLOT_LIMIT, this._order, this._desc, unsorted);
    const numeric = page.columns.map((c, i) => ({ c, i })).filter(({ c }) => isNumeric(c));
    const pos = raDecColumns(page.columns);
    let picture: Element;
    if (view === 'sky') {
      this.fillPick(['(one colour)', ...numeric.map(({ c }) => c.name)], 'Colour the points by');
      if (!pos) {
        this._status.textContent = 'No RA/Dec columns (UCD pos.eq.ra/pos.eq.dec, or named ra/dec) to plot';
        this._grid.replaceChildren();
        return;
      }
      const by = page.columns.findIndex(c => c.name === this._pick.value);
      picture = skyPlot(page.columns, page.data, pos, by >= 0 ? by : null, note);
    } else {
      // By default a measured quantity (a float, not the position), rather than an id.
      const fallback = numeric.find(({ c, i }) => /^(double|float)$/.test(c.datatype) && i !== pos?.ra && i !== pos?.dec);
      this.fillPick(numeric.map(({ c }) => c.name), 'Histogram of', fallback?.c.name);
      const i = page.columns.findIndex(c => c.name === this._pick.value);
      if (i < 0) {
        this._status.textContent = 'No numeric column to draw';
        this._grid.replaceChildren();
        return;
      }
      const values = page.data.map(r => num(r[i])).filter((v): v is number => v !== null);
      picture = histogramPlot(page.columns[i], values, note);
    }
    this._grid.replaceChildren(picture);
    this._status.textContent = note[0].toUpperCase() + note.slice(1);
  }

  private setView(view: PreviewView): void {
    this._view = view;
    for (const [name, b] of Object.entries(this._views) as [PreviewView, HTMLButtonElement][]) {
      b.setAttribute('aria-pressed', String(name === view));
      b.classList.toggle('jp-mod-accept', name === view);
      b.classList.toggle('jp-mod-reject', name !== view);
    }
    const columns = (this._sample?.page ?? this._page)?.columns;
    if (columns) {
      this._views.sky.disabled = !raDecColumns(columns);
      this._views.histogram.disabled = !columns.some(isNumeric);
    }
    this._prev.hidden = this._next.hidden = view !== 'table';
    this._pick.hidden = view === 'table';
    this.toggleClass('jp-mod-plot', view !== 'table');
  }

  /** The column picker's choices for the view; the user's last pick for it is kept. */
  private fillPick(options: string[], title: string, fallback?: string): void {
    const want = this._by[this._view];
    const keep = want !== undefined && options.includes(want) ? want : fallback ?? options[0];
    this._pick.replaceChildren(...options.map(o => new Option(o, o, false, o === keep)));
    this._pick.value = keep ?? '';
    this._pick.title = title;
    this._pick.setAttribute('aria-label', title);
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
