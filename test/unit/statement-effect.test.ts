import { expect } from 'chai'
import type { ClassifyOptions, SqlFlavor } from '../../src/routing/classification.js'
import { primaryFunctionSet } from '../../src/routing/primary-functions.js'
import { classifyRawSql } from '../../src/routing/raw-sql.js'
import { changesData, type StatementEffect } from '../../src/routing/statement-effect.js'

const OPTIONS: Record<SqlFlavor, ClassifyOptions> = {
  mysql: { flavor: 'mysql', primaryFunctions: primaryFunctionSet('mysql', ['app_bump']) },
  postgres: { flavor: 'postgres', primaryFunctions: primaryFunctionSet('postgres', ['app_bump']) },
}

describe('changesData', () => {
  it('says that statements without a data effect change nothing, whatever the rows', () => {
    for (const effect of ['none', 'create-temporary'] as const) {
      expect(changesData({ effect }, {}), effect).to.equal(false)
      expect(changesData({ effect }, { numAffectedRows: 5n }), effect).to.equal(false)
    }
  })

  it('says that DML which affected no row changed nothing', () => {
    for (const effect of ['insert', 'update', 'delete', 'merge'] as const) {
      expect(changesData({ effect }, { numAffectedRows: 0n }), effect).to.equal(false)
      expect(changesData({ effect }, { numAffectedRows: 2n }), effect).to.equal(true)
    }
  })

  it('says that an update which matched rows but changed none changed nothing', () => {
    expect(changesData({ effect: 'update' }, { numAffectedRows: 3n, numChangedRows: 0n })).to.equal(
      false,
    )
    expect(changesData({ effect: 'update' }, { numAffectedRows: 3n, numChangedRows: 1n })).to.equal(
      true,
    )
    // numChangedRows only speaks for updates (MySQL reports it for other statements too).
    expect(changesData({ effect: 'insert' }, { numAffectedRows: 1n, numChangedRows: 0n })).to.equal(
      true,
    )
  })

  it('counts DML without row counts as a change: a missing count proves nothing', () => {
    for (const effect of ['insert', 'update', 'delete', 'merge'] as const) {
      expect(changesData({ effect }, {}), effect).to.equal(true)
    }
  })

  it('counts ddl, other writes and unknown statements as changes, even with zero rows', () => {
    for (const effect of ['ddl', 'write', 'unknown'] as const) {
      expect(changesData({ effect }, { numAffectedRows: 0n, numChangedRows: 0n }), effect).to.equal(
        true,
      )
    }
  })
})

describe('statement effects of raw SQL', () => {
  const CASES: ReadonlyArray<readonly [SqlFlavor | 'both', string, StatementEffect]> = [
    ['both', 'select * from t', 'none'],
    ['both', 'select * from t for update', 'none'],
    ['mysql', 'select get_lock(?, 1)', 'none'],
    ['postgres', "select nextval('s')", 'none'],
    ['both', 'select app_bump(1)', 'write'],
    ['postgres', 'select lo_unlink(42)', 'write'],
    ['both', 'set @x = 1', 'none'],
    ['mysql', 'select a from t into @x', 'none'],
    ['mysql', 'select a from t into outfile "/tmp/x"', 'write'],
    ['mysql', 'use app', 'none'],
    ['mysql', 'lock tables t write', 'none'],
    ['both', 'prepare s from ?', 'none'],
    ['both', 'execute s', 'write'],
    ['both', 'begin', 'none'],
    ['both', 'commit', 'none'],
    ['both', 'savepoint a', 'none'],
    ['both', 'insert into t values (1)', 'insert'],
    ['mysql', 'replace into t values (1)', 'insert'],
    ['mysql', 'insert into t values (1) on duplicate key update a = 2', 'insert'],
    ['postgres', 'insert into t values (1) on conflict (id) do update set a = 2', 'insert'],
    ['both', 'update t set a = 1', 'update'],
    ['both', 'delete from t', 'delete'],
    ['both', 'merge into t using u on t.id = u.id when matched then update set a = 1', 'merge'],
    ['both', 'create temporary table x (id int)', 'create-temporary'],
    ['postgres', 'select * into temp x from t', 'create-temporary'],
    ['postgres', 'select * into x from t', 'ddl'],
    ['both', 'create table x (id int)', 'ddl'],
    ['both', 'alter table x add column y int', 'ddl'],
    ['both', 'drop table x', 'ddl'],
    ['both', 'truncate table x', 'ddl'],
    ['mysql', 'rename table x to y', 'ddl'],
    ['both', 'grant select on t to u', 'ddl'],
    ['mysql', "load data infile 'x' into table t", 'write'],
    ['postgres', 'copy t from stdin', 'write'],
    ['postgres', 'copy t to stdout', 'none'],
    ['both', 'call p()', 'write'],
    ['postgres', 'do $$ begin perform 1; end $$', 'write'],
    ['postgres', 'vacuum t', 'write'],
    ['postgres', 'refresh materialized view v', 'write'],
    ['postgres', "notify c, 'x'", 'none'],
    ['both', 'frobnicate t', 'unknown'],
    ['both', '', 'unknown'],
    // Several data-changing parts: no single row count speaks for all of them.
    ['postgres', 'with d as (delete from t returning *) insert into u select * from d', 'write'],
    ['both', 'update a set x = 1; update b set y = 2', 'write'],
    ['both', 'create temporary table x (id int); insert into t values (1)', 'write'],
    ['both', 'update t set n = app_bump(n)', 'write'],
    // One data-changing part among others that change nothing.
    ['both', 'select 1; delete from t; select 2', 'delete'],
    ['postgres', 'with d as (delete from t returning *) select * from d', 'delete'],
    [
      'postgres',
      'with m as (merge into t using u on t.id = u.id when matched then update set a = 1 when not matched then insert values (1) returning *) select * from m',
      'merge',
    ],
    ['mysql', 'explain delete from t', 'none'],
    ['postgres', 'explain (analyze) delete from t', 'delete'],
    ['mysql', 'analyze delete from t', 'delete'],
    ['both', 'select 1; frobnicate', 'unknown'],
  ]
  for (const [which, sql, effect] of CASES) {
    for (const flavor of which === 'both' ? (['mysql', 'postgres'] as const) : [which]) {
      it(`[${flavor}] ${JSON.stringify(sql)} -> ${effect}`, () => {
        expect(classifyRawSql(sql, OPTIONS[flavor]).effect).to.equal(effect)
      })
    }
  }
})
