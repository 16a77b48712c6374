/**
 * Results as pictures: a sky plot (RA/Dec, coloured by a column) and a histogram of a numeric
 * column, drawn as SVG from rows the server paged. The pure parts (which columns hold the
 * position, the binning, the axis ticks, what the sample note says) are separate from the
 * drawing, so they can be tested without a browser. Only JupyterLab's theme variables colour
 * the axes, so every theme styles the plots.
 */
import type { IColumn } from './api';

/** The most rows a plot draws (one request); past it, a random sample of this many the server draws. */
export const PLOT_LIMIT = 10_000;

/** VOTable datatypes (json-table's `datatype`) that hold numbers. */
const NUMERIC = new Set(['double', 'float', 'long', 'int', 'short', 'unsignedByte']);

const RA_NAMES = ['ra', 'raj2000', 'ra_icrs', 's_ra', 'ra_deg', 'alpha', 'ra2000'];
const DEC_NAMES = ['dec', 'decl', 'dej2000', 'dec_icrs', 's_dec', 'dec_deg', 'delta', 'de2000', 'dec2000'];

export function isNumeric(c: IColumn): boolean {
  return NUMERIC.has(c.datatype);
}

/**
 * The indices of the RA and Dec columns: by UCD (`pos.eq.ra`/`pos.eq.dec`, the `meta.main` one
 * first), else by a usual name; null when the rows hold no position.
 */
export function raDecColumns(columns: IColumn[]): { ra: number; dec: number } | null {
  const byUcd = (word: string) => {
    const found = columns.map((c, i) => ({ c, i })).filter(({ c }) => isNumeric(c) && ucdWords(c).includes(word));
    return (found.find(({ c }) => ucdWords(c).includes('meta.main')) ?? found[0])?.i ?? -1;
  };
  const byName = (names: string[]) => {
    for (const n of names) {
      const i = columns.findIndex(c => isNumeric(c) && c.name.toLowerCase() === n);
      if (i >= 0) {
        return i;
      }
    }
    return -1;
  };
  let ra = byUcd('pos.eq.ra');
  let dec = byUcd('pos.eq.dec');
  if (ra < 0 || dec < 0) {
    ra = byName(RA_NAMES);
    dec = byName(DEC_NAMES);
  }
  return ra >= 0 && dec >= 0 ? { ra, dec } : null;
}

function ucdWords(c: IColumn): string[] {
  return (c.ucd ?? '').toLowerCase().split(';').map(w => w.trim());
}

/** A value as a finite number, or null (nulls, text, NaN). */
export function num(v: unknown): number | null {
  const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
  return Number.isFinite(n) ? n : null;
}

/**
 * What the plot shows, said honestly: all rows; a uniform random sample of them (`sampled`: the
 * server drew it, `sample=` of the rows endpoint); or, from a source that cannot sample, the first
 * `shown` in the order the server sent (the table's or the result's own order, or the sort the user
 * chose): not a random sample. The widgets say the same (jupyter_archive/widgets/plots.py
 * `sample_note`; both are tested on test/sample_notes.json).
 */
export function sampleNote(
  shown: number,
  total: number | null,
  limit: number,
  order?: string,
  desc = false,
  unsorted = 'table order',
  sampled = false
): string {
  const n = shown.toLocaleString('en-US');
  if (total !== null && shown >= total) {
    return `all ${n} rows`;
  }
  if (total === null && shown < limit) {
    return `all ${n} rows`;
  }
  const of = total !== null ? ` of ${total.toLocaleString('en-US')}` : '';
  if (sampled) {
    return `random sample of ${n}${of} rows`;
  }
  const how = order ? `sorted by ${order}${desc ? ', descending' : ''}` : unsorted;
  return `first ${n}${of} rows (${how}; not a random sample)`;
}

/** Equal-width bins over [min, max] (the last bin closed, as numpy's): edges and counts. */
export function histogram(values: number[], bins: number): { edges: number[]; counts: number[] } {
  if (!values.length) {
    return { edges: [], counts: [] };
  }
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  if (lo === hi) {
    lo -= 0.5;
    hi += 0.5;
  }
  const width = (hi - lo) / bins;
  const edges = Array.from({ length: bins + 1 }, (_, i) => (i === bins ? hi : lo + i * width));
  const counts = new Array<number>(bins).fill(0);
  for (const v of values) {
    counts[Math.min(bins - 1, Math.floor((v - lo) / width))]++;
  }
  return { edges, counts };
}

/** How many bins: Sturges' rule on the rows shown, between 10 and 50. */
export function binCount(n: number): number {
  return Math.max(10, Math.min(50, Math.ceil(Math.log2(Math.max(1, n)) + 1)));
}

