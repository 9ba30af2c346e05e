import { expect } from 'chai'
import fc from 'fast-check'
import { type Expression, Kysely, type SelectQueryBuilder, sql } from 'kysely'
import { ReplicatedMysqlDialect } from '../../src/index.js'
import type { Classification, ClassifyOptions } from '../../src/routing/classification.js'
import { classifyNode } from '../../src/routing/classify-node.js'
import { primaryFunctionSet } from '../../src/routing/primary-functions.js'
import { classifyRawSql } from '../../src/routing/raw-sql.js'
import { fakeMysqlNode } from '../support/fake-mysql.js'
import { offlineKysely } from './offline-kysely.js'

interface DB {
  a: { id: number; v: string }
  b: { id: number; a_id: number }
  c: { id: number; n: number }
}

type Table = keyof DB
type Lock =
  | 'forUpdate'
  | 'forShare'
  | 'forNoKeyUpdate'
  | 'forKeyShare'
  | 'rawForUpdate'
  | 'rawLockInShareMode'

/** A random select, as plain data: the oracle reads this, the builder renders it. */
interface Spec {
  table: Table
  lock: Lock | null
  fn: { name: string } | null
  /** A raw call, written whole or with its name split over two `sql.raw()` (`${sql.raw('get_')}${sql.raw('lock')}(...)`). */
  rawFn: { name: string; split: boolean } | null
  sub: Spec | null
  cte: { kind: 'select'; spec: Spec } | { kind: 'insert' | 'update' | 'delete' } | null
  union: Spec | null
}

const PRIMARY_FNS = {
  mysql: [
    'get_lock',
    'release_lock',
    'last_insert_id',
    'nextval',
    'setval',
    'is_free_lock',
    'app_bump',
  ],
  postgres: [
    'nextval',
    'setval',
    'pg_advisory_lock',
    'pg_try_advisory_xact_lock',
    'set_config',
    'txid_current',
    'app_bump',
  ],
}
const ORDINARY_FNS = [
  'coalesce',
  'lower',
  'upper',
  'abs',
  'concat',
  'length',
  'now',
  // Not primary-only, though they read the session.
  'connection_id',
  'current_setting',
  'pg_backend_pid',
]

const fnArb = fc.oneof(
  {
    arbitrary: fc
      .constantFrom(...new Set([...PRIMARY_FNS.mysql, ...PRIMARY_FNS.postgres]))
      .map((name) => ({ name })),
    weight: 1,
  },
  { arbitrary: fc.constantFrom(...ORDINARY_FNS).map((name) => ({ name })), weight: 3 },
)

/** `null` most of the time, so that reads (nothing anywhere) are generated often enough too. */
function rarely<T>(arb: fc.Arbitrary<T>, nullWeight: number): fc.Arbitrary<T | null> {
  return fc.oneof(
    { arbitrary: fc.constant(null), weight: nullWeight },
    { arbitrary: arb, weight: 1 },
  )
}

const { spec: specArb } = fc.letrec<{ spec: Spec }>((tie) => {
  const child = tie('spec') as fc.Arbitrary<Spec>
  return {
    spec: fc.record({
      table: fc.constantFrom<Table>('a', 'b', 'c'),
      lock: rarely(
        fc.constantFrom<Lock>(
          'forUpdate',
          'forShare',
          'forNoKeyUpdate',
          'forKeyShare',
          'rawForUpdate',
          'rawLockInShareMode',
        ),
        10,
      ),
      fn: rarely(fnArb, 2),
      rawFn: rarely(
        fc.tuple(fnArb, fc.boolean()).map(([f, split]) => ({ ...f, split })),
        6,
      ),
      sub: rarely(child, 4),
      cte: rarely(
        fc.oneof(
          { arbitrary: child.map((spec) => ({ kind: 'select' as const, spec })), weight: 3 },
          {
            arbitrary: fc.constantFrom(
              { kind: 'insert' as const },
              { kind: 'update' as const },
              { kind: 'delete' as const },
            ),
            weight: 1,
          },
        ),
        5,
      ),
      union: rarely(child, 6),
    }),
  }
})

/** The oracle: does anything in the tree require the primary? */
function mustUsePrimary(spec: Spec, primaryFns: readonly string[]): boolean {
  const isPrimary = (f: { name: string } | null) => f !== null && primaryFns.includes(f.name)
  return (
    spec.lock !== null ||
    isPrimary(spec.fn) ||
    isPrimary(spec.rawFn) ||
    (spec.sub !== null && mustUsePrimary(spec.sub, primaryFns)) ||
    (spec.cte !== null &&
      (spec.cte.kind !== 'select' || mustUsePrimary(spec.cte.spec, primaryFns))) ||
    (spec.union !== null && mustUsePrimary(spec.union, primaryFns))
  )
}

