/**
 * The API client against a recording `fetch`: the URLs, verbs and bodies it sends through
 * JupyterLab's real ServerConnection (token and base URL), and how it reads replies and errors.
 */
import { describe, expect, it } from 'vitest';

import { ArchiveError } from '../src/api';
import { clientFor, replies } from './http';

const clientWith = (...list: Array<[number, unknown]>) => clientFor(replies(...list));

describe('ArchiveClient', () => {
  it('lists contexts under the base URL with the token', async () => {
    const { client, sent } = clientWith([200, { contexts: [{ name: 'DEMO', path: '/demo' }] }]);
    const contexts = await client.contexts();
    expect(contexts.map(c => c.name)).toEqual(['DEMO']);
    expect(sent[0].url).toBe('http://127.0.0.1:8888/a%40b/archive/api/contexts');
    expect(sent[0].method).toBe('GET');
    expect(sent[0].headers.get('Authorization')).toBe('token T0K');
  });

  it('encodes context and table names, keeping slashes of file tables; pages and samples rows', async () => {
    const page = { columns: [], data: [], rows: 0, truncated: false };
    const { client, sent } = clientWith([200, { tables: [] }], [200, { name: 'sub/a b' }], [200, page], [200, page], [200, page], [200, page]);
    await client.tables('My DB');
    await client.table('files', 'sub/a b');
    await client.rows('DEMO', 'PhotoObj', 200, 50);
    await client.rows('DEMO', 'PhotoObj', 0, 10, 'r', true);
    await client.sampleRows('files', 'sub/a b', 10000);
    await client.sampleJobResults(7, 500);
    expect(sent.map(s => s.url)).toEqual([
      'http://127.0.0.1:8888/a%40b/archive/api/contexts/My%20DB/tables',
      'http://127.0.0.1:8888/a%40b/archive/api/contexts/files/tables/sub/a%20b',
      'http://127.0.0.1:8888/a%40b/archive/api/contexts/DEMO/tables/PhotoObj/rows?offset=200&limit=50',
      'http://127.0.0.1:8888/a%40b/archive/api/contexts/DEMO/tables/PhotoObj/rows?offset=0&limit=10&order=r&desc=true',
      'http://127.0.0.1:8888/a%40b/archive/api/contexts/files/tables/sub/a%20b/rows?sample=10000',
      'http://127.0.0.1:8888/a%40b/archive/api/jobs/7/results?sample=500'
    ]);
  });

  it('submits, cancels, deletes jobs and pages their results', async () => {
    const job = { id: 7, state: 'queued' };
    const { client, sent } = clientWith([201, job], [200, { ...job, state: 'canceling' }], [204, undefined], [200, { columns: [], data: [[1]], rows: 1, truncated: false }]);
    expect((await client.submitJob({ query: 'SELECT 1', context: 'DEMO' })).id).toBe(7);
    expect((await client.cancelJob(7)).state).toBe('canceling');
    await client.deleteJob(7);
    expect((await client.jobResults(7, 0, 10)).data).toEqual([[1]]);
    expect(sent.map(s => `${s.method} ${s.url.replace('http://127.0.0.1:8888/a%40b/archive/api/', '')}`)).toEqual([
      'POST jobs',
      'POST jobs/7/cancel',
      'DELETE jobs/7',
      'GET jobs/7/results?offset=0&limit=10'
    ]);
    expect(JSON.parse(sent[0].body!)).toEqual({ query: 'SELECT 1', context: 'DEMO' });
    expect(sent[0].headers.get('Content-Type')).toBe('application/json');
  });

  it('turns the archive error shape into an ArchiveError', async () => {
    const { client } = clientWith([404, { error: { code: 'not_found', message: 'no table Nope in DEMO' } }]);
    const err = await client.table('DEMO', 'Nope').catch(e => e);
    expect(err).toBeInstanceOf(ArchiveError);
    expect(err.status).toBe(404);
    expect(err.code).toBe('not_found');
    expect(err.message).toBe('no table Nope in DEMO');
  });

  it('reports a non-JSON error reply by its status', async () => {
    const { client } = clientWith([502, undefined]);
    const err = await client.jobs().catch(e => e);
    expect(err).toBeInstanceOf(ArchiveError);
    expect(err.status).toBe(502);
    expect(err.code).toBe('http');
  });
});
