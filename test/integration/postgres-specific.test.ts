/**
 * What only PostgreSQL has, on a real primary with two streaming hot standbys: where statements
 * run (asked from the servers: `inet_server_port()`, `pg_is_in_recovery()`), data-modifying CTEs,
 * sequence / advisory-lock / configuration functions, PostgreSQL lock strengths, LISTEN and other
 * session commands, COPY, results identical to Kysely's own `PostgresDialect`, read-only sessions,
 * LSN-based causal reads, and the probe's lag rules.
 */
import { expect } from 'chai'
import {
  CompiledQuery,
  Kysely,
  PostgresDialect,
  type QueryResult,
  type RawBuilder,
  sql,
} from 'kysely'
import { type Migration, Migrator } from 'kysely/migration'
import pg from 'pg'
import Cursor from 'pg-cursor'
import {
  consistencyScope,
  onReplica,
  PoolWaitTimeoutError,
  ReplicatedPostgresDialect,
  type ReplicationEvent,
  type RouteEvent,
} from '../../src/index.js'
import {
  postgresFixture as fx,
  type TestCluster,
  type TestDialect,
  useDialectCluster,
} from '../support/dialects.js'

/** Select expressions through which the server says where it runs. */
const here = [
  sql<number>`inet_server_port()`.as('port'),
  sql<boolean>`pg_is_in_recovery()`.as('standby'),
] as const

function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!
}

