import { expect } from 'chai'
import {
  type CompiledQuery,
  type DatabaseConnection,
  DummyDriver,
  type Kysely,
  type QueryResult,
  sql,
} from 'kysely'
import {
  type Classification,
  type ClassifyOptions,
  READ_OF_SESSION,
  type SqlFlavor,
} from '../../src/routing/classification.js'
import { classifyNode } from '../../src/routing/classify-node.js'
import { primaryFunctionSet } from '../../src/routing/primary-functions.js'
import { classifyRawSql } from '../../src/routing/raw-sql.js'
import { offlineKysely } from './offline-kysely.js'

interface DB {
  t: { id: number; v: string; n: number }
  u: { id: number; t_id: number }
}

const OPTIONS: Record<SqlFlavor, ClassifyOptions> = {
  mysql: { flavor: 'mysql', primaryFunctions: primaryFunctionSet('mysql', ['app_bump']) },
  postgres: { flavor: 'postgres', primaryFunctions: primaryFunctionSet('postgres', ['app_bump']) },
}

/** A Kysely that compiles for `flavor` and records what it would have executed. */
function offline(flavor: SqlFlavor): { db: Kysely<DB>; executed: CompiledQuery[] } {
  const executed: CompiledQuery[] = []
  const connection: DatabaseConnection = {
    executeQuery: async <R>(query: CompiledQuery): Promise<QueryResult<R>> => {
      executed.push(query)
      return { rows: [] }
    },
    streamQuery: async function* () {},
  }
  class RecordingDriver extends DummyDriver {
    override async acquireConnection(): Promise<DatabaseConnection> {
      return connection
    }
  }
  const db = offlineKysely<DB>(flavor, () => new RecordingDriver())
  return { db, executed }
}

const DBS = { mysql: offline('mysql').db, postgres: offline('postgres').db }

/** Classifies a compiled builder query, and checks that its raw twin classifies alike. */
function classifyBuilt(compiled: CompiledQuery, flavor: SqlFlavor): Classification {
  const built = classifyNode(compiled.query, compiled.sql, OPTIONS[flavor])
  const { detail: _a, ...machine } = built
  const { detail: _b, ...twin } = classifyRawSql(compiled.sql, OPTIONS[flavor])
  expect(twin, `raw twin of ${compiled.sql}`).to.deep.equal(machine)
  return built
}

function built(
  flavor: SqlFlavor,
  build: (db: Kysely<DB>) => { compile(): CompiledQuery },
): Classification {
  return classifyBuilt(build(DBS[flavor]).compile(), flavor)
}

