/**
 * The plots' pure parts: which columns are RA/Dec, the histogram's counts (against a direct
 * count), the ticks, RA across 0°, and what the sample note says.
 */
import { describe, expect, it } from 'vitest';

import type { IColumn } from '../src/api';
import { binCount, histogram, raDecColumns, sampleNote, ticks, unwrapRa } from '../src/plot';
import notes from './sample_notes.json';

const col = (name: string, datatype = 'double', ucd?: string): IColumn => ({ name, datatype, ucd });

describe('raDecColumns', () => {
  it('finds the position by UCD, the main one first', () => {
    const cols = [col('objid', 'long'), col('ra_err', 'double', 'stat.error;pos.eq.ra'), col('alpha_x', 'double', 'pos.eq.ra;meta.main'),
      col('delta_x', 'double', 'pos.eq.dec;meta.main')];
    expect(raDecColumns(cols)).toEqual({ ra: 2, dec: 3 });
  });
  it('falls back to usual names, any case, numeric only', () => {
    expect(raDecColumns([col('RAJ2000'), col('x'), col('DEJ2000')])).toEqual({ ra: 0, dec: 2 });
    expect(raDecColumns([col('ra', 'char'), col('dec')])).toBeNull();
    expect(raDecColumns([col('r'), col('g')])).toBeNull();
  });
});

describe('histogram', () => {
  it('counts every value once, in equal bins with the last one closed (as numpy)', () => {
    let seed = 7;
    const rand = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
    for (let trial = 0; trial < 50; trial++) {
      const values = Array.from({ length: 1 + Math.floor(rand() * 500) }, () => Math.round((rand() * 40 - 20) * 100) / 100);
      const bins = binCount(values.length);
      const { edges, counts } = histogram(values, bins);
      expect(counts.reduce((a, b) => a + b, 0)).toBe(values.length);
      expect(edges).toHaveLength(bins + 1);
      const lo = Math.min(...values);
      const hi = Math.max(...values);
      if (lo < hi) {
        const width = (hi - lo) / bins;
        const want = new Array(bins).fill(0);
        values.forEach(v => want[Math.min(bins - 1, Math.floor((v - lo) / width))]++);
        expect(counts).toEqual(want);
        expect(counts[bins - 1]).toBeGreaterThan(0); // the maximum lands in the last bin
      }
    }
  });
  it('draws one value, or none', () => {
    expect(histogram([3, 3], 10).counts.reduce((a, b) => a + b)).toBe(2);
    expect(histogram([], 10)).toEqual({ edges: [], counts: [] });
  });
});

describe('ticks and RA', () => {
  it('gives round ticks inside the range', () => {
    expect(ticks(150, 160)).toEqual([150, 152, 154, 156, 158, 160]);
    const t = ticks(-0.37, 0.81);
    expect(t.every(v => v >= -0.37 && v <= 0.81)).toBe(true);
    expect(t).toContain(0);
  });
  it('keeps a field across RA 0 together', () => {
    expect(unwrapRa([359, 1, 0.5])).toEqual([-1, 1, 0.5]);
    expect(unwrapRa([150, 160])).toEqual([150, 160]);
  });
});

describe('sampleNote', () => {
  it('says when the plot shows only the first rows, and in which order', () => {
    expect(sampleNote(10000, 1234567, 10000)).toBe('first 10,000 of 1,234,567 rows (table order; not a random sample)');
    expect(sampleNote(10000, 20000, 10000, 'r', true)).toBe('first 10,000 of 20,000 rows (sorted by r, descending; not a random sample)');
    expect(sampleNote(500, 500, 10000)).toBe('all 500 rows');
    expect(sampleNote(10000, 30000, 10000, undefined, false, 'result order')).toBe('first 10,000 of 30,000 rows (result order; not a random sample)');
    expect(sampleNote(42, null, 10000)).toBe('all 42 rows');
    expect(sampleNote(10000, null, 10000)).toBe('first 10,000 rows (table order; not a random sample)');
  });

  it('says a random sample, of how many rows; the same words as the widgets (sample_notes.json)', () => {
    expect(sampleNote(10000, 1234567, 10000, undefined, false, 'table order', true)).toBe('random sample of 10,000 of 1,234,567 rows');
    expect(sampleNote(9000, 9000, 10000, undefined, false, 'result order', true)).toBe('all 9,000 rows');
    for (const c of notes.cases as { shown: number; total: number | null; limit: number; order?: string; desc?: boolean; sampled?: boolean; note: string }[]) {
      expect(sampleNote(c.shown, c.total, c.limit, c.order, c.desc ?? false, 'table order', c.sampled ?? false)).toBe(c.note);
    }
  });
});
