/**
 * The jobs list: polling through @lumino/polling picks up new jobs and speeds up while one is
 * active; cancel and delete go to the API and refresh at once; and the row texts.
 */
import { describe, expect, it } from 'vitest';

import type { IJob } from '../src/api';
import { ACTIVE_INTERVAL, canCancel, canPreview, formatElapsed, IDLE_INTERVAL, jobTitle, JobsModel, progressPercent } from '../src/jobs';
import { clientFor } from './http';

const job = (id: number, state: string, extra: Partial<IJob> = {}): IJob => ({
  id, owner: 'me', kind: 'query', face: 'native', state, request: { query: 'SELECT 1', context: 'DEMO' },
  submitted: 0, started: null, ended: null, progress: 0, rows: null, elapsed: null, error: null, ...extra
});

/** The jobs part of the native API over an in-memory list (at the HTTP boundary). */
class JobsServer {
  list: IJob[] = [];
  down = false;
  handle = (method: string, path: string): [number, unknown] => {
    if (this.down) {
      return [502, undefined];
    }
    const m = /^jobs\/(\d+)(\/cancel)?$/.exec(path.split('?')[0]);
    if (method === 'GET' && path.startsWith('jobs?')) {
      return [200, { jobs: this.list, total: this.list.length }];
    }
    if (m && method === 'POST' && m[2]) {
      this.list = this.list.map(j => (j.id === Number(m[1]) ? { ...j, state: 'canceled' } : j));
      return [200, this.list.find(j => j.id === Number(m[1]))];
    }
    if (m && method === 'DELETE') {
      this.list = this.list.filter(j => j.id !== Number(m[1]));
      return [204, undefined];
    }
    return [404, { error: { code: 'not_found', message: path } }];
  };
}

describe('JobsModel', () => {
  it('refreshes, adapts its poll interval and acts on jobs', async () => {
    const server = new JobsServer();
    const { client, sent } = clientFor(server.handle);
    const model = new JobsModel(client);
    let changes = 0;
    model.changed.connect(() => changes++);
    await model.refresh();
    expect(model.jobs).toEqual([]);
    expect(model.poll.frequency.interval).toBe(IDLE_INTERVAL);
    server.list = [job(2, 'running', { progress: 0.4 }), job(1, 'completed')];
    await model.refresh();
    expect(model.jobs.map(j => j.id)).toEqual([2, 1]);
    expect(model.total).toBe(2);
    expect(sent.at(-1)!.url).toMatch(/\/jobs\?limit=50$/);
    expect(model.poll.frequency.interval).toBe(ACTIVE_INTERVAL);
    model.start();
    await model.cancel(2);
    expect(sent.map(s => s.method + ' ' + s.url.split('/api/')[1])).toContain('POST jobs/2/cancel');
    expect(model.jobs[0].state).toBe('canceled');
    expect(model.poll.frequency.interval).toBe(IDLE_INTERVAL);
    await model.remove(1);
    expect(model.jobs.map(j => j.id)).toEqual([2]);
    expect(changes).toBeGreaterThanOrEqual(4);
    model.dispose();
  });

  it('keeps the last list and reports an error when the server fails', async () => {
    const server = new JobsServer();
    server.list = [job(1, 'completed')];
    const model = new JobsModel(clientFor(server.handle).client);
    await model.refresh();
    server.down = true;
    await model.refresh();
    expect(model.error).toMatch(/^502/);
    expect(model.jobs.map(j => j.id)).toEqual([1]);
    model.dispose();
  });
});

describe('job texts', () => {
  it('formats elapsed times', () => {
    expect(formatElapsed(null)).toBe('');
    expect(formatElapsed(0.25)).toBe('250 ms');
    expect(formatElapsed(12.34)).toBe('12.3 s');
    expect(formatElapsed(245)).toBe('4 min 05 s');
    expect(formatElapsed(7380)).toBe('2 h 03 min');
  });

  it('shows progress, title and allowed actions by state', () => {
    expect(progressPercent(job(1, 'running', { progress: 0.456 }))).toBe(46);
    expect(progressPercent(job(1, 'completed', { progress: 0 }))).toBe(100);
    expect(progressPercent(job(1, 'running', { progress: 3 }))).toBe(100);
    expect(jobTitle(job(12, 'queued'))).toBe('#12 query · DEMO');
    expect(canCancel(job(1, 'running'))).toBe(true);
    expect(canCancel(job(1, 'canceling'))).toBe(false);
    expect(canCancel(job(1, 'failed'))).toBe(false);
    expect(canPreview(job(1, 'completed'))).toBe(true);
    expect(canPreview(job(1, 'running'))).toBe(false);
  });
});
