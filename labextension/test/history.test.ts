/**
 * The History section's calls and texts: the listing and its filter, a query run again (its
 * language and context, a Quasar path as `path`), and the `%%archive` cell it inserts.
 */
import { describe, expect, it } from 'vitest';

import { entryMeta, fetchHistory, historyCell, IHistoryEntry, runAgain, runPage } from '../src/history';
import { clientFor, replies } from './http';

const entry = (over: Partial<IHistoryEntry> = {}): IHistoryEntry => ({
  id: 3, kind: 'quick', job: null, face: null, query: 'SELECT TOP 2 objid FROM PhotoObj', language: 'tsql', context: 'DEMO',
  time: 1_700_000_000, duration: 0.25, rows: 2, outcome: 'ok', error: null, ...over
});

describe('history', () => {
  it('lists the newest queries, filtered by text', async () => {
    const { client, sent } = clientFor(replies([200, { history: [entry()], total: 1 }], [200, { history: [], total: 0 }]));
    expect((await fetchHistory(client)).history[0].query).toContain('PhotoObj');
    await fetchHistory(client, 'photo obj', 5);
    expect(sent.map(s => s.url.split('/archive/api/')[1])).toEqual(['history?limit=30', 'history?limit=5&q=photo%20obj']);
  });

  it('runs a query again page by page, in its language and context', async () => {
    const page = { columns: [], data: [], rows: 0, truncated: false };
    const { client, sent } = clientFor(replies([200, page], [200, page]));
    await runPage(client, entry(), 100, 50);
    await runPage(client, entry({ language: 'sql2', context: '/demo', query: 'SELECT * FROM `PhotoObj`' }), 0, 10);
    expect(sent.map(s => [s.method, JSON.parse(s.body!)])).toEqual([
      ['POST', { query: 'SELECT TOP 2 objid FROM PhotoObj', language: 'tsql', context: 'DEMO', offset: 100, limit: 50 }],
      ['POST', { query: 'SELECT * FROM `PhotoObj`', language: 'sql2', path: '/demo', offset: 0, limit: 10 }]
    ]);
  });

  it('lists a query run again once: its other pages are no new run', async () => {
    const page = { columns: [], data: [], rows: 0, truncated: false };
    const { client, sent } = clientFor(replies([200, page], [200, page], [200, page]));
    const source = runAgain(client, entry());
    await source(0, 100);
    await source(100, 100);
    await source(0, 5000);
    expect(sent.map(s => JSON.parse(s.body!).history)).toEqual([undefined, false, false]);
  });

  it('makes the %%archive cell and the line under each query', () => {
    expect(historyCell(entry())).toBe('%%archive --context DEMO --lang tsql\nSELECT TOP 2 objid FROM PhotoObj');
    expect(historyCell(entry({ language: 'sql', context: null }))).toBe('%%archive\nSELECT TOP 2 objid FROM PhotoObj');
    expect(entryMeta(entry())).toMatch(/^ok · 2 rows · 250 ms · /);
    expect(entryMeta(entry({ outcome: 'timed_out', rows: null, kind: 'job', job: 9 }))).toMatch(/^timed out · 250 ms · job 9 · /);
  });
});
