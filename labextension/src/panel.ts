/**
 * The "Archive" sidebar: a filterable tree of contexts -> tables -> columns and the user's
 * jobs with live progress. It draws the models of `tree.ts` and `jobs.ts`; what happens on
 * "Preview" or "Query in notebook" is given by the plugin (index.ts), which owns the shell.
 */
import { Widget } from '@lumino/widgets';

import type { ArchiveClient, IJob } from './api';
import { el } from './dom';
import { HistorySection, IHistoryActions } from './history';
import { canCancel, canPreview, formatElapsed, jobTitle, JobsModel, progressPercent } from './jobs';
import { columnDetail, IRow, TreeModel } from './tree';

export interface IPanelActions extends IHistoryActions {
  preview(context: string, table: string): void;
  query(context: string, table: string): void;
  previewJob(job: IJob): void;
}

export class ArchivePanel extends Widget {
  readonly tree = new TreeModel();
  readonly jobs: JobsModel;
  readonly history: HistorySection;
  private _treeNode: HTMLElement;
  private _jobsNode: HTMLElement;
  private _message: HTMLElement;
  private _filter: HTMLInputElement;
  private _focused: string | undefined;
  /** Ids of the completed jobs at the last poll (null before the first). */
  private _done: Set<number> | null = null;

  constructor(
    readonly client: ArchiveClient,
    readonly actions: IPanelActions
  ) {
    super();
    this.id = 'jp-archive-sidebar';
    this.addClass('jp-ArchivePanel');
    this.title.caption = 'Archive';
    this.jobs = new JobsModel(client);
    this.jobs.visible = () => this.isVisible;
    this.jobs.changed.connect(() => this.onJobsChanged());

    const header = el('div', 'jp-ArchivePanel-header');
    const title = el('h2', 'jp-ArchivePanel-title', 'Archive');
    const reload = el('button', 'jp-ArchivePanel-reload jp-Button jp-mod-minimal', '⟳') as HTMLButtonElement;
    reload.title = 'Reload contexts, tables and jobs';
    reload.setAttribute('aria-label', 'Reload');
    reload.addEventListener('click', () => void this.reload());
    header.append(title, reload);

    this._filter = document.createElement('input');
    this._filter.type = 'search';
    this._filter.className = 'jp-ArchivePanel-filter jp-mod-styled';
    this._filter.placeholder = 'Filter tables and columns';
    this._filter.setAttribute('aria-label', 'Filter tables and columns');
    this._filter.addEventListener('input', () => void this.applyFilter(this._filter.value));

    this._message = el('div', 'jp-ArchivePanel-message');
    this._message.setAttribute('role', 'status');
    this._treeNode = el('div', 'jp-ArchiveTree');
    this._treeNode.setAttribute('role', 'tree');
    this._treeNode.setAttribute('aria-label', 'Contexts and tables');
    this._treeNode.addEventListener('keydown', e => this.onTreeKey(e));
    // A row may get the focus otherwise than by a click or an arrow key (a screen reader, a script): it is the one a
    // render gives the focus back to, not the row focused before.
    this._treeNode.addEventListener('focusin', e => {
      const key = ((e.target as HTMLElement).closest('.jp-ArchiveTree-row') as HTMLElement | null)?.dataset.key;
      if (key) {
        this._focused = key;
      }
    });

    const jobsHeader = el('h3', 'jp-ArchivePanel-subtitle', 'Jobs');
    this._jobsNode = el('ul', 'jp-ArchiveJobs');
    this._jobsNode.setAttribute('aria-label', 'Jobs');
    this.history = new HistorySection(client, actions, this.jobs.changed); // refreshed with the jobs
    this.node.append(header, this._filter, this._message, this._treeNode, jobsHeader, this._jobsNode, this.history.node);
  }

  /** The table of the line last focused in the tree (what "Archive: New query" queries). */
  selectedTable(): { context: string; table: string } | undefined {
    return this.tree.tableAt(this._focused);
  }

  /** Load the contexts (keeping what is open) and refresh the jobs. */
  async reload(): Promise<void> {
    try {
      this.tree.setContexts(await this.client.contexts());
      this._message.textContent = '';
      const open = this.tree.contexts.filter(c => this.tree.isExpanded(c.name) || this.tree.tablesOf(c.name));
      await Promise.all(open.map(c => this.loadTables(c.name)));
    } catch (err) {
      this._message.textContent = `Cannot list contexts: ${(err as Error).message}`;
    }
    this.renderTree();
    void this.jobs.refreshNow();
  }

  async loadTables(context: string): Promise<void> {
    this.tree.setLoading(context, true);
    this.renderTree();
    try {
      this.tree.setTables(context, await this.client.tables(context));
    } catch (err) {
      this.tree.setLoading(context, false);
      this._message.textContent = `Cannot list tables of ${context}: ${(err as Error).message}`;
    }
    this.renderTree();
  }

  async applyFilter(text: string): Promise<void> {
    this.tree.setFilter(text);
    if (this.tree.filter) {
      await Promise.all(this.tree.unloadedContexts().map(c => this.loadTables(c)));
    }
    this.renderTree();
  }

