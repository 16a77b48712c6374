/**
 * The JupyterLab plugin: puts the Archive panel in the left sidebar, opens previews in the
 * main area, inserts `%%archive` cells into notebooks, and registers the commands
 * ("Archive: New query", "Archive: Show jobs", Preview, Query in notebook) in the palette and
 * the tree's context menu.
 */
import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, MainAreaWidget } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookActions, NotebookPanel } from '@jupyterlab/notebook';
import { ServerConnection } from '@jupyterlab/services';
import { LabIcon } from '@jupyterlab/ui-components';

import { ArchiveClient, IJob } from './api';
import { historyCell, runAgain } from './history';
import { ArchivePanel } from './panel';
import { PreviewWidget } from './preview';
import { queryCell } from './tree';

const archiveSvg = `<svg xmlns="http://www.w3.org/2000/svg" width="16" viewBox="0 0 24 24">
<g class="jp-icon3" fill="#616161"><path d="M12 2C7 2 3 3.8 3 6v12c0 2.2 4 4 9 4s9-1.8 9-4V6c0-2.2-4-4-9-4zm0 2c4.4 0 7 1.4 7 2s-2.6 2-7 2-7-1.4-7-2 2.6-2 7-2zM5 8.7C6.7 9.5 9.2 10 12 10s5.3-.5 7-1.3V12c0 .6-2.6 2-7 2s-7-1.4-7-2V8.7zm0 6c1.7.8 4.2 1.3 7 1.3s5.3-.5 7-1.3V18c0 .6-2.6 2-7 2s-7-1.4-7-2v-3.3z"/></g></svg>`;

export const archiveIcon = new LabIcon({ name: 'jupyter-archive-service:archive', svgstr: archiveSvg });

export namespace CommandIDs {
  export const newQuery = 'archive:new-query';
  export const showJobs = 'archive:show-jobs';
  export const preview = 'archive:preview-table';
  export const queryInNotebook = 'archive:query-in-notebook';
}

const LOAD_LINE = '%load_ext jupyter_archive';
let previewCount = 0;