describe('classifyNode', () => {
  for (const flavor of ['mysql', 'postgres'] as const) {
    describe(flavor, () => {
      it('gives each data-modifying statement its effect', () => {
        expect(
          built(flavor, (db) => db.insertInto('t').values({ id: 1, v: 'a', n: 0 })),
        ).to.include({
          read: false,
          reason: 'write',
          effect: 'insert',
          pinsSession: true,
          detail: 'insert',
        })
        expect(
          built(flavor, (db) => db.updateTable('t').set({ v: 'b' }).where('id', '=', 1)),
        ).to.include({ reason: 'write', effect: 'update', pinsSession: false, detail: 'update' })
        expect(built(flavor, (db) => db.deleteFrom('t').where('id', '=', 1))).to.include({
          reason: 'write',
          effect: 'delete',
          detail: 'delete',
        })
        expect(
          built(flavor, (db) =>
            db
              .mergeInto('t')
              .using('u', 'u.t_id', 't.id')
              .whenMatched()
              .thenUpdateSet({ v: 'x' })
              .whenNotMatched()
              .thenInsertValues({ id: 1, v: 'y', n: 0 }),
          ),
          // MERGE's THEN UPDATE / THEN INSERT belong to it: one part, not three
        ).to.include({ reason: 'write', effect: 'merge', detail: 'merge' })
      })

      it('classifies an update or delete that changes nothing like any other (rows decide later)', () => {
        expect(
          built(flavor, (db) =>
            db
              .updateTable('t')
              .set((eb) => ({ v: eb.ref('v') }))
              .where(sql<boolean>`false`),
          ),
        ).to.include({ effect: 'update', reason: 'write' })
        expect(built(flavor, (db) => db.deleteFrom('t').where('id', 'in', []))).to.include({
          effect: 'delete',
        })
      })

      it('tells temporary tables and views from other schema changes', () => {
        expect(
          built(flavor, (db) =>
            db.schema.createTable('tmp').temporary().addColumn('id', 'integer'),
          ),
        ).to.include({
          reason: 'write',
          effect: 'create-temporary',
          pinsSession: true,
          detail: 'create temporary table',
        })
        expect(
          built(flavor, (db) =>
            db.schema.createView('v').temporary().as(db.selectFrom('t').selectAll()),
          ),
        ).to.include({
          effect: 'create-temporary',
          pinsSession: true,
          detail: 'create temporary view',
        })
        for (const build of [
          (db: Kysely<DB>) => db.schema.createTable('x').addColumn('id', 'integer'),
          (db: Kysely<DB>) => db.schema.dropTable('x'),
          (db: Kysely<DB>) => db.schema.alterTable('x').addColumn('y', 'integer'),
          (db: Kysely<DB>) => db.schema.createIndex('i').on('t').column('v'),
        ]) {
          expect(built(flavor, build)).to.include({
            reason: 'write',
            effect: 'ddl',
            pinsSession: false,
            detail: 'ddl',
          })
        }
      })

      it('counts a data-modifying CTE as the effect of a select, and two data-changing parts as a write', () => {
        if (flavor === 'mysql') return // no data-modifying CTEs in MySQL
        const cte = built(flavor, (db) =>
          db
            .with('d', (qb) => qb.deleteFrom('t').where('id', '=', 1).returning('id'))
            .selectFrom('d')
            .selectAll(),
        )
        expect(cte).to.include({
          reason: 'write',
          effect: 'delete',
          pinsSession: false,
          detail: 'delete in a subquery',
        })
        // PostgreSQL reports the insert's row count only: no count may say nothing changed.
        const two = built(flavor, (db) =>
          db
            .with('d', (qb) => qb.deleteFrom('t').where('id', '=', 1).returning(['id', 'v', 'n']))
            .insertInto('t')
            .expression((eb) => eb.selectFrom('d').selectAll()),
        )
        expect(two).to.include({
          reason: 'write',
          effect: 'write',
          pinsSession: true,
          detail: 'insert',
        })
      })

      it('routes a SELECT with a locking clause to the primary without an effect', () => {
        expect(built(flavor, (db) => db.selectFrom('t').selectAll().forUpdate())).to.deep.equal({
          read: false,
          reason: 'locking-read',
          effect: 'none',
          pinsSession: false,
          readsSession: false,
          detail: 'for update',
        })
      })

      it('reports the weightiest reason whatever the order: a write before a lock before a function', () => {
        if (flavor === 'mysql') return
        const result = built(flavor, (db) =>
          db
            .with('i', (qb) => qb.insertInto('u').values({ id: 1, t_id: 1 }).returning('id'))
            .selectFrom('t')
            .select((eb) => eb.fn('pg_advisory_lock', [eb.lit(1)]).as('l'))
            .forUpdate(),
        )
        expect(result).to.include({ reason: 'write', effect: 'insert', pinsSession: true })
      })

      it('counts a call of an application function as a data change, and of a lock function as none', () => {
        expect(
          built(flavor, (db) => db.selectNoFrom((eb) => eb.fn('app_bump', [eb.lit(1)]).as('x'))),
        ).to.include({ reason: 'primary-function', effect: 'write', pinsSession: false })
        const lock = flavor === 'mysql' ? 'get_lock' : 'pg_advisory_lock'
        expect(
          built(flavor, (db) => db.selectNoFrom((eb) => eb.fn(lock, [eb.lit(1)]).as('x'))),
        ).to.include({
          reason: 'primary-function',
          effect: 'none',
          pinsSession: true,
          detail: lock,
        })
        // With a data-modifying statement it is a second part.
        expect(
          built(flavor, (db) =>
            db.updateTable('t').set((eb) => ({ n: eb.fn('app_bump', [eb.ref('n')]) })),
          ),
        ).to.include({ reason: 'write', effect: 'write' })
      })

      it('finds primary-only functions called as aggregates', () => {
        expect(
          built(flavor, (db) =>
            db.selectFrom('t').select((eb) => eb.fn.agg<number>('app_bump', ['n']).as('x')),
          ),
        ).to.include({ read: false, reason: 'primary-function', detail: 'app_bump' })
      })

      it('marks calls that read the session as readsSession, reads staying reads', () => {
        const identity = flavor === 'mysql' ? 'connection_id' : 'pg_backend_pid'
        expect(
          built(flavor, (db) => db.selectNoFrom((eb) => eb.fn(identity).as('id'))),
        ).to.deep.equal(READ_OF_SESSION)
        const previous = flavor === 'mysql' ? 'row_count' : 'lastval'
        expect(built(flavor, (db) => db.selectNoFrom((eb) => eb.fn(previous).as('n')))).to.include({
          read: false,
          reason: 'primary-function',
          readsSession: true,
        })
        if (flavor === 'postgres') {
          expect(
            built(flavor, (db) =>
              db.selectNoFrom((eb) => eb.fn('current_setting', [sql.lit('search_path')]).as('s')),
            ),
          ).to.include({ read: true, readsSession: true })
        }
      })

      it('reads a keyword split across raw fragments from the whole text', () => {
        // Each fragment alone says nothing; together they lock, or call a primary-only function.
        const lock =
          flavor === 'mysql' ? sql`lock ${sql.raw('in')} share mode` : sql`for ${sql.raw('share')}`
        expect(built(flavor, (db) => db.selectFrom('t').selectAll().modifyEnd(lock))).to.include({
          read: false,
          reason: 'locking-read',
        })
        expect(
          built(flavor, (db) =>
            db
              .selectFrom('t')
              .selectAll()
              .modifyEnd(sql`for ${sql.raw('update')}`),
          ),
        ).to.include({ read: false, reason: 'locking-read', effect: 'none', detail: 'for update' })
        expect(
          built(flavor, (db) =>
            db.selectFrom('t').selectAll().modifyEnd(sql.raw('for')).modifyEnd(sql.raw('update')),
          ),
        ).to.include({ read: false, reason: 'locking-read' })
        const fn = flavor === 'mysql' ? 'get_lock' : 'pg_advisory_lock'
        const [head, tail] = [fn.slice(0, 4), fn.slice(4)]
        expect(
          built(flavor, (db) =>
            db.selectFrom('t').select(sql`${sql.raw(head)}${sql.raw(tail)}(${1})`.as('l')),
          ),
        ).to.include({ read: false, reason: 'primary-function', detail: fn })
        // A parameter or an identifier between the words.
        expect(
          built(flavor, (db) =>
            db
              .selectFrom('t')
              .select(sql<number>`${sql.ref('n')} + ${1}`.as('x'))
              .modifyEnd(sql`for ${sql.raw('update')} of ${sql.table('t')}`),
          ),
        ).to.include({ read: false, reason: 'locking-read' })
      })

      it('keeps a query whose only raw SQL is an order direction a read', () => {
        expect(
          built(flavor, (db) =>
            db.selectFrom('t').selectAll().orderBy('id', 'desc').orderBy('v', 'asc'),
          ),
        ).to.deep.equal({
          read: true,
          reason: 'read',
          effect: 'none',
          pinsSession: false,
          readsSession: false,
        })
      })

      it('reads a function name that holds SQL text from the text', () => {
        const name = 'coalesce(1) for update, abs'
        expect(
          built(flavor, (db) =>
            db.selectFrom('t').select((eb) => eb.fn(name, [eb.lit(1)]).as('x')),
          ),
        ).to.include({ read: false, reason: 'locking-read' })
      })

      it('classifies explain() queries from their text: planned, or executed with ANALYZE', async () => {
        const { db, executed } = offline(flavor)
        await db.deleteFrom('t').where('id', '=', 1).explain()
        await db.insertInto('t').values({ id: 1, v: 'a', n: 1 }).explain()
        await db.selectFrom('t').selectAll().explain()
        await db.updateTable('t').set({ v: 'b' }).explain('json', sql`analyze`)
        const [del, ins, sel, analyzed] = executed.map((q) => classifyBuilt(q, flavor))
        if (flavor === 'mysql') {
          // MariaDB refuses EXPLAIN DELETE on a read-only server; nothing is changed.
          expect(del).to.include({
            read: false,
            reason: 'write',
            effect: 'none',
            detail: 'explain delete',
          })
          expect(ins).to.include({ read: false, effect: 'none', detail: 'explain insert' })
        } else {
          // A hot standby plans it.
          expect(del).to.include({ read: true })
          expect(ins).to.include({ read: true })
        }
        expect(sel).to.include({ read: true })
        expect(analyzed).to.include({ read: false, reason: 'write', effect: 'update' })
      })
    })
  }

  describe('mysql user variables', () => {
    it('pins the session for a user-variable assignment in a raw fragment of a built update, like its raw form', () => {
      const compiled = DBS.mysql.updateTable('t').set({ n: sql`(@n := n + 1)` }).compile()
      expect(classifyBuilt(compiled, 'mysql')).to.include({
        reason: 'write',
        effect: 'update',
        pinsSession: true,
        readsSession: true,
      })
      expect(classifyRawSql('update t set n = (@n := n + 1)', OPTIONS.mysql)).to.include({
        pinsSession: true,
      })
    })

    it('marks a read of a user or session variable as a read of the session', () => {
      expect(
        built('mysql', (db) => db.selectFrom('t').select(sql<number>`@x`.as('x'))),
      ).to.deep.equal(READ_OF_SESSION)
      expect(
        built('mysql', (db) => db.selectNoFrom(sql<number>`@@warning_count`.as('w'))),
      ).to.include({ read: true, readsSession: true })
      expect(
        built('mysql', (db) => db.selectNoFrom(sql<number>`@@global.max_connections`.as('m'))),
      ).to.include({ read: true, readsSession: false })
    })
  })
})