  /** Open a context or table (fetching tables on first open). */
  async toggle(row: IRow, open?: boolean): Promise<void> {
    const now = this.tree.toggle(row.key, open);
    if (now && row.kind === 'context' && !this.tree.tablesOf(row.context)) {
      await this.loadTables(row.context);
    }
    this.renderTree();
  }

  protected onAfterShow(): void {
    void this.jobs.refreshNow();
  }

  renderTree(): void {
    const rows = this.tree.rows();
    if (!rows.some(r => r.key === this._focused)) {
      this._focused = rows[0]?.key;
    }
    const hadFocus = this._treeNode.contains(document.activeElement);
    this._treeNode.replaceChildren(...rows.map(r => this.renderRow(r)));
    if (hadFocus) {
      this.focusRow(this._focused);
    }
  }

  private renderRow(row: IRow): HTMLElement {
    const node = el('div', `jp-ArchiveTree-row jp-ArchiveTree-${row.kind}`);
    node.setAttribute('role', 'treeitem');
    node.setAttribute('aria-level', String(row.depth + 1));
    node.dataset.key = row.key;
    node.dataset.context = row.context;
    if (row.table) {
      node.dataset.table = row.table;
    }
    node.tabIndex = row.key === this._focused ? 0 : -1;
    node.style.paddingLeft = `${4 + row.depth * 14}px`;
    if (row.expandable) {
      node.setAttribute('aria-expanded', String(row.expanded));
    }
    const caret = el('span', 'jp-ArchiveTree-caret', row.expandable ? (row.expanded ? '▾' : '▸') : '');
    const label = el('span', 'jp-ArchiveTree-label', row.label);
    node.append(caret, label);
    if (row.kind === 'context') {
      const info = row.contextInfo;
      node.title = [info?.path, info?.description].filter(Boolean).join(' — ');
      if (row.loading) {
        node.append(el('span', 'jp-ArchiveTree-detail', 'loading…'));
      }
    } else if (row.kind === 'table') {
      const t = row.tableInfo;
      node.title = [t?.description, t?.rows !== null && t?.rows !== undefined ? `${t.rows.toLocaleString()} rows` : '']
        .filter(Boolean)
        .join(' — ');
      if (t?.rows !== null && t?.rows !== undefined) {
        node.append(el('span', 'jp-ArchiveTree-detail', t.rows.toLocaleString()));
      }
      const actions = el('span', 'jp-ArchiveTree-actions');
      actions.append(
        actionButton('Preview', `Preview ${row.table}`, () => this.actions.preview(row.context, row.table!)),
        actionButton('Query', `Query ${row.table} in a notebook`, () => this.actions.query(row.context, row.table!))
      );
      node.append(actions);
    } else if (row.column) {
      node.append(el('span', 'jp-ArchiveTree-detail', columnDetail(row.column)));
      node.title = [row.column.datatype, row.column.unit, row.column.ucd, row.column.description].filter(Boolean).join(' · ');
      if (row.column.description) {
        node.append(el('span', 'jp-ArchiveTree-description', row.column.description));
      }
    }
    node.addEventListener('click', e => {
      if ((e.target as HTMLElement).closest('button')) {
        return;
      }
      this._focused = row.key;
      if (row.expandable) {
        void this.toggle(row);
      } else {
        this.renderTree();
      }
    });
    return node;
  }

  private focusRow(key: string | undefined): void {
    if (!key) {
      return;
    }
    this._focused = key;
    for (const n of Array.from(this._treeNode.children) as HTMLElement[]) {
      n.tabIndex = n.dataset.key === key ? 0 : -1;
      if (n.dataset.key === key) {
        n.focus();
      }
    }
  }

  /** Tree keys: arrows move and open/close, Enter toggles, P previews, Q queries a table. */
  private onTreeKey(e: KeyboardEvent): void {
    const target = (e.target as HTMLElement).closest('.jp-ArchiveTree-row') as HTMLElement | null;
    if (!target || (e.target as HTMLElement).tagName === 'BUTTON') {
      return;
    }
    const row = this.tree.rows().find(r => r.key === target.dataset.key);
    if (!row) {
      return;
    }
    const moves: Record<string, 'up' | 'down' | 'first' | 'last'> = { ArrowUp: 'up', ArrowDown: 'down', Home: 'first', End: 'last' };
    let handled = true;
    if (moves[e.key]) {
      this.focusRow(this.tree.step(row.key, moves[e.key]));
    } else if (e.key === 'ArrowRight' && row.expandable && !row.expanded) {
      void this.toggle(row, true);
    } else if (e.key === 'ArrowLeft') {
      if (row.expanded) {
        void this.toggle(row, false);
      } else {
        this.focusRow(TreeModel.parentKey(row.key, row.kind));
      }
    } else if ((e.key === 'Enter' || e.key === ' ') && row.expandable) {
      void this.toggle(row);
    } else if (row.kind === 'table' && (e.key === 'p' || e.key === 'P')) {
      this.actions.preview(row.context, row.table!);
    } else if (row.kind === 'table' && (e.key === 'q' || e.key === 'Q')) {
      this.actions.query(row.context, row.table!);
    } else {
      handled = false;
    }
    if (handled) {
      e.preventDefault();
      e.stopPropagation();
    }
  }

