/**
 * The sidebar's "History": the user's recent queries from every face (`GET archive/api/history`),
 * newest first, filterable by text, each with "Run again" (its rows in a preview) and "Insert"
 * (a `%%archive` cell below the active one). What those two do is given by the plugin (index.ts).
 */
import type { ISignal } from '@lumino/signaling';

import type { ArchiveClient, IRowsPage } from './api';
import { el } from './dom';
import { formatElapsed } from './jobs';

/** A query of the history, as the native API shows it. */
export interface IHistoryEntry {
  id: number;
  kind: 'quick' | 'job';
  job: number | null;
  face: string | null;
  query: string;
  language: string | null;
  context: string | null;
  time: number;
  duration: number | null;
  rows: number | null;
  outcome: 'ok' | 'error' | 'canceled' | 'timed_out';
  error: { code: string | null; message: string | null } | null;
}

export interface IHistoryActions {
  runAgain(entry: IHistoryEntry): void;
  insert(entry: IHistoryEntry): void;
}

/** The newest queries the sidebar lists. */
export const HISTORY_LIMIT = 30;

export async function fetchHistory(client: ArchiveClient, q = '', limit = HISTORY_LIMIT): Promise<{ history: IHistoryEntry[]; total: number }> {
  return client.request('history', { query: { limit, q: q || undefined } });
}

/**
 * A page of the rows of a query run again, as the sidebar's preview asks for them; `listed: false` for a page
 * that is no new run (the native API's `"history": false`), so the history lists the query once.
 */
export function runPage(client: ArchiveClient, entry: IHistoryEntry, offset: number, limit: number, listed = true): Promise<IRowsPage> {
  const where = entry.context?.startsWith('/') ? { path: entry.context } : { context: entry.context ?? undefined };
  return client.request<IRowsPage>('query', {
    method: 'POST',
    body: { query: entry.query, language: entry.language ?? undefined, ...where, offset, limit, ...(listed ? {} : { history: false }) }
  });
}

/** The pages of a query run again: the first is the run the user asked for (in the history), the others (next
 * pages, a sort, a plot's rows) are browsing it. */
export function runAgain(client: ArchiveClient, entry: IHistoryEntry): (offset: number, limit: number) => Promise<IRowsPage> {
  let first = true;
  return (offset, limit) => {
    const listed = first;
    first = false;
    return runPage(client, entry, offset, limit, listed);
  };
}

/** The `%%archive` cell that runs an entry's query again. */
export function historyCell(entry: IHistoryEntry): string {
  const options = [entry.context ? ` --context ${entry.context}` : '', entry.language && entry.language !== 'sql' ? ` --lang ${entry.language}` : ''];
  return `%%archive${options.join('')}\n${entry.query}`;
}

/** "ok · 12 rows · 35 ms · 14:02:11": what a line of the history says under its query. */
export function entryMeta(entry: IHistoryEntry): string {
  const outcome = entry.outcome === 'timed_out' ? 'timed out' : entry.outcome;
  const rows = entry.rows !== null && entry.rows !== undefined ? `${entry.rows.toLocaleString()} rows` : '';
  const when = new Date(entry.time * 1000).toLocaleString();
  return [outcome, rows, formatElapsed(entry.duration), entry.kind === 'job' ? `job ${entry.job}` : entry.face ?? '', when]
    .filter(Boolean)
    .join(' · ');
}

/** The "History" section of the sidebar: a heading, a filter and the list; refreshed on `refreshOn`. */
export class HistorySection {
  readonly node = el('section', 'jp-ArchiveHistory');
  private _list = el('ul', 'jp-ArchiveHistory-list');
  private _filter = document.createElement('input');
  entries: IHistoryEntry[] = [];

  constructor(
    readonly client: ArchiveClient,
    readonly actions: IHistoryActions,
    refreshOn?: ISignal<any, void> // eslint-disable-line @typescript-eslint/no-explicit-any
  ) {
    const head = el('h3', 'jp-ArchivePanel-subtitle', 'History');
    const clear = el('button', 'jp-ArchiveAction', 'Clear') as HTMLButtonElement;
    clear.title = 'Forget your query history';
    clear.addEventListener('click', () => void this.clear());
    head.append(' ', clear);
    this._filter.type = 'search';
    this._filter.className = 'jp-ArchiveHistory-filter jp-mod-styled';
    this._filter.placeholder = 'Filter queries';
    this._filter.setAttribute('aria-label', 'Filter the query history');
    this._filter.addEventListener('input', () => void this.refresh());
    this._list.setAttribute('aria-label', 'Query history');
    this.node.append(head, this._filter, this._list);
    refreshOn?.connect(() => void this.refresh());
  }

  async refresh(): Promise<void> {
    try {
      this.entries = (await fetchHistory(this.client, this._filter.value)).history;
      this._list.replaceChildren(...(this.entries.length ? this.entries.map(e => this.renderEntry(e)) : [el('li', 'jp-ArchiveJobs-empty', 'No queries yet.')]));
    } catch (err) {
      this._list.replaceChildren(el('li', 'jp-ArchiveJobs-error', `Cannot list the history: ${(err as Error).message}`));
    }
  }

  async clear(): Promise<void> {
    await this.client.request('history', { method: 'DELETE' }).catch(() => undefined);
    await this.refresh();
  }

  private renderEntry(entry: IHistoryEntry): HTMLElement {
    const li = el('li', `jp-ArchiveHistory-entry jp-ArchiveHistory-${entry.outcome}`);
    li.dataset.historyId = String(entry.id);
    li.dataset.outcome = entry.outcome;
    const query = el('div', 'jp-ArchiveJob-query', entry.query);
    query.title = entry.query;
    const meta = el('div', 'jp-ArchiveJob-meta', entryMeta(entry));
    const buttons = el('div', 'jp-ArchiveJob-buttons');
    buttons.append(
      button('Run again', 'Run this query again and preview its rows', () => this.actions.runAgain(entry)),
      button('Insert', 'Insert this query as a %%archive cell in the notebook', () => this.actions.insert(entry))
    );
    li.append(query, meta, buttons);
    if (entry.error?.message) {
      li.append(el('div', 'jp-ArchiveJob-error', entry.error.message));
    }
    return li;
  }
}

function button(label: string, title: string, onClick: () => void): HTMLButtonElement {
  const b = el('button', 'jp-ArchiveAction', label) as HTMLButtonElement;
  b.title = title;
  b.setAttribute('aria-label', title);
  b.addEventListener('click', onClick);
  return b;
}
