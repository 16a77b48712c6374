/**
 * A stand-in for the server at the HTTP boundary: a `fetch` that records every request and
 * answers from a handler. The code under test (ArchiveClient over JupyterLab's real
 * ServerConnection) runs unchanged; only the network is replaced.
 */
import { ServerConnection } from '@jupyterlab/services';

import { ArchiveClient } from '../src/api';

export const BASE = 'http://127.0.0.1:8888/a%40b/';

export interface ISent {
  url: string;
  method: string;
  body: string | null;
  headers: Headers;
}

/** What the fake server answers: [status, JSON body (undefined: no body)]. */
export type Handler = (method: string, path: string, body: string | null) => [number, unknown];

export function clientFor(handler: Handler): { client: ArchiveClient; sent: ISent[] } {
  const sent: ISent[] = [];
  const fetchFn = async (input: RequestInfo | URL, init?: RequestInit) => {
    const req = new Request(input, init);
    // ServerConnection appends a cache-busting timestamp (init.cache 'no-store'): not ours to test.
    const url = req.url.replace(/[?&]\d{10,}$/, '');
    const body = (await req.text()) || null;
    sent.push({ url, method: req.method, body, headers: req.headers });
    const [status, reply] = handler(req.method, url.slice((BASE + 'archive/api/').length), body);
    return new Response(reply === undefined ? null : JSON.stringify(reply), {
      status,
      headers: { 'Content-Type': 'application/json' }
    });
  };
  const settings = ServerConnection.makeSettings({
    baseUrl: BASE,
    wsUrl: BASE.replace('http', 'ws'),
    token: 'T0K',
    fetch: fetchFn as typeof fetch,
    Request,
    Headers
  });
  return { client: new ArchiveClient(settings), sent };
}

/** A handler answering with canned replies, one per request, in order. */
export function replies(...list: Array<[number, unknown]>): Handler {
  return () => list.shift() ?? [200, {}];
}