/** Put `source` in a new cell below the active one of the current notebook, or of a new notebook. */
async function insertCell(app: JupyterFrontEnd, tracker: INotebookTracker, source: string): Promise<void> {
  let panel: NotebookPanel | null = tracker.currentWidget;
  let fresh = false;
  if (!panel) {
    // python3: the kernel of the environment the archive (and its magic) is installed in.
    panel = (await app.commands.execute('notebook:create-new', { kernelName: 'python3' })) as NotebookPanel;
    fresh = true;
  }
  await panel.context.ready;
  await panel.sessionContext.ready;
  app.shell.activateById(panel.id);
  const notebook = panel.content;
  const model = notebook.model!;
  const sources = Array.from({ length: model.cells.length }, (_, i) => model.cells.get(i).sharedModel.getSource());
  const loaded = sources.some(s => s.includes(LOAD_LINE));
  const empty = fresh || (sources.length === 1 && !sources[0].trim());
  if (empty) {
    // A new notebook: its one empty cell loads the magic, the query goes below.
    notebook.activeCellIndex = 0;
    notebook.activeCell!.model.sharedModel.setSource(LOAD_LINE);
  } else if (!loaded) {
    NotebookActions.insertBelow(notebook);
    notebook.activeCell!.model.sharedModel.setSource(LOAD_LINE);
  }
  NotebookActions.insertBelow(notebook);
  notebook.activeCell!.model.sharedModel.setSource(source);
  notebook.mode = 'command';
  notebook.node.focus();
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-archive-service:sidebar',
  description: 'Browse the archive, preview tables, watch and cancel jobs.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ICommandPalette, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null
  ) => {
    const client = new ArchiveClient(ServerConnection.makeSettings());
    // Failures are shown in the panel's status line rather than thrown: no unhandled rejections.
    const report = (what: string) => (err: unknown) => panel.guard(Promise.reject(err), what);

    // One preview tab per table or job: asking again brings the open one to the front.
    const previews = new Map<string, MainAreaWidget<PreviewWidget>>();
    const openPreview = (label: string, make: () => PreviewWidget) => {
      const open = previews.get(label);
      if (open && !open.isDisposed) {
        app.shell.activateById(open.id);
        return Promise.resolve();
      }
      const widget = make();
      const main = new MainAreaWidget({ content: widget });
      previews.set(label, main);
      main.disposed.connect(() => previews.delete(label));
      main.id = `jp-archive-preview-${++previewCount}`;
      main.title.label = label;
      main.title.icon = archiveIcon;
      main.title.closable = true;
      app.shell.add(main, 'main');
      app.shell.activateById(main.id);
      return widget.load(0);
    };

    const previewTable = async (context: string, table: string) => {
      const info = await client.table(context, table).catch(() => null);
      await openPreview(`${context}.${table}`, () =>
        new PreviewWidget((o, l, order, desc) => client.rows(context, table, o, l, order, desc), 100, info?.rows ?? null, true, n =>
          client.sampleRows(context, table, n)
        )
      );
    };

    const previewJob = async (job: IJob) => {
      await openPreview(`Job ${job.id}`, () =>
        new PreviewWidget((o, l) => client.jobResults(job.id, o, l), 100, job.rows ?? null, false, n => client.sampleJobResults(job.id, n))
      );
    };

    const panel = new ArchivePanel(client, {
      preview: (c, t) => void previewTable(c, t).catch(report('Preview failed')),
      query: (c, t) => void insertCell(app, tracker, queryCell(c, t)).catch(report('Cannot insert the cell')),
      previewJob: job => void previewJob(job).catch(report('Preview failed')),
      runAgain: e => void openPreview(`Query ${++previewCount}`, () => new PreviewWidget(runAgain(client, e), 100)).catch(report('Run failed')),
      insert: e => void insertCell(app, tracker, historyCell(e)).catch(report('Cannot insert the cell'))
    });
    panel.title.icon = archiveIcon;
    app.shell.add(panel, 'left', { rank: 900 });
    restorer?.add(panel, 'jupyter-archive-sidebar');
    void panel.reload();
    panel.jobs.start();

    /** The table row under the context menu (the menu's hit test), as {context, table}. */
    const tableAt = (args: Record<string, unknown>) => {
      if (args.context && args.table) {
        return { context: String(args.context), table: String(args.table) };
      }
      const node = app.contextMenuHitTest(n => n.classList.contains('jp-ArchiveTree-table'));
      return node?.dataset.table ? { context: node.dataset.context!, table: node.dataset.table } : null;
    };

    app.commands.addCommand(CommandIDs.preview, {
      label: 'Preview',
      caption: 'Open a paged grid of the table’s rows',
      execute: args => {
        const t = tableAt(args);
        return t ? previewTable(t.context, t.table).catch(report('Preview failed')) : undefined;
      }
    });
    app.commands.addCommand(CommandIDs.queryInNotebook, {
      label: 'Query in notebook',
      caption: 'Insert a %%archive cell that selects the table’s first 100 rows',
      execute: args => {
        const t = tableAt(args);
        return t ? insertCell(app, tracker, queryCell(t.context, t.table)).catch(report('Cannot insert the cell')) : undefined;
      }
    });
    app.commands.addCommand(CommandIDs.newQuery, {
      label: 'Archive: New query',
      caption: 'Insert a %%archive query cell into the current (or a new) notebook',
      icon: archiveIcon,
      execute: args => {
        // The table given, else the one selected in the tree, else the demo's PhotoObj.
        const given = args.context && args.table ? { context: String(args.context), table: String(args.table) } : undefined;
        const t = given ?? panel.selectedTable() ?? { context: 'DEMO', table: 'PhotoObj' };
        return insertCell(app, tracker, queryCell(t.context, t.table)).catch(report('Cannot insert the cell'));
      }
    });
    app.commands.addCommand(CommandIDs.showJobs, {
      label: 'Archive: Show jobs',
      caption: 'Open the Archive sidebar at its jobs list',
      execute: async () => {
        app.shell.activateById(panel.id);
        await panel.jobs.refreshNow();
        const jobs = panel.node.querySelector('.jp-ArchiveJobs') as HTMLElement;
        jobs.scrollIntoView({ block: 'start' });
        (jobs.querySelector('button:not([disabled])') as HTMLElement | null)?.focus();
      }
    });

    app.contextMenu.addItem({ command: CommandIDs.preview, selector: '.jp-ArchiveTree-table', rank: 1 });
    app.contextMenu.addItem({ command: CommandIDs.queryInNotebook, selector: '.jp-ArchiveTree-table', rank: 2 });
    if (palette) {
      palette.addItem({ command: CommandIDs.newQuery, category: 'Archive' });
      palette.addItem({ command: CommandIDs.showJobs, category: 'Archive' });
    }
  }
};

export default plugin;