/** `lock in share mode` is MySQL syntax; PostgreSQL would reject it. */
function usesMysqlOnlySyntax(spec: Spec): boolean {
  return (
    spec.lock === 'rawLockInShareMode' ||
    (spec.sub !== null && usesMysqlOnlySyntax(spec.sub)) ||
    (spec.cte?.kind === 'select' && usesMysqlOnlySyntax(spec.cte.spec)) ||
    (spec.union !== null && usesMysqlOnlySyntax(spec.union))
  )
}

function render(db: Kysely<DB>, spec: Spec, depth = 0): SelectQueryBuilder<any, any, any> {
  let q: SelectQueryBuilder<any, any, any>
  const cteName = `cte${depth}`
  if (spec.cte !== null) {
    const cte = spec.cte
    const withDb = db.with(cteName, (qc) => {
      if (cte.kind === 'select')
        return render(qc as unknown as Kysely<DB>, cte.spec, depth + 1).select(
          sql<number>`1`.as('one'),
        )
      if (cte.kind === 'insert')
        return qc.insertInto('a').values({ id: 1, v: 'x' }).returning('id') as never
      if (cte.kind === 'update') return qc.updateTable('a').set({ v: 'y' }).returning('id') as never
      return qc.deleteFrom('a').returning('id') as never
    })
    q = (withDb as unknown as Kysely<DB>).selectFrom(spec.table).select('id')
  } else {
    q = db.selectFrom(spec.table).select('id')
  }
  if (spec.fn !== null) {
    const name = spec.fn.name
    q = q.select((eb) => eb.fn(name, [eb.val(1)]).as(`f${depth}`))
  }
  if (spec.rawFn !== null) {
    const { name, split } = spec.rawFn
    const call = split
      ? sql<number>`${sql.raw(name.slice(0, 3))}${sql.raw(name.slice(3))}(1)`
      : sql.raw<number>(`${name}('k')`)
    q = q.select(call.as(`r${depth}`))
  }
  if (spec.sub !== null) {
    const sub = render(db, spec.sub, depth + 1)
    q = q.where('id', 'in', sub as unknown as Expression<number>)
  }
  if (spec.union !== null) {
    q = q.union(render(db, spec.union, depth + 1) as never)
  }
  switch (spec.lock) {
    case 'forUpdate':
      q = q.forUpdate()
      break
    case 'forShare':
      q = q.forShare()
      break
    case 'forNoKeyUpdate':
      q = q.forNoKeyUpdate()
      break
    case 'forKeyShare':
      q = q.forKeyShare()
      break
    case 'rawForUpdate':
      q = q.modifyEnd(sql`for update`)
      break
    case 'rawLockInShareMode':
      q = q.modifyEnd(sql`lock in share mode`)
      break
  }
  return q
}

function offlineDb(flavor: 'mysql' | 'postgres'): Kysely<DB> {
  return offlineKysely<DB>(flavor)
}

describe('routing properties (fast-check over random builder queries)', () => {
  for (const flavor of ['mysql', 'postgres'] as const) {
    it(`[${flavor}] classifies a query as a read exactly when no lock, write or primary-only function is anywhere in its tree`, () => {
      const db = offlineDb(flavor)
      const options: ClassifyOptions = {
        flavor,
        primaryFunctions: primaryFunctionSet(flavor, ['app_bump']),
      }
      let writes = 0
      let reads = 0
      fc.assert(
        fc.property(specArb, (spec) => {
          if (flavor === 'postgres' && usesMysqlOnlySyntax(spec)) return
          const compiled = render(db, spec).compile()
          const result = classifyNode(compiled.query, compiled.sql, options)
          const expected = mustUsePrimary(spec, PRIMARY_FNS[flavor])
          if (expected) writes++
          else reads++
          expect(result.read, `${compiled.sql}\n${JSON.stringify(result)}`).to.equal(!expected)
        }),
        { numRuns: 600, seed: 20261122 },
      )
      // The generator must exercise both sides, or the property proves nothing.
      expect(writes).to.be.greaterThan(100)
      expect(reads).to.be.greaterThan(100)
    })
  }

  it('routes every generated query whose tree needs the primary to the primary, through the dialect', async () => {
    const primary = fakeMysqlNode('primary')
    const replica = fakeMysqlNode('replica-1')
    const routes: string[] = []
    const db = new Kysely<DB>({
      dialect: new ReplicatedMysqlDialect({
        primary: { pool: primary.pool },
        replicas: [{ name: 'replica-1', pool: replica.pool }],
        primaryFunctions: ['app_bump'],
        consistency: 'eventual',
        health: { probeIntervalMs: 0 },
        onRoute: (e) => routes.push(e.role),
      }),
    })
    try {
      await fc.assert(
        fc.asyncProperty(specArb, async (spec) => {
          routes.length = 0
          await render(db, spec).execute()
          expect(routes).to.deep.equal([
            mustUsePrimary(spec, PRIMARY_FNS.mysql) ? 'primary' : 'replica',
          ])
        }),
        { numRuns: 150, seed: 7 },
      )
    } finally {
      await db.destroy()
    }
  })
})