describe('[postgres] PostgreSQL-specific behaviour on a real cluster', function () {
  this.timeout(120_000)
  const cluster = useDialectCluster(fx)
  const open: Array<{ db: Kysely<any> }> = []
  let t: TestDialect

  const nodeAt = (port: number): string => {
    const node = cluster().nodes.find((n) => n.port === port)
    if (!node) throw new Error(`no node on port ${port}`)
    return node.name
  }
  /** The node a statement returning `port` ran on, by the server's own answer. */
  const ranOn = (row: { port: number } | undefined): string => nodeAt(Number(row?.port))
  const create = (overrides: Parameters<typeof fx.create>[1] = {}): TestDialect => {
    const created = fx.create(cluster(), {
      consistency: 'eventual',
      health: { probeIntervalMs: 0 },
      ...overrides,
    })
    open.push(created)
    return created
  }
  /** A pg client straight to a node as the application user, bypassing the library. */
  const direct = async <T>(node: string, fn: (client: pg.Client) => Promise<T>): Promise<T> => {
    const client = new pg.Client(cluster().connectionOptions(node))
    client.on('error', () => {})
    await client.connect()
    try {
      return await fn(client)
    } finally {
      await client.end().catch(() => {})
    }
  }

  before(async () => {
    t = create({ selector: 'round-robin' })
    await sql`drop table if exists person, pet, typed, audit, migrated, kysely_migration, kysely_migration_lock cascade`.execute(
      t.db,
    )
    await sql`drop sequence if exists ticket`.execute(t.db)
    await t.db.schema
      .createTable('person')
      .addColumn('id', 'integer', (c) => c.primaryKey())
      .addColumn('name', 'text')
      .execute()
    await t.db.schema
      .createTable('pet')
      .addColumn('id', 'integer', (c) => c.primaryKey())
      .addColumn('owner_id', 'integer')
      .execute()
    await t.db.schema.createTable('audit').addColumn('at', 'integer').execute()
    await sql`create sequence ticket`.execute(t.db)
    // A volatile function that writes: called in a SELECT, the library cannot know it writes.
    await sql`create function bump() returns int language sql as $$ insert into audit values (1) returning 1 $$`.execute(
      t.db,
    )
    await t.db.schema
      .createTable('typed')
      .addColumn('id', 'integer', (c) => c.primaryKey())
      .addColumn('big', 'bigint')
      .addColumn('num', 'numeric(10, 3)')
      .addColumn('flag', 'boolean')
      .addColumn('at', 'timestamptz')
      .addColumn('doc', 'jsonb')
      .addColumn('tags', sql`text[]`)
      .addColumn('note', 'text')
      .execute()
    await sql`insert into typed
      select i, i * 10000000000, i / 7.0, i % 2 = 0, timestamptz '2024-01-01 00:00:00+00' + i * interval '1 hour',
        jsonb_build_object('i', i, 'list', jsonb_build_array(i, 'x')), array['a' || i, 'b'], case when i % 3 = 0 then null else 'n' || i end
      from generate_series(1, 50) i`.execute(t.db)
    await cluster().waitForReplication()
  })
  after(async () => {
    while (open.length > 0) await open.pop()!.db.destroy()
  })

  describe('where statements run, as the servers report', () => {
    it('runs plain reads on standbys and writes on the primary', async () => {
      const read = await t.db.selectNoFrom(here).executeTakeFirstOrThrow()
      expect(read.standby).to.equal(true)
      expect(ranOn(read)).to.match(/^replica-/)
      const written = await t.db
        .insertInto('person')
        .values({ id: 1, name: 'ada' })
        .returning(here)
        .executeTakeFirstOrThrow()
      expect(written.standby).to.equal(false)
      expect(ranOn(written)).to.equal('primary')
    })

    it('runs a data-modifying CTE on the primary, also when only a subquery reads it; a standby refuses the same statement', async () => {
      // PostgreSQL accepts data-modifying CTEs at the top level only (the classifier finds them at
      // any depth: see the unit tests).
      const top = t.db
        .with('x', (db) => db.insertInto('person').values({ id: 2, name: 'cte' }).returning('id'))
        .selectFrom('x')
        .select(['id', ...here])
      const readDeep = t.db
        .with('x', (db) =>
          db.updateTable('person').set({ name: 'deep' }).where('id', '=', 2).returning('id'),
        )
        .selectFrom('person')
        .select(['id', ...here])
        .where('id', 'in', t.db.selectFrom('x').select('id'))
      const twoCtes = t.db
        .with('p', (db) =>
          db.insertInto('pet').values({ id: 1, owner_id: 2 }).returning('owner_id'),
        )
        .with('q', (db) => db.selectFrom('p').select('owner_id'))
        .selectFrom('q')
        .select(['owner_id as id', ...here])
      for (const query of [top, readDeep, twoCtes]) {
        const rows = await query.execute()
        expect(rows).to.have.length(1)
        expect(ranOn(rows[0]), query.compile().sql).to.equal('primary')
        expect(t.routes.at(-1)).to.include({ role: 'primary', reason: 'write' })
      }
      const compiled = top.compile()
      const refused = await direct('replica-1', (c) =>
        c.query(compiled.sql, [...compiled.parameters]),
      ).catch((e: unknown) => e)
      expect(String(refused)).to.match(fx.readOnlyErrorPattern)
    })

    it('runs nextval, pg_advisory_lock, set_config and txid_current on the primary; a standby refuses nextval and txid_current', async () => {
      const calls: Array<[string, RawBuilder<unknown>]> = [
        ['nextval', sql`nextval('ticket')`],
        ['pg_advisory_lock', sql`pg_advisory_xact_lock(7)`],
        ['set_config', sql`set_config('app.who', 'me', true)`],
        ['txid_current', sql`txid_current()`],
      ]
      for (const [name, call] of calls) {
        const row = await t.db.selectNoFrom([call.as('v'), ...here]).executeTakeFirstOrThrow()
        expect(ranOn(row), name).to.equal('primary')
        expect(t.routes.at(-1)).to.include({ role: 'primary', reason: 'primary-function' })
      }
      for (const text of ["select nextval('ticket')", 'select txid_current()']) {
        const refused = await direct('replica-1', (c) => c.query(text)).catch((e: unknown) => e)
        expect(refused, text).to.be.instanceOf(Error)
      }
    })

    it('runs SELECT ... FOR NO KEY UPDATE and FOR KEY SHARE on the primary; a standby refuses them', async () => {
      for (const [lock, build] of [
        [
          'for no key update',
          () => t.db.selectFrom('person').select(here).where('id', '=', 1).forNoKeyUpdate(),
        ],
        [
          'for key share',
          () => t.db.selectFrom('person').select(here).where('id', '=', 1).forKeyShare(),
        ],
      ] as const) {
        const row = await build().executeTakeFirstOrThrow()
        expect(ranOn(row), lock).to.equal('primary')
        expect(t.routes.at(-1)).to.include({ reason: 'locking-read', detail: lock })
        const refused = await direct('replica-1', (c) =>
          c.query(`select 1 from person ${lock}`),
        ).catch((e: unknown) => e)
        expect(String(refused)).to.match(fx.readOnlyErrorPattern)
      }
    })

    it('runs a read-only transaction (start transaction read only) whole on one standby', async () => {
      const seen = await t.db
        .transaction()
        .setAccessMode('read only')
        .execute(async (trx) => {
          const a = await trx.selectNoFrom(here).executeTakeFirstOrThrow()
          const b = await trx.selectNoFrom(here).executeTakeFirstOrThrow()
          const { rows } = await sql<{
            transaction_read_only: string
          }>`show transaction_read_only`.execute(trx)
          return { a, b, ro: rows[0]?.transaction_read_only }
        })
      expect(seen.a.standby).to.equal(true)
      expect(ranOn(seen.a)).to.equal(ranOn(seen.b))
      expect(seen.ro).to.equal('on')
      // The transaction's statements, its commit included, are routed in it.
      expect(t.routes.at(-2)?.sql).to.equal('show transaction_read_only')
      expect(t.routes.at(-1)).to.include({ sql: 'commit', reason: 'read-only-transaction' })
    })

    it('runs LISTEN, NOTIFY, SET, RESET, DISCARD, PREPARE / EXECUTE and temp tables on the primary session', async () => {
      const routesBefore = t.routes.length
      const ports = await t.db.connection().execute(async (conn) => {
        const out: Record<string, string> = {}
        const port = async (label: string, query: RawBuilder<{ port: number }>) => {
          out[label] = ranOn((await query.execute(conn)).rows[0])
        }
        await sql`listen kr_jobs`.execute(conn)
        await port('after listen', sql`select inet_server_port() as port`)
        await sql`notify kr_jobs, 'hello'`.execute(conn)
        await sql`set application_name = 'kr-test'`.execute(conn)
        await port(
          'after set',
          sql`select inet_server_port() as port where current_setting('application_name') = 'kr-test'`,
        )
        await sql`reset application_name`.execute(conn)
        await sql`prepare kr_where as select inet_server_port() as port`.execute(conn)
        await port('execute', sql`execute kr_where`)
        await sql`create temp table kr_tmp (port int)`.execute(conn)
        await sql`insert into kr_tmp select inet_server_port()`.execute(conn)
        await port('temp table', sql`select port from kr_tmp`)
        await sql`discard all`.execute(conn)
        return out
      })
      expect(ports).to.deep.equal({
        'after listen': 'primary',
        'after set': 'primary',
        execute: 'primary',
        'temp table': 'primary',
      })
      const sessionRoutes = t.routes.slice(routesBefore).map((r) => `${r.role}/${r.reason}`)
      expect(sessionRoutes).to.have.length(12)
      expect(
        sessionRoutes.every((r) => r.startsWith('primary/')),
        sessionRoutes.join(', '),
      ).to.equal(true)
    })

    it('sends COPY ... FROM STDIN to the primary, SHOW, EXPLAIN and COPY (select) TO STDOUT to standbys', async () => {
      // pg without a copy stream aborts a COPY FROM STDIN: the primary's error, not a standby's refusal.
      const copyIn = await sql`copy person from stdin`.execute(t.db).catch((e: unknown) => e)
      expect(String(copyIn)).to.match(/no source stream/i)
      expect(t.routes.at(-1)).to.include({ role: 'primary' })
      const { rows } = await sql<{ port: string }>`show port`.execute(t.db)
      expect(ranOn({ port: Number(rows[0]?.port) })).to.match(/^replica-/)
      await sql`explain select * from person`.execute(t.db)
      expect(t.routes.at(-1)).to.include({ role: 'replica', reason: 'read' })
      const copyOut = await sql`copy (select inet_server_port()) to stdout`.execute(t.db)
      expect(copyOut.rows).to.deep.equal([])
      expect(t.routes.at(-1)).to.include({ role: 'replica', reason: 'read' })
    })

    it("runs Kysely's Migrator (kysely/migration) on the primary", async () => {
      const m = create({ consistency: 'causal' })
      const migrations: Record<string, Migration> = {
        '0001_migrated': {
          up: async (db: Kysely<any>) => {
            await db.schema
              .createTable('migrated')
              .addColumn('port', 'integer')
              .addColumn('standby', 'boolean')
              .execute()
            await sql`insert into migrated select inet_server_port(), pg_is_in_recovery()`.execute(
              db,
            )
          },
          down: async (db: Kysely<any>) => {
            await db.schema.dropTable('migrated').execute()
          },
        },
      }
      const migrator = new Migrator({
        db: m.db,
        provider: { getMigrations: async () => migrations },
      })
      const result = await migrator.migrateToLatest()
      expect(result.error).to.equal(undefined)
      const [row] = await cluster().admin('primary', 'select port, standby from migrated')
      expect(ranOn(row)).to.equal('primary')
      expect(row.standby).to.equal(false)
      const lock = m.routes.find((r: RouteEvent) => r.sql.includes('pg_advisory_lock'))
      expect(lock).to.include({ role: 'primary', reason: 'primary-function' })
      expect((await migrator.migrateDown()).error).to.equal(undefined)
    })
  })

  describe("results identical to Kysely's PostgresDialect", () => {
    let plain: Kysely<any>
    before(() => {
      const pool = new pg.Pool(cluster().connectionOptions('primary'))
      pool.on('error', () => {})
      plain = new Kysely<any>({ dialect: new PostgresDialect({ pool, cursor: Cursor }) })
      open.push({ db: plain })
    })

    async function both(run: (db: Kysely<any>) => Promise<unknown>): Promise<[unknown, unknown]> {
      const ours = await run(t.db)
      const theirs = await run(plain)
      return [ours, theirs]
    }

    it('returns the same rows (bigint, numeric, boolean, timestamptz, jsonb, arrays, nulls) from a standby', async () => {
      const query = t.db.selectFrom('typed').selectAll().orderBy('id').compile()
      const [ours, theirs] = await both((db) => db.executeQuery(query))
      expect(t.routes.at(-1)?.role).to.equal('replica')
      expect((ours as QueryResult<unknown>).rows).to.have.length(50)
      expect(ours).to.deep.equal(theirs)
      const raw = CompiledQuery.raw('select $1::int + 1 as two, null::text as nothing', [1])
      const [a, b] = await both((db) => db.executeQuery(raw))
      expect(a).to.deep.equal(b)
    })

    it('returns the same insert ... returning, numAffectedRows of UPDATE, DELETE and MERGE', async () => {
      const insert = (db: Kysely<any>) =>
        db
          .insertInto('typed')
          .values({ id: 1000, big: '1', num: '1.5', flag: true, doc: JSON.stringify({ a: 1 }) })
          .returningAll()
          .execute()
      const remove = (db: Kysely<any>) =>
        db.executeQuery(db.deleteFrom('typed').where('id', '=', 1000).compile())
      const ours = await insert(t.db)
      const oursDelete = await remove(t.db)
      const theirs = await insert(plain)
      const theirsDelete = await remove(plain)
      expect(ours).to.deep.equal(theirs)
      expect(oursDelete).to.deep.equal(theirsDelete)
      expect(oursDelete).to.deep.include({ numAffectedRows: 1n })
      const update = t.db
        .updateTable('typed')
        .set({ flag: sql`not flag` })
        .where('id', '<=', 10)
        .compile()
      const [u1, u2] = await both((db) => db.executeQuery(update))
      expect(u1).to.deep.equal(u2)
      expect(u1).to.deep.include({ numAffectedRows: 10n })
      const merge = t.db
        .mergeInto('typed as t')
        .using('person as p', 'p.id', 't.id')
        .whenMatched()
        .thenUpdateSet({ note: 'merged' })
        .compile()
      const [m1, m2] = await both((db) => db.executeQuery(merge))
      expect(m1).to.deep.equal(m2)
      expect((m1 as QueryResult<unknown>).numAffectedRows).to.be.a('bigint')
      const [r1, r2] = await both((db) =>
        db.updateTable('typed').set({ note: 'x' }).where('id', '=', 1).executeTakeFirst(),
      )
      expect(r1).to.deep.equal(r2)
    })

    it('streams the same rows through pg-cursor, chunk size honoured, from a standby', async () => {
      await cluster().waitForReplication()
      const collect = async (db: Kysely<any>) => {
        const rows: unknown[] = []
        for await (const row of db.selectFrom('typed').selectAll().orderBy('id').stream(7))
          rows.push(row)
        return rows
      }
      const [ours, theirs] = await both(collect)
      expect(ours).to.have.length(50)
      expect(ours).to.deep.equal(theirs)
      expect(t.routes.at(-1)?.role).to.equal('replica')
    })
  })

  describe('read-only sessions', () => {
    it('a write that reaches a standby is refused by the server; replicaSessionReadOnly makes a replica that is not a standby refuse it too', async () => {
      // `select bump()` writes, but nothing in its text says so: it is routed as a read.
      const refused = await sql`select bump()`.execute(t.db).catch((e: unknown) => e)
      expect(t.routes.at(-1)).to.include({ role: 'replica', reason: 'read' })
      expect(String(refused)).to.match(fx.readOnlyErrorPattern)

      // A "replica" that is not a standby (here the primary itself, as with a logical replica or
      // a development setup): the session setting is what refuses the write.
      const notStandby = (replicaSessionReadOnly: boolean) => {
        const pool = () => {
          const p = new pg.Pool({ ...cluster().connectionOptions('primary'), max: 2 })
          p.on('error', () => {})
          return p
        }
        const db = new Kysely<any>({
          dialect: new ReplicatedPostgresDialect({
            primary: { pool: pool() },
            replicas: [{ name: 'not-a-standby', pool: pool() }],
            consistency: 'eventual',
            health: { probeIntervalMs: 0 },
            replicaSessionReadOnly,
          }),
        })
        open.push({ db })
        return db
      }
      const count = async () =>
        Number((await cluster().admin('primary', 'select count(*) as n from audit'))[0]?.n)
      const before = await count()
      const guarded = await sql`select bump()`.execute(notStandby(true)).catch((e: unknown) => e)
      expect(String(guarded)).to.match(fx.readOnlyErrorPattern)
      expect(await count()).to.equal(before)
      await sql`select bump()`.execute(notStandby(false))
      expect(await count()).to.equal(before + 1)
    })

    it('sets default_transaction_read_only on replica sessions only', async () => {
      const setting = sql<{
        v: string
        port: number
      }>`select current_setting('default_transaction_read_only') as v, inet_server_port() as port`
      const replica = (await setting.execute(t.db)).rows[0]!
      const primary = (await t.db.connection().execute(async (conn) => {
        await sql`select set_config('app.pin', '1', false)`.execute(conn)
        return (await setting.execute(conn)).rows[0]
      }))!
      expect([ranOn(replica), replica.v]).to.deep.equal([ranOn(replica), 'on'])
      expect(ranOn(replica)).to.match(/^replica-/)
      expect([ranOn(primary), primary.v]).to.deep.equal(['primary', 'off'])
    })
  })

  describe('pools', () => {
    it('creates pg pools from connection options and reports their counts', async () => {
      const dialect = new ReplicatedPostgresDialect({
        primary: { connection: cluster().connectionOptions('primary'), poolSize: 3 },
        replicas: cluster().replicas.map((r) => ({
          name: r.name,
          connection: cluster().connectionOptions(r),
          poolSize: 2,
          idleTimeoutMs: 5_000,
        })),
        consistency: 'eventual',
        health: { probeIntervalMs: 0 },
      })
      const db = new Kysely<any>({ dialect })
      open.push({ db })
      const read = await db.selectNoFrom(here).executeTakeFirstOrThrow()
      expect(ranOn(read)).to.match(/^replica-/)
      const written = await db
        .insertInto('pet')
        .values({ id: 77, owner_id: 1 })
        .returning(here)
        .executeTakeFirstOrThrow()
      expect(ranOn(written)).to.equal('primary')
      const stats = dialect.getPoolStats()
      const primary = stats.find((p) => p.node === 'primary')!
      expect(primary).to.include({ limit: 3, total: 1, idle: 1, inUse: 0 })
      expect(stats.filter((p) => p.role === 'replica').map((p) => p.limit)).to.deep.equal([2, 2])
    })
  })

  describe('a replica pool with every client busy', () => {
    /**
     * replica-1's pool has one client and waits 300 ms for a free one; a 1.5 s read holds that
     * client. The next read on replica-1 times out in pg-pool's queue with `timeout exceeded when
     * trying to connect`, the message of a connect timeout. Before PoolWaitTimeoutError that
     * counted as a connection failure of a node that answers: replica-1 went to cooling-down with
     * a node-down event, and under load its reads moved to the other replica, which then
     * saturated too.
     */
    const busyReplica = () => {
      const events: ReplicationEvent[] = []
      const d = create({
        replicaNames: ['replica-1'],
        poolOptions: { max: 1, connectionTimeoutMillis: 300 },
        onEvent: (e) => events.push(e),
      })
      const holding = onReplica(d.db, 'replica-1')
        .selectNoFrom([...here, sql`pg_sleep(1.5)`.as('s')])
        .executeTakeFirstOrThrow()
      return { d, events, holding }
    }
    /** Until the long read holds replica-1's only client. */
    const untilBusy = async (d: TestDialect) => {
      const deadline = performance.now() + 5_000
      while (d.dialect.getPoolStats().find((p) => p.node === 'replica-1')?.inUse !== 1) {
        if (performance.now() > deadline) throw new Error('the long read never started')
        await new Promise((resolve) => setTimeout(resolve, 10))
      }
    }
    const expectHealthy = (d: TestDialect, events: readonly ReplicationEvent[]) => {
      expect(d.dialect.getReplicaInfo().find((n) => n.name === 'replica-1')).to.include({
        state: 'healthy',
      })
      expect(events.filter((e) => e.type === 'node-down')).to.deep.equal([])
    }

    it('fails a read forced to that replica with PoolWaitTimeoutError and keeps the replica healthy', async () => {
      const { d, events, holding } = busyReplica()
      await untilBusy(d)
      const error = await onReplica(d.db, 'replica-1')
        .selectNoFrom(here)
        .executeTakeFirstOrThrow()
        .catch((e: unknown) => e)
      expect(error).to.be.instanceOf(PoolWaitTimeoutError)
      expect(error).to.include({ node: 'replica-1', code: 'KR_POOL_WAIT_TIMEOUT' })
      expectHealthy(d, events)
      // The long read finishes on replica-1, as the server says, and the replica serves again.
      expect(ranOn(await holding)).to.equal('replica-1')
      const after = await onReplica(d.db, 'replica-1').selectNoFrom(here).executeTakeFirstOrThrow()
      expect(ranOn(after)).to.equal('replica-1')
      expectHealthy(d, events)
    })

    it('runs a plain read that waited for that replica on the primary instead, the replica still healthy', async () => {
      const { d, events, holding } = busyReplica()
      await untilBusy(d)
      const read = await d.db.selectNoFrom(here).executeTakeFirstOrThrow()
      expect(ranOn(read)).to.equal('primary')
      expect(read.standby).to.equal(false)
      expect(d.routes.at(-1)).to.include({ node: 'primary', reason: 'retry' })
      expectHealthy(d, events)
      expect(ranOn(await holding)).to.equal('replica-1')
    })
  })

  describe('causal reads on the WAL replay LSN', () => {
    async function pairs(
      d: TestDialect,
      n: number,
      idBase: number,
    ): Promise<{ stale: number; onReplica: number }> {
      let stale = 0
      let onReplica = 0
      for (let i = 0; i < n; i++) {
        await consistencyScope(async () => {
          await d.db
            .insertInto('person')
            .values({ id: idBase + i, name: 'w' })
            .execute()
          const before = d.routes.length
          const row = await d.db
            .selectFrom('person')
            .select('id')
            .where('id', '=', idBase + i)
            .executeTakeFirst()
          if (row === undefined) stale++
          if (d.routes.slice(before).some((r) => r.role === 'replica')) onReplica++
        })
      }
      return { stale, onReplica }
    }

    it('measures LSN tracking per write and the causal wait', async () => {
      const eventual = create({ consistency: 'eventual' })
      const causal = create({ consistency: 'causal' })
      // Interleaved, so both modes see the same server conditions.
      const perWrite: Record<'eventual' | 'causal', number[]> = { eventual: [], causal: [] }
      let id = 100_000
      for (let i = 0; i < 400; i++) {
        for (const [mode, d] of [
          ['eventual', eventual],
          ['causal', causal],
        ] as const) {
          const started = performance.now()
          await d.db.insertInto('person').values({ id: id++, name: 't' }).execute()
          if (i >= 50) perWrite[mode].push(performance.now() - started)
        }
      }
      const lsnQuery = await direct('primary', async (c) => {
        const samples: number[] = []
        for (let i = 0; i < 300; i++) {
          const s = performance.now()
          await c.query(
            "select pg_current_wal_insert_lsn()::text as lsn, current_setting('wal_block_size') as block, pg_size_bytes(current_setting('wal_segment_size'))::text as segment",
          )
          samples.push(performance.now() - s)
        }
        return percentile(samples, 50)
      })
      // Read right after the write: the wait lasts until the standby has replayed it.
      const before = causal.routes.length
      const stats = await pairs(causal, 200, 130_000)
      const waits = causal.routes
        .slice(before)
        .filter((r) => r.reason === 'causal-waited')
        .map((r) => r.waitedMs ?? 0)
      // Read 20 ms after the write: the standby has replayed it, the wait is one satisfied poll.
      const caughtUp: number[] = []
      for (let i = 0; i < 60; i++) {
        await consistencyScope(async () => {
          await causal.db
            .insertInto('person')
            .values({ id: 140_000 + i, name: 'c' })
            .execute()
          await new Promise((r) => setTimeout(r, 20))
          const mark = causal.routes.length
          await causal.db
            .selectFrom('person')
            .select('id')
            .where('id', '=', 140_000 + i)
            .executeTakeFirstOrThrow()
          const waited = causal.routes
            .slice(mark)
            .find((r) => r.reason === 'causal-waited')?.waitedMs
          if (waited !== undefined) caughtUp.push(waited)
        })
      }
      const e50 = percentile(perWrite.eventual, 50)
      const c50 = percentile(perWrite.causal, 50)
      process.stderr.write(
        `      insert p50: ${e50.toFixed(3)} ms eventual, ${c50.toFixed(3)} ms causal (+${(c50 - e50).toFixed(3)} ms per write); the LSN query alone p50 ${lsnQuery.toFixed(3)} ms\n` +
          `      causal, read right after the write: 200 pairs, ${stats.stale} stale, ${stats.onReplica} on replicas; wait p50 ${percentile(waits, 50).toFixed(3)} ms, p90 ${percentile(waits, 90).toFixed(3)} ms (${waits.length} waits)\n` +
          `      causal, standby already caught up: wait p50 ${percentile(caughtUp, 50).toFixed(3)} ms, p90 ${percentile(caughtUp, 90).toFixed(3)} ms (${caughtUp.length} waits)\n`,
      )
      expect(stats.stale).to.equal(0)
      expect(stats.onReplica).to.be.greaterThan(150)
      expect(caughtUp.length).to.be.greaterThan(50)
    })

    it('with recovery_min_apply_delay = 1000ms: causal reads every write back, eventual reads stale rows', async () => {
      const c: TestCluster = cluster()
      await Promise.all(c.replicas.map((r) => c.delayReplica(r.name, 1000)))
      try {
        const eventual = create({ consistency: 'eventual' })
        const stale = await pairs(eventual, 30, 200_000)
        const causal = create({ consistency: 'causal' })
        const fresh = await pairs(causal, 100, 210_000)
        const reasons = causal.routes.reduce<Record<string, number>>((acc, r) => {
          acc[r.reason] = (acc[r.reason] ?? 0) + 1
          return acc
        }, {})
        process.stderr.write(
          `      1 s apply delay: eventual ${stale.stale}/30 stale; causal ${fresh.stale}/100 stale, routes ${JSON.stringify(reasons)}\n`,
        )
        expect(stale.stale).to.be.greaterThan(20)
        expect(fresh.stale).to.equal(0)
      } finally {
        await Promise.all(c.replicas.map((r) => c.delayReplica(r.name, 0)))
        await c.waitForReplication()
      }
    })

    it('waits for a position right after a WAL segment switch (insert LSN past the page header)', async () => {
      const causal = create({ consistency: 'causal', selector: 'round-robin' })
      await causal.db.selectNoFrom(sql`1`.as('warm')).execute()
      await cluster().admin('primary', 'select pg_switch_wal()')
      await cluster().waitForReplication()
      const [{ lsn }] = await cluster().admin(
        'primary',
        'select pg_current_wal_insert_lsn()::text as lsn',
      )
      // At a segment start the insert position points past the 40-byte long page header.
      expect(Number.parseInt(String(lsn).split('/')[1]!, 16) % (16 * 1024 * 1024)).to.equal(40)
      await consistencyScope(async () => {
        // A statement that counts as a write (DO: the router cannot see inside it) but writes no
        // WAL: the scope's position is the insert LSN now, right past the segment's page header.
        await sql`do $$ begin end $$`.execute(causal.db)
        const row = await causal.db.selectNoFrom(here).executeTakeFirstOrThrow()
        expect(ranOn(row)).to.match(/^replica-/)
      })
      expect(causal.routes.at(-1)?.reason).to.be.oneOf(['causal-waited', 'causal-caught-up'])
    })
  })

  describe('probes', () => {
    it('report lag 0 on idle caught-up standbys though the last replayed transaction is old', async () => {
      const p = create({ consistency: 'eventual' })
      await p.db.selectNoFrom(sql`1`.as('x')).execute()
      await cluster().waitForReplication()
      await new Promise((r) => setTimeout(r, 1200))
      await p.dialect.probeNow()
      const [{ age }] = await cluster().admin(
        'replica-1',
        'select extract(epoch from now() - pg_last_xact_replay_timestamp()) * 1000 as age',
      )
      expect(Number(age)).to.be.greaterThan(1000)
      const info = p.dialect.getReplicaInfo().filter((n) => n.role === 'replica')
      expect(info.map((n) => [n.name, n.lagMs, n.state])).to.deep.equal([
        ['replica-1', 0, 'healthy'],
        ['replica-2', 0, 'healthy'],
      ])
      expect(info[0]!.position).to.match(/^[0-9A-F]+\/[0-9A-F]+$/)
    })

    it('report replication stopped (null lag, lagging) while replay is paused, and recover', async () => {
      const p = create({ consistency: 'eventual' })
      await p.db.selectNoFrom(sql`1`.as('x')).execute()
      await cluster().stopReplicaSqlThread('replica-2')
      try {
        await p.dialect.probeNow()
        const paused = p.dialect.getReplicaInfo().find((n) => n.name === 'replica-2')!
        expect([paused.lagMs, paused.state]).to.deep.equal([null, 'lagging'])
      } finally {
        await cluster().startReplica('replica-2')
      }
      await p.dialect.probeNow()
      const resumed = p.dialect.getReplicaInfo().find((n) => n.name === 'replica-2')!
      expect(resumed.state).to.equal('healthy')
    })
  })
})