  /** Redraw the jobs; when a job has newly completed, re-list the writable contexts' tables
   *  already shown (a job writing `INTO mydb.T` makes a table there). */
  private onJobsChanged(): void {
    this.renderJobs();
    const done = new Set(this.jobs.jobs.filter(j => j.state === 'completed').map(j => j.id));
    const fresh = this._done !== null && [...done].some(id => !this._done!.has(id));
    this._done = done;
    if (fresh) {
      const writable = this.tree.contexts.filter(c => !c.readOnly && this.tree.tablesOf(c.name));
      void Promise.all(writable.map(c => this.loadTables(c.name)));
    }
  }

  renderJobs(): void {
    const active = document.activeElement as HTMLElement | null;
    const focusKey = active && this._jobsNode.contains(active) ? active.dataset.focusKey : undefined;
    const items: HTMLElement[] = [];
    if (this.jobs.error) {
      items.push(el('li', 'jp-ArchiveJobs-error', `Cannot list jobs: ${this.jobs.error}`));
    } else if (!this.jobs.jobs.length) {
      items.push(el('li', 'jp-ArchiveJobs-empty', 'No jobs yet.'));
    }
    for (const job of this.jobs.jobs) {
      items.push(this.renderJob(job));
    }
    const older = this.jobs.total - this.jobs.jobs.length;
    if (!this.jobs.error && older > 0) {
      items.push(el('li', 'jp-ArchiveJobs-empty', `and ${older} older job${older > 1 ? 's' : ''}`));
    }
    this._jobsNode.replaceChildren(...items);
    if (focusKey) {
      (this._jobsNode.querySelector(`[data-focus-key="${focusKey}"]`) as HTMLElement | null)?.focus();
    }
  }

  private renderJob(job: IJob): HTMLElement {
    const li = el('li', `jp-ArchiveJob jp-ArchiveJob-${job.state}`);
    li.dataset.jobId = String(job.id);
    li.dataset.state = job.state;
    const head = el('div', 'jp-ArchiveJob-head');
    const title = el('button', 'jp-ArchiveJob-title', jobTitle(job)) as HTMLButtonElement;
    title.dataset.focusKey = `title-${job.id}`;
    title.disabled = !canPreview(job);
    title.title = canPreview(job) ? 'Preview the result' : job.request?.query ?? '';
    title.addEventListener('click', () => this.actions.previewJob(job));
    const state = el('span', 'jp-ArchiveJob-state', job.state);
    head.append(title, state);
    const pct = progressPercent(job);
    const bar = el('div', 'jp-ArchiveJob-progress');
    bar.setAttribute('role', 'progressbar');
    bar.setAttribute('aria-valuemin', '0');
    bar.setAttribute('aria-valuemax', '100');
    bar.setAttribute('aria-valuenow', String(pct));
    bar.setAttribute('aria-label', `job ${job.id} progress`);
    const fill = el('div', 'jp-ArchiveJob-progressFill');
    fill.style.width = `${pct}%`;
    bar.append(fill);
    const meta = [formatElapsed(job.elapsed), job.rows !== null && job.rows !== undefined ? `${job.rows.toLocaleString()} rows` : '', job.face]
      .filter(Boolean)
      .join(' · ');
    const info = el('div', 'jp-ArchiveJob-meta', meta);
    const query = el('div', 'jp-ArchiveJob-query', job.request?.query ?? '');
    const buttons = el('div', 'jp-ArchiveJob-buttons');
    if (canCancel(job)) {
      buttons.append(actionButton('Cancel', `Cancel job ${job.id}`, () => this.guard(this.jobs.cancel(job.id), `Cannot cancel job ${job.id}`), `cancel-${job.id}`));
    }
    if (!canCancel(job) && job.state !== 'canceling') {
      buttons.append(actionButton('Delete', `Delete job ${job.id}`, () => this.guard(this.jobs.remove(job.id), `Cannot delete job ${job.id}`), `delete-${job.id}`));
    }
    li.append(head, bar, info, query, buttons);
    if (job.error) {
      li.append(el('div', 'jp-ArchiveJob-error', job.error.message));
    }
    return li;
  }

  /** Run an action; a failure is shown in the status line (never an unhandled rejection). */
  guard(action: Promise<unknown>, what: string): void {
    action.catch(err => {
      this._message.textContent = `${what}: ${(err as Error).message}`;
    });
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this.jobs.dispose();
    super.dispose();
  }
}

function actionButton(label: string, title: string, onClick: () => void, focusKey?: string): HTMLButtonElement {
  const b = el('button', 'jp-ArchiveAction', label) as HTMLButtonElement;
  b.title = title;
  b.setAttribute('aria-label', title);
  if (focusKey) {
    b.dataset.focusKey = focusKey;
  }
  b.addEventListener('click', e => {
    e.stopPropagation();
    onClick();
  });
  return b;
}
