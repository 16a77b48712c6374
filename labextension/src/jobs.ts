/**
 * The jobs list behind the sidebar: the user's jobs of every face, refreshed by a
 * `@lumino/polling` Poll so new jobs and progress appear without a reload. It polls fast while
 * a job is active, slowly when all are final, and stands by while the panel is hidden.
 */
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import type { ArchiveClient, IJob } from './api';

export const FINAL_STATES = new Set(['completed', 'failed', 'canceled']);

/** Poll intervals in milliseconds. */
export const ACTIVE_INTERVAL = 1000;
export const IDLE_INTERVAL = 4000;
/** The newest jobs the panel lists. */
export const LIST_LIMIT = 50;

export class JobsModel {
  private _jobs: IJob[] = [];
  private _total = 0;
  private _error: string | null = null;
  private _changed = new Signal<this, void>(this);
  private _poll: Poll;
  /** Set by the view: whether the panel is visible (the poll stands by when not). */
  visible: () => boolean = () => true;

  constructor(readonly client: ArchiveClient) {
    this._poll = new Poll({
      auto: false,
      factory: () => this.refresh(),
      frequency: { interval: IDLE_INTERVAL, backoff: false },
      name: 'jupyter-archive-service:jobs',
      // Rests while the panel is closed (it refreshes when shown) or the browser tab is hidden.
      standby: () => (this.visible() ? 'when-hidden' : true)
    });
  }

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  get jobs(): readonly IJob[] {
    return this._jobs;
  }

  /** How many jobs the user has in all (the list holds the newest `LIST_LIMIT`). */
  get total(): number {
    return this._total;
  }

  get error(): string | null {
    return this._error;
  }

  get poll(): Poll {
    return this._poll;
  }

  start(): void {
    void this._poll.start();
  }

  /** Fetch now (after a submit, cancel or delete) rather than at the next tick. */
  async refreshNow(): Promise<void> {
    await this._poll.refresh();
    await this._poll.tick;
  }

  async refresh(): Promise<void> {
    try {
      const { jobs, total } = await this.client.jobs(LIST_LIMIT);
      this._jobs = jobs;
      this._total = total;
      this._error = null;
    } catch (err) {
      this._error = (err as Error).message;
    }
    const interval = this._jobs.some(j => !FINAL_STATES.has(j.state)) ? ACTIVE_INTERVAL : IDLE_INTERVAL;
    if (this._poll.frequency.interval !== interval) {
      this._poll.frequency = { ...this._poll.frequency, interval };
    }
    this._changed.emit();
  }

  async cancel(id: number): Promise<void> {
    await this.client.cancelJob(id);
    await this.refreshNow();
  }

  async remove(id: number): Promise<void> {
    await this.client.deleteJob(id);
    await this.refreshNow();
  }

  dispose(): void {
    this._poll.dispose();
    Signal.clearData(this);
  }
}

/** "850 ms", "12.3 s", "4 min 05 s", "2 h 03 min": a job's elapsed time for humans. */
export function formatElapsed(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !isFinite(seconds) || seconds < 0) {
    return '';
  }
  if (seconds < 1) {
    return `${Math.round(seconds * 1000)} ms`;
  }
  if (seconds < 60) {
    return `${seconds.toFixed(1)} s`;
  }
  const m = Math.floor(seconds / 60);
  if (m < 60) {
    return `${m} min ${String(Math.floor(seconds % 60)).padStart(2, '0')} s`;
  }
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, '0')} min`;
}

/** A job's progress as a whole percentage (completed jobs are 100 whatever they reported). */
export function progressPercent(job: Pick<IJob, 'state' | 'progress'>): number {
  if (job.state === 'completed') {
    return 100;
  }
  const p = Number(job.progress) || 0;
  return Math.max(0, Math.min(100, Math.round(p * 100)));
}

/** What the job list says about a job in one line ("#12 query · DEMO"). */
export function jobTitle(job: IJob): string {
  const where = job.request?.context ? ` · ${job.request.context}` : '';
  return `#${job.id} ${job.kind}${where}`;
}

export function canCancel(job: IJob): boolean {
  return !FINAL_STATES.has(job.state) && job.state !== 'canceling';
}

export function canPreview(job: IJob): boolean {
  return job.state === 'completed';
}
