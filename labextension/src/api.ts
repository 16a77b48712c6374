/**
 * The sidebar's client for the archive's native JSON API (`{base}archive/api/...`).
 *
 * Every request goes through JupyterLab's `ServerConnection`, so the base URL, the token
 * and the XSRF cookie are the ones the rest of JupyterLab uses. The panel never calls any
 * other face: this module is the whole contract between the front end and the server.
 */
import { ServerConnection } from '@jupyterlab/services';

/** A context (a mount, or the user's MyDB) as `GET archive/api/contexts` lists it. */
export interface IContext {
  name: string;
  path: string;
  kind: string;
  readOnly: boolean;
  public: boolean;
  description?: string;
  schema?: string;
}

/** A column of a table, with the metadata the archive keeps for it. */
export interface IColumn {
  name: string;
  datatype: string;
  unit?: string;
  ucd?: string;
  description?: string;
}

/** A table of a context (`GET archive/api/contexts/{c}/tables`). */
export interface ITable {
  name: string;
  context: string;
  rows: number | null;
  size?: number | null;
  description?: string;
  columns?: IColumn[];
}

/** A page of rows in the native `json-table` shape; a random sample (`sample=`) says of how many rows it is. */
export interface IRowsPage {
  columns: IColumn[];
  data: unknown[][];
  rows: number;
  truncated: boolean;
  sample?: { rows: number; total: number; seed: number };
}

/** A job of any face, as the native API shows it. */
export interface IJob {
  id: number;
  owner: string;
  kind: string;
  face: string;
  state: string;
  request: { query?: string; context?: string; [key: string]: unknown };
  submitted: number;
  started: number | null;
  ended: number | null;
  progress: number;
  rows: number | null;
  elapsed: number | null;
  error: { code: string; message: string } | null;
  results?: { [key: string]: unknown };
}

/** What `submitJob` needs: the query and where it runs (and, optionally, where it writes). */
export interface IJobRequest {
  query: string;
  context?: string;
  language?: string;
  into?: string;
}

/** An error reply of the archive: its `{"error": {code, message}}` body, or the HTTP status. */
export class ArchiveError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string
  ) {
    super(message);
    this.name = 'ArchiveError';
  }
}

/** Typed calls to the native API; one instance per JupyterLab session. */
export class ArchiveClient {
  constructor(readonly settings: ServerConnection.ISettings) {}

  /** The URL of an API path, under the server's base URL. */
  url(path: string, query?: Record<string, string | number | undefined>): string {
    const base = this.settings.baseUrl.replace(/\/?$/, '/');
    let url = base + 'archive/api/' + path.replace(/^\//, '');
    const params = Object.entries(query ?? {}).filter(([, v]) => v !== undefined);
    if (params.length) {
      url += '?' + params.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`).join('&');
    }
    return url;
  }

  async contexts(): Promise<IContext[]> {
    return (await this.request<{ contexts: IContext[] }>('contexts')).contexts;
  }

  async tables(context: string): Promise<ITable[]> {
    return (await this.request<{ tables: ITable[] }>(`contexts/${enc(context)}/tables`)).tables;
  }

  async table(context: string, table: string): Promise<ITable> {
    return this.request<ITable>(`contexts/${enc(context)}/tables/${encPath(table)}`);
  }

  /** A page of a table's rows, sorted on the server by `order` (a column) when given. */
  async rows(context: string, table: string, offset = 0, limit = 100, order?: string, desc = false): Promise<IRowsPage> {
    const query = { offset, limit, order, desc: order && desc ? 'true' : undefined };
    return this.request<IRowsPage>(`contexts/${enc(context)}/tables/${encPath(table)}/rows`, { query });
  }

  /** A uniform random sample of `size` rows of the whole table, drawn by the server (all rows when it has no more). */
  async sampleRows(context: string, table: string, size: number): Promise<IRowsPage> {
    return this.request<IRowsPage>(`contexts/${enc(context)}/tables/${encPath(table)}/rows`, { query: { sample: size } });
  }

  async jobs(limit = 50): Promise<{ jobs: IJob[]; total: number }> {
    return this.request('jobs', { query: { limit } });
  }

  async job(id: number): Promise<IJob> {
    return this.request<IJob>(`jobs/${id}`);
  }

  async submitJob(req: IJobRequest): Promise<IJob> {
    return this.request<IJob>('jobs', { method: 'POST', body: req });
  }

  async cancelJob(id: number): Promise<IJob> {
    return this.request<IJob>(`jobs/${id}/cancel`, { method: 'POST' });
  }

  async deleteJob(id: number): Promise<void> {
    await this.request<void>(`jobs/${id}`, { method: 'DELETE' });
  }

  async jobResults(id: number, offset = 0, limit = 100): Promise<IRowsPage> {
    return this.request<IRowsPage>(`jobs/${id}/results`, { query: { offset, limit } });
  }

  /** A uniform random sample of `size` rows of a finished job's result, drawn by the server. */
  async sampleJobResults(id: number, size: number): Promise<IRowsPage> {
    return this.request<IRowsPage>(`jobs/${id}/results`, { query: { sample: size } });
  }

  /** One call: JSON in, JSON out; an archive error reply becomes an `ArchiveError`. */
  async request<T>(
    path: string,
    opts: { method?: string; body?: unknown; query?: Record<string, string | number | undefined> } = {}
  ): Promise<T> {
    const init: RequestInit = { method: opts.method ?? 'GET', headers: { Accept: 'application/json' } };
    if (opts.body !== undefined) {
      init.body = JSON.stringify(opts.body);
      (init.headers as Record<string, string>)['Content-Type'] = 'application/json';
    }
    let response: Response;
    try {
      response = await ServerConnection.makeRequest(this.url(path, opts.query), init, this.settings);
    } catch (err) {
      throw new ArchiveError(0, 'network', `the archive server cannot be reached: ${(err as Error).message}`);
    }
    const text = await response.text();
    let body: any = undefined;
    if (text) {
      try {
        body = JSON.parse(text);
      } catch {
        body = undefined;
      }
    }
    if (!response.ok) {
      const e = body?.error;
      throw new ArchiveError(
        response.status,
        e?.code ?? 'http',
        e?.message ?? body?.message ?? `${response.status} ${response.statusText || 'error'}`
      );
    }
    return body as T;
  }
}

function enc(s: string): string {
  return encodeURIComponent(s);
}

/** Table names may hold `/` (files mounts): keep the slashes, encode the rest. */
function encPath(s: string): string {
  return s.split('/').map(encodeURIComponent).join('/');
}