// ---- built statements and their raw twins ------------------------------------------------------

/** Functions the twins call: primary-only ones, session readers, a data changer, ordinary ones. */
const TWIN_FNS = [
  ...new Set([...PRIMARY_FNS.mysql, ...PRIMARY_FNS.postgres]),
  'row_count',
  'found_rows',
  'currval',
  'lastval',
  'lo_unlink',
  ...ORDINARY_FNS,
]

type Fn = { name: string; aggregate: boolean } | null
type Where = 'none' | 'id' | 'noop' | 'rawTrue'

/** A random statement of any kind the builder makes, as plain data. */
type Statement =
  | { kind: 'select'; spec: Spec; order: 'none' | 'asc' | 'desc'; rawEnd: string | null }
  | { kind: 'insert'; table: Table; fn: Fn; upsert: boolean; cte: Spec | null; dmlCte: boolean }
  | { kind: 'update'; table: Table; fn: Fn; where: Where; assign: boolean; dmlCte: boolean }
  | { kind: 'delete'; table: Table; where: Where; cte: Spec | null; returning: boolean }
  | { kind: 'merge'; table: Table }
  | { kind: 'schema'; which: 'create' | 'createTemporary' | 'createAs' | 'drop' | 'view' }

const twinFnArb: fc.Arbitrary<Fn> = rarely(
  fc.record({ name: fc.constantFrom(...TWIN_FNS), aggregate: fc.boolean() }),
  2,
)
const tableArb = fc.constantFrom<Table>('a', 'b', 'c')
const whereArb = fc.constantFrom<Where>('none', 'id', 'noop', 'rawTrue')

/** Raw end modifiers, split and whole: each must be read with the text around it. */
const RAW_ENDS = [
  'for update',
  'for share',
  'lock in share mode',
  'for update skip locked',
  'limit 1',
  'desc',
  'into @v',
]

const statementArb: fc.Arbitrary<Statement> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('select' as const),
      spec: specArb,
      order: fc.constantFrom('none' as const, 'asc' as const, 'desc' as const),
      rawEnd: rarely(fc.constantFrom(...RAW_ENDS), 4),
    }),
  },
  fc.record({
    kind: fc.constant('insert' as const),
    table: tableArb,
    fn: twinFnArb,
    upsert: fc.boolean(),
    cte: rarely(specArb, 2),
    dmlCte: fc.boolean(),
  }),
  fc.record({
    kind: fc.constant('update' as const),
    table: tableArb,
    fn: twinFnArb,
    where: whereArb,
    assign: fc.boolean(),
    dmlCte: fc.boolean(),
  }),
  fc.record({
    kind: fc.constant('delete' as const),
    table: tableArb,
    where: whereArb,
    cte: rarely(specArb, 2),
    returning: fc.boolean(),
  }),
  fc.record({ kind: fc.constant('merge' as const), table: tableArb }),
  fc.record({
    kind: fc.constant('schema' as const),
    which: fc.constantFrom(
      'create' as const,
      'createTemporary' as const,
      'createAs' as const,
      'drop' as const,
      'view' as const,
    ),
  }),
)

function callOf(fn: NonNullable<Fn>) {
  return (eb: any) =>
    fn.aggregate ? eb.fn.agg(fn.name, [eb.ref('id')]) : eb.fn(fn.name, [eb.val(1)])
}

function whereOf<Q extends { where: (...args: any[]) => Q }>(q: Q, where: Where): Q {
  switch (where) {
    case 'id':
      return q.where('id', '=', 1)
    case 'noop': // matches nothing: a no-op update or delete
      return q.where(sql<boolean>`1 = 0`)
    case 'rawTrue':
      return q.where(sql<boolean>`true`)
    default:
      return q
  }
}

/** `db.with(name, <the select of spec>)`, typed loosely. */
function withSelect(db: Kysely<DB>, name: string, spec: Spec): Kysely<DB> {
  return db.with(name, (qc) => render(qc as unknown as Kysely<DB>, spec)) as unknown as Kysely<DB>
}

