/**
 * The tree model: what is shown when contexts and tables open, what a filter keeps, and where
 * the keyboard moves; plus the cell text "Query in notebook" inserts.
 */
import { describe, expect, it } from 'vitest';

import type { IContext, ITable } from '../src/api';
import { columnDetail, queryCell, TreeModel } from '../src/tree';

const ctx = (name: string): IContext => ({ name, path: '/' + name.toLowerCase(), kind: 'duckdb', readOnly: true, public: true });
const photo: ITable = {
  name: 'PhotoObj',
  context: 'DEMO',
  rows: 100000,
  columns: [
    { name: 'objid', datatype: 'long' },
    { name: 'ra', datatype: 'double', unit: 'deg', description: 'Right ascension' },
    { name: 'dec', datatype: 'double', unit: 'deg' }
  ]
};
const spec: ITable = { name: 'SpecObj', context: 'DEMO', rows: 5000, columns: [{ name: 'z', datatype: 'double' }] };

function model(): TreeModel {
  const m = new TreeModel();
  m.setContexts([ctx('DEMO'), ctx('MyDB')]);
  return m;
}

const keys = (m: TreeModel) => m.rows().map(r => r.key);

describe('TreeModel', () => {
  it('shows closed contexts first, tables sorted once a context opens, columns once a table opens', () => {
    const m = model();
    expect(keys(m)).toEqual(['DEMO', 'MyDB']);
    expect(m.unloadedContexts()).toEqual(['DEMO', 'MyDB']);
    m.setTables('DEMO', [spec, photo]);
    m.toggle('DEMO');
    expect(keys(m)).toEqual(['DEMO', 'DEMO/PhotoObj', 'DEMO/SpecObj', 'MyDB']);
    m.toggle('DEMO/PhotoObj');
    const rows = m.rows();
    expect(rows.map(r => r.key)).toEqual(['DEMO', 'DEMO/PhotoObj', 'DEMO/PhotoObj/objid', 'DEMO/PhotoObj/ra', 'DEMO/PhotoObj/dec', 'DEMO/SpecObj', 'MyDB']);
    expect(rows[1]).toMatchObject({ kind: 'table', depth: 1, expanded: true, table: 'PhotoObj', context: 'DEMO' });
    expect(rows[3]).toMatchObject({ kind: 'column', depth: 2, column: { unit: 'deg', description: 'Right ascension' } });
    m.toggle('DEMO');
    expect(keys(m)).toEqual(['DEMO', 'MyDB']);
  });

  it('filters by table or column name and opens the way to each match', () => {
    const m = model();
    m.setTables('DEMO', [photo, spec]);
    m.setTables('MyDB', [{ name: 'Bright', context: 'MyDB', rows: 3, columns: [{ name: 'objid', datatype: 'long' }] }]);
    m.setFilter('  SPEC ');
    expect(keys(m)).toEqual(['DEMO', 'DEMO/SpecObj']);
    m.setFilter('ra');
    expect(keys(m)).toEqual(['DEMO', 'DEMO/PhotoObj', 'DEMO/PhotoObj/ra']);
    m.setFilter('objid');
    expect(keys(m)).toEqual(['DEMO', 'DEMO/PhotoObj', 'DEMO/PhotoObj/objid', 'MyDB', 'MyDB/Bright', 'MyDB/Bright/objid']);
    m.setFilter('nothing-like-this');
    expect(keys(m)).toEqual([]);
    m.setFilter('');
    expect(keys(m)).toEqual(['DEMO', 'MyDB']);
  });

  it('a filter matching a context keeps all its tables', () => {
    const m = model();
    m.setTables('DEMO', [photo, spec]);
    m.setTables('MyDB', []);
    m.setFilter('demo');
    m.toggle('DEMO', true);
    expect(keys(m)).toEqual(['DEMO', 'DEMO/PhotoObj', 'DEMO/SpecObj']);
  });

  it('moves the keyboard focus through visible rows and up to parents', () => {
    const m = model();
    m.setTables('DEMO', [photo, spec]);
    m.toggle('DEMO');
    expect(m.step('DEMO', 'down')).toBe('DEMO/PhotoObj');
    expect(m.step('DEMO', 'up')).toBe('DEMO');
    expect(m.step('DEMO/SpecObj', 'down')).toBe('MyDB');
    expect(m.step('MyDB', 'down')).toBe('MyDB');
    expect(m.step(undefined, 'down')).toBe('DEMO');
    expect(m.step('DEMO/PhotoObj', 'first')).toBe('DEMO');
    expect(m.step('DEMO', 'last')).toBe('MyDB');
    expect(TreeModel.parentKey('DEMO/PhotoObj/ra', 'column')).toBe('DEMO/PhotoObj');
    expect(TreeModel.parentKey('DEMO/PhotoObj', 'table')).toBe('DEMO');
    expect(TreeModel.parentKey('DEMO', 'context')).toBeUndefined();
  });

  it('says "no tables" under an open empty context, and names the table a line is about', () => {
    const m = model();
    m.setTables('DEMO', [photo]);
    m.setTables('MyDB', []);
    m.toggle('MyDB');
    m.toggle('DEMO');
    m.toggle('DEMO/PhotoObj');
    expect(m.rows().at(-1)).toMatchObject({ kind: 'empty', key: 'MyDB/', label: 'no tables', depth: 1 });
    expect(TreeModel.parentKey('MyDB/', 'empty')).toBe('MyDB');
    expect(m.tableAt('DEMO/PhotoObj/ra')).toEqual({ context: 'DEMO', table: 'PhotoObj' });
    expect(m.tableAt('DEMO/PhotoObj')).toEqual({ context: 'DEMO', table: 'PhotoObj' });
    expect(m.tableAt('DEMO')).toBeUndefined();
    expect(m.tableAt(undefined)).toBeUndefined();
  });

  it('marks a context loading until its tables arrive', () => {
    const m = model();
    m.setLoading('DEMO', true);
    expect(m.rows()[0].loading).toBe(true);
    m.setTables('DEMO', []);
    expect(m.rows()[0].loading).toBe(false);
  });
});

describe('cell and column text', () => {
  it('writes a %%archive cell selecting the first 100 rows', () => {
    expect(queryCell('DEMO', 'PhotoObj')).toBe('%%archive --context DEMO\nSELECT TOP 100 * FROM PhotoObj');
    expect(queryCell('files', 'sub/stars.csv')).toBe('%%archive --context files\nSELECT TOP 100 * FROM "sub/stars.csv"');
  });

  it('describes a column by type and unit', () => {
    expect(columnDetail({ name: 'ra', datatype: 'double', unit: 'deg' })).toBe('double · deg');
    expect(columnDetail({ name: 'objid', datatype: 'long' })).toBe('long');
  });
});