/** About `count` round tick values covering [lo, hi]. */
export function ticks(lo: number, hi: number, count = 6): number[] {
  if (!(hi > lo)) {
    return [lo];
  }
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map(m => m * mag).find(s => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) {
    out.push(Math.abs(t) < step * 1e-9 ? 0 : Number(t.toPrecision(12)));
  }
  return out;
}

/**
 * RA values to plot: kept in [0, 360) unless the points straddle 0°, where [-180, 180) keeps
 * them together (a field at RA 359°..1° is 2° wide, not 358°).
 */
export function unwrapRa(ra: number[]): number[] {
  const span = (xs: number[]) => Math.max(...xs) - Math.min(...xs);
  const plain = ra.map(r => ((r % 360) + 360) % 360);
  const shifted = plain.map(r => (r >= 180 ? r - 360 : r));
  return ra.length && span(shifted) < span(plain) ? shifted : plain;
}

// Viridis at five stops: readable on light and dark backgrounds, and in grey.
const VIRIDIS = [
  [68, 1, 84],
  [59, 82, 139],
  [33, 145, 140],
  [94, 201, 98],
  [253, 231, 37]
];

/** The colour of `t` in [0, 1] on the scale. */
export function colour(t: number): string {
  const x = Math.max(0, Math.min(1, t)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(x));
  const f = x - i;
  const c = VIRIDIS[i].map((v, k) => Math.round(v + (VIRIDIS[i + 1][k] - v) * f));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

const W = 640;
const H = 440;
const M = { left: 64, right: 90, top: 34, bottom: 48 };

/** The sky plot: one circle per row with a position; RA grows to the left, as on the sky. */
export function skyPlot(columns: IColumn[], data: unknown[][], pos: { ra: number; dec: number }, by: number | null, note: string): SVGSVGElement {
  const rows = data.filter(r => num(r[pos.ra]) !== null && num(r[pos.dec]) !== null);
  const ra = unwrapRa(rows.map(r => num(r[pos.ra]) as number));
  const dec = rows.map(r => num(r[pos.dec]) as number);
  const svg = frame(note, 'jp-ArchivePlot-sky');
  if (!rows.length) {
    return svg;
  }
  const [x0, x1] = padded(Math.min(...ra), Math.max(...ra));
  const [y0, y1] = padded(Math.min(...dec), Math.max(...dec));
  // Right ascension increases to the left: x1 at the left edge.
  const sx = (v: number) => M.left + ((x1 - v) / (x1 - x0)) * (W - M.left - M.right);
  const sy = (v: number) => H - M.bottom - ((v - y0) / (y1 - y0)) * (H - M.top - M.bottom);
  axes(svg, ticks(x0, x1).map(t => [sx(t), fmt(((t % 360) + 360) % 360)]), ticks(y0, y1).map(t => [sy(t), fmt(t)]),
    label(columns[pos.ra]), label(columns[pos.dec]));
  const cv = by === null ? [] : rows.map(r => num(r[by]));
  const known = cv.filter((v): v is number => v !== null);
  const [c0, c1] = known.length ? [Math.min(...known), Math.max(...known)] : [0, 1];
  const g = el('g', { class: 'jp-ArchivePlot-points' });
  rows.forEach((_, i) => {
    const v = by === null ? null : cv[i];
    // Theme variables belong in CSS (style), not in SVG presentation attributes.
    const fill = by === null ? 'var(--jp-brand-color1)' : v === null ? 'var(--jp-layout-color4)' : colour(c1 > c0 ? (v - c0) / (c1 - c0) : 0.5);
    g.appendChild(el('circle', { cx: sx(ra[i]).toFixed(1), cy: sy(dec[i]).toFixed(1), r: '1.6', style: `fill: ${fill}` }));
  });
  svg.appendChild(g);
  if (by !== null && known.length) {
    colourBar(svg, c0, c1, label(columns[by]));
  }
  return svg;
}

/** The histogram of one numeric column: one bar per non-empty bin. */
export function histogramPlot(column: IColumn, values: number[], note: string): SVGSVGElement {
  const svg = frame(note, 'jp-ArchivePlot-histogram');
  if (!values.length) {
    return svg;
  }
  const { edges, counts } = histogram(values, binCount(values.length));
  const x0 = edges[0];
  const x1 = edges[edges.length - 1];
  const top = Math.max(...counts);
  const sx = (v: number) => M.left + ((v - x0) / (x1 - x0)) * (W - M.left - M.right);
  const sy = (v: number) => H - M.bottom - (v / top) * (H - M.top - M.bottom);
  axes(svg, ticks(x0, x1).map(t => [sx(t), fmt(t)]), ticks(0, top, 5).map(t => [sy(t), fmt(t)]), label(column), 'rows');
  const g = el('g', { class: 'jp-ArchivePlot-bars' });
  counts.forEach((n, i) => {
    if (n > 0) {
      const bar = el('rect', {
        x: sx(edges[i]).toFixed(1),
        y: sy(n).toFixed(1),
        width: Math.max(0.5, sx(edges[i + 1]) - sx(edges[i]) - 1).toFixed(1),
        height: (sy(0) - sy(n)).toFixed(1),
        'data-count': String(n)
      });
      const tip = el('title', {});
      tip.textContent = `${fmt(edges[i])} – ${fmt(edges[i + 1])}: ${n.toLocaleString('en-US')} rows`;
      bar.appendChild(tip);
      g.appendChild(bar);
    }
  });
  svg.appendChild(g);
  return svg;
}

function label(c: IColumn): string {
  return c.unit ? `${c.name} [${c.unit}]` : c.name;
}

function padded(lo: number, hi: number): [number, number] {
  const pad = hi > lo ? (hi - lo) * 0.03 : 0.5;
  return [lo - pad, hi + pad];
}

function fmt(v: number): string {
  return Math.abs(v) >= 1e5 || (v !== 0 && Math.abs(v) < 1e-3) ? v.toExponential(2) : String(Number(v.toPrecision(6)));
}

const SVG_NS = 'http://www.w3.org/2000/svg';

function el(tag: string, attrs: Record<string, string>): SVGElement {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) {
    e.setAttribute(k, v);
  }
  return e;
}