function renderStatement(db: Kysely<DB>, st: Statement, flavor: 'mysql' | 'postgres') {
  switch (st.kind) {
    case 'select': {
      let q = render(db, st.spec)
      if (st.order !== 'none') q = q.orderBy('id', st.order)
      if (st.rawEnd !== null) {
        const [first, ...rest] = st.rawEnd.split(' ')
        // The first word as its own fragment: `sql\`${sql.raw('for')} update\``.
        q = q.modifyEnd(sql`${sql.raw(first!)} ${sql.raw(rest.join(' '))}`)
      }
      return q
    }
    case 'insert': {
      const base =
        st.cte !== null
          ? withSelect(db, 'src', st.cte)
          : st.dmlCte && flavor === 'postgres'
            ? (db.with('gone', (qc) => qc.deleteFrom('b').returning('id')) as unknown as Kysely<DB>)
            : db
      let q = base
        .insertInto(st.table)
        .values((st.fn === null ? { id: 1 } : { id: callOf(st.fn) }) as never)
      if (st.upsert) {
        q =
          flavor === 'mysql'
            ? q.onDuplicateKeyUpdate({ id: 2 } as never)
            : q.onConflict((oc) => oc.column('id').doUpdateSet({ id: 2 } as never))
      }
      return q
    }
    case 'update': {
      const base =
        st.dmlCte && flavor === 'postgres'
          ? (db.with('made', (qc) =>
              qc.insertInto('b').values({ id: 1, a_id: 1 }).returning('id'),
            ) as unknown as Kysely<DB>)
          : db
      const value =
        st.assign && flavor === 'mysql'
          ? sql`(@n := id + 1)`
          : st.fn !== null
            ? callOf(st.fn)
            : (eb: any) => eb.ref('id') // sets a column to itself: changes nothing
      return whereOf(base.updateTable(st.table).set({ id: value } as never), st.where)
    }
    case 'delete': {
      const base = st.cte !== null ? withSelect(db, 'keep', st.cte) : db
      const q = whereOf(base.deleteFrom(st.table), st.where)
      return st.returning && flavor === 'postgres' ? q.returning('id') : q
    }
    case 'merge':
      return db
        .mergeInto(st.table)
        .using('b', 'b.a_id', `${st.table}.id` as never)
        .whenMatched()
        .thenUpdateSet({ id: 2 } as never)
        .whenNotMatched()
        .thenInsertValues({ id: 3 } as never)
    case 'schema':
      switch (st.which) {
        case 'create':
          return db.schema.createTable('x').addColumn('id', 'integer', (c) => c.primaryKey())
        case 'createTemporary':
          return db.schema.createTable('x').temporary().addColumn('id', 'integer')
        case 'createAs':
          return db.schema.createTable('x').as(db.selectFrom('a').select('id'))
        case 'drop':
          return db.schema.dropTable('x').ifExists()
        default:
          return db.schema
            .createView('v')
            .temporary()
            .as(db.selectFrom('a').select('id').forUpdate())
      }
  }
}

/** Everything but the human-only detail. */
function machine(c: Classification): Omit<Classification, 'detail'> {
  const { detail: _, ...rest } = c
  return rest
}

describe('routing properties: a built statement and its raw twin classify alike', () => {
  for (const flavor of ['mysql', 'postgres'] as const) {
    it(`[${flavor}] gives the same read, reason, effect, pinsSession and readsSession for classifyNode and classifyRawSql of the compiled SQL`, () => {
      const db = offlineDb(flavor)
      const options: ClassifyOptions = {
        flavor,
        primaryFunctions: primaryFunctionSet(flavor, ['app_bump']),
      }
      const seen = new Set<string>()
      fc.assert(
        fc.property(statementArb, (st) => {
          const compiled = renderStatement(db, st, flavor).compile()
          const built = classifyNode(compiled.query, compiled.sql, options)
          const twin = classifyRawSql(compiled.sql, options)
          expect(machine(built), compiled.sql).to.deep.equal(machine(twin))
          seen.add(`${built.reason}/${built.effect}/${built.readsSession}`)
        }),
        { numRuns: 1500, seed: 20260214 },
      )
      // The generator must reach every reason and effect, or the property proves little.
      for (const outcome of [
        'read/none/false',
        'read/none/true',
        'locking-read/none/false',
        'primary-function/none/false',
        'primary-function/write/false',
        'write/insert/false',
        'write/update/true',
        'write/delete/false',
        'write/merge/false',
        'write/create-temporary/false',
        'write/ddl/false',
        'write/write/false',
      ]) {
        expect([...seen], `${outcome} in ${[...seen].join(', ')}`).to.include(outcome)
      }
    })
  }
})
