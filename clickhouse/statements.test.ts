/** One statement per request: what counts as a second statement, and what only looks like one. */
import { describe, expect, it } from 'vitest';
import { insertDataStart, secondStatementAt } from './statements.js';

describe('secondStatementAt', () => {
  it('finds a statement after a semicolon, whatever its case or the whitespace around it', () => {
    // An escaped backslash ends the literal: the ; after it is outside.
    expect(secondStatementAt("SELECT 'back\\\\'; DROP TABLE x")).toBe(15);
    expect(secondStatementAt('SELECT 1; DROP TABLE vcam.geo')).toBe(8);
    expect(secondStatementAt('select 1 ;\n\tdrop table x')).toBe(9);
    expect(secondStatementAt('SELECT 1;SELECT 2')).toBe(8);
    // After INSERT … VALUES chDB runs what follows, so VALUES is scanned like any SQL.
    expect(secondStatementAt("INSERT INTO t VALUES ('a'); DROP TABLE b")).toBe(26);
    expect(secondStatementAt('SELECT 1 -- note\n; DROP TABLE x')).toBe(17);
  });

  it('takes one statement with trailing semicolons, comments and blanks as one', () => {
    for (const sql of ['SELECT 1', 'SELECT 1;', 'SELECT 1;;  \n', 'SELECT 1; -- done', 'SELECT 1; /* end */ ', 'SELECT 1; # end']) expect(secondStatementAt(sql), sql).toBeUndefined();
  });

  it('does not see semicolons inside literals, quoted names or comments', () => {
    for (const sql of [
      "SELECT 'a;b'",
      "SELECT 'it''s; fine'",
      "SELECT 'back\\'; still' AS x",
      'SELECT 1 AS "a;b"',
      'SELECT 1 AS `a;b`',
      'SELECT 1 -- ; DROP TABLE x',
      'SELECT 1 /* ; DROP /* nested ; */ TABLE x */',
      "SELECT {p:String} WHERE x = ';'",
    ])
      expect(secondStatementAt(sql), sql).toBeUndefined();
  });

  it('does not scan the data of INSERT … FORMAT (the engine reads all of it as data)', () => {
    expect(secondStatementAt('INSERT INTO t FORMAT TSV\nrow;1\n; DROP TABLE a')).toBeUndefined();
    expect(secondStatementAt('INSERT INTO vcam.events (a, b) FORMAT JSONEachRow\n{"a":";"}\n')).toBeUndefined();
    // The word FORMAT in a literal is not where data begins.
    expect(secondStatementAt("INSERT INTO t SELECT 'FORMAT TSV'; DROP TABLE a")).toBe(33);
  });
});

describe('insertDataStart', () => {
  it('is just after the first FORMAT <name> of an INSERT, past literals and comments that mention one', () => {
    const head = "/* load */ INSERT INTO t (a) SETTINGS x = 'FORMAT TSV' -- FORMAT CSV\n FORMAT /* text */ JSONEachRow";
    expect(insertDataStart(`${head}\n{"a":"FORMAT Native"}\n`)).toBe(head.length);
    expect(insertDataStart('insert into t format TSV\nFORMAT\tRowBinary')).toBe('insert into t format TSV'.length);
  });

  it('is undefined for other statements, an INSERT without inline data, and words that only contain FORMAT', () => {
    for (const sql of ['SELECT 1 FORMAT JSON', "INSERT INTO t SELECT 'FORMAT TSV'", 'INSERT INTO t SELECT my_format AS FORMATS FROM x', 'INSERTS INTO t FORMAT TSV', "'INSERT' INTO t FORMAT TSV", 'INSERT INTO t FORMAT'])
      expect(insertDataStart(sql), sql).toBeUndefined();
  });
});