function text(x: number, y: number, s: string, attrs: Record<string, string> = {}): SVGElement {
  const t = el('text', { x: x.toFixed(1), y: y.toFixed(1), ...attrs });
  t.textContent = s;
  return t;
}

/** An empty plot with its note on top (the note is the plot's first text). */
function frame(note: string, cls: string): SVGSVGElement {
  const svg = el('svg', { class: `jp-ArchivePlot ${cls}`, viewBox: `0 0 ${W} ${H}`, role: 'img' }) as SVGSVGElement;
  svg.setAttribute('aria-label', note);
  svg.appendChild(text(M.left, 18, note, { class: 'jp-ArchivePlot-note' }));
  return svg;
}

function axes(svg: SVGSVGElement, xt: [number, string][], yt: [number, string][], xLabel: string, yLabel: string): void {
  const g = el('g', { class: 'jp-ArchivePlot-axes' });
  const bottom = H - M.bottom;
  g.appendChild(el('rect', { x: String(M.left), y: String(M.top), width: String(W - M.left - M.right), height: String(bottom - M.top), fill: 'none' }));
  for (const [x, s] of xt) {
    g.appendChild(el('line', { x1: x.toFixed(1), x2: x.toFixed(1), y1: String(bottom), y2: String(bottom + 4) }));
    g.appendChild(text(x, bottom + 16, s, { 'text-anchor': 'middle', class: 'jp-ArchivePlot-xtick' }));
  }
  for (const [y, s] of yt) {
    g.appendChild(el('line', { x1: String(M.left - 4), x2: String(M.left), y1: y.toFixed(1), y2: y.toFixed(1) }));
    g.appendChild(text(M.left - 6, y + 4, s, { 'text-anchor': 'end' }));
  }
  g.appendChild(text((M.left + W - M.right) / 2, H - 10, xLabel, { 'text-anchor': 'middle', class: 'jp-ArchivePlot-label' }));
  g.appendChild(text(14, (M.top + bottom) / 2, yLabel, {
    'text-anchor': 'middle',
    class: 'jp-ArchivePlot-label',
    transform: `rotate(-90 14 ${(M.top + bottom) / 2})`
  }));
  svg.appendChild(g);
}

function colourBar(svg: SVGSVGElement, lo: number, hi: number, name: string): void {
  const g = el('g', { class: 'jp-ArchivePlot-colourbar' });
  const x = W - M.right + 18;
  const steps = 24;
  const h = (H - M.top - M.bottom) / steps;
  for (let i = 0; i < steps; i++) {
    g.appendChild(el('rect', { x: String(x), y: (M.top + (steps - 1 - i) * h).toFixed(1), width: '12', height: (h + 0.5).toFixed(1), fill: colour((i + 0.5) / steps) }));
  }
  g.appendChild(text(x + 16, M.top + 8, fmt(hi)));
  g.appendChild(text(x + 16, H - M.bottom, fmt(lo)));
  g.appendChild(text(x, M.top - 6, name, { class: 'jp-ArchivePlot-label' }));
  svg.appendChild(g);
}
