import { expect } from 'chai'
import { CompiledQuery, type Kysely, sql } from 'kysely'
import { type Migration, Migrator } from 'kysely/migration'
import type { ReplicationEvent } from '../../src/index.js'
import { forEachDialect, type TestDialect, useDialectCluster } from '../support/dialects.js'

forEachDialect((fx) => {
  const setVar =
    fx.name === 'mysql'
      ? sql`set @kr_role = 'master'`
      : sql`select set_config('kr.role', 'master', false)`
  const getVar =
    fx.name === 'mysql'
      ? sql<{ v: string | null }>`select @kr_role as v`
      : sql<{ v: string | null }>`select current_setting('kr.role', true) as v`

  describe('session state, connection hooks, migrations and cancellation on a real cluster', function () {
    this.timeout(60_000)
    const cluster = useDialectCluster(fx)
    let t: TestDialect

    afterEach(async () => {
      await t?.db.destroy()
    })

    it('inside db.connection(), a session variable set on the primary is read back from the same session', async () => {
      t = fx.create(cluster(), { consistency: 'eventual', health: { probeIntervalMs: 0 } })
      const value = await t.db.connection().execute(async (conn) => {
        await setVar.execute(conn)
        return (await getVar.execute(conn)).rows[0]?.v
      })
      expect(value).to.equal('master')
    })

    // A session plans each statement in one reused record. Kysely's own `db.connection()` runs
    // one statement at a time, but a connection from the executor (plugins, custom executors)
    // may be sent statements while others are in flight: each must still run its own query.
    for (const consistency of ['eventual', 'causal'] as const) {
      it(`statements in flight together on one connection each run their own query (${consistency})`, async () => {
        t = fx.create(cluster(), { consistency, health: { probeIntervalMs: 0 } })
        const select = (i: number) =>
          fx.name === 'mysql' ? `select ${i} as v` : `select ${i}::int as v`
        const values = await t.db.getExecutor().provideConnection(async (conn) => {
          const read = (i: number) =>
            conn.executeQuery<{ v: number }>(CompiledQuery.raw(select(i))).then((r) => r.rows[0]?.v)
          const first = await Promise.all([0, 1, 2, 3].map(read))
          // A statement that fails among them (its error comes back through the failure path).
          const [failed, ...rest] = await Promise.all([
            conn
              .executeQuery(CompiledQuery.raw('select 1 from kr_concurrent_missing_table'))
              .catch((e: unknown) => e),
            ...[4, 5, 6, 7].map(read),
          ])
          expect(failed).to.be.instanceOf(Error)
          expect((failed as Error).message).to.include('kr_concurrent_missing_table')
          return [...first, ...rest]
        })
        expect(values.map(Number)).to.deep.equal([0, 1, 2, 3, 4, 5, 6, 7])
        expect(t.routes.filter((r) => r.role === 'replica')).to.not.have.length(0)
      })
    }

    it('without a connection scope the same two statements lose the value (the pitfall the scope prevents)', async () => {
      t = fx.create(cluster(), { consistency: 'eventual', health: { probeIntervalMs: 0 } })
      await setVar.execute(t.db)
      const { rows } = await getVar.execute(t.db)
      // The read ran on a replica, where the variable was never set.
      expect(t.routes.at(-1)?.role).to.equal('replica')
      expect(rows[0]?.v ?? null).to.be.oneOf([null, ''])
    })

    it('inside db.connection(), session reads after a builder write see that primary session (MariaDB)', async function () {
      if (fx.name !== 'mysql') this.skip()
      t = fx.create(cluster(), { consistency: 'causal', health: { probeIntervalMs: 0 } })
      await t.db.schema.dropTable('ss').ifExists().execute()
      await t.db.schema
        .createTable('ss')
        .addColumn('id', 'integer', (c) => c.primaryKey())
        .addColumn('n', 'integer')
        .addColumn('s', 'varchar(3)')
        .execute()
      await t.db.insertInto('ss').values({ id: 1, n: 1, s: 'a' }).execute()
      await cluster().waitForReplication()
      const n = await t.db.connection().execute(async (conn) => {
        await conn.updateTable('ss').set({ n: sql`(@n := n + 1)` }).where('id', '=', 1).execute()
        return (await sql<{ v: number | null }>`select @n as v`.execute(conn)).rows[0]?.v
      })
      // A plain builder update (no session state of its own), then reads of the session's state.
      const seen = await t.db.connection().execute(async (conn) => {
        await conn.updateTable('ss').set({ n: 10 }).where('id', '=', 1).execute()
        const gtid = (await sql<{ v: string }>`select @@last_gtid as v`.execute(conn)).rows[0]?.v
        // A value too long for varchar(3): truncated with a warning (the sql_mode is not strict).
        await conn
          .updateTable('ss')
          .set({ s: sql`concat('abcdef', n)` })
          .where('id', '=', 1)
          .execute()
          .catch(() => undefined)
        const warnings = (await sql<{ v: number }>`select @@warning_count as v`.execute(conn))
          .rows[0]?.v
        const shown = (await sql`show warnings`.execute(conn)).rows.length
        return { gtid, warnings, shown }
      })
      const scoped = t.routes.length
      expect(Number(n)).to.equal(2)
      expect(seen.gtid).to.match(/^\d+-\d+-\d+$/)
      expect(seen.shown).to.be.greaterThan(0)
      expect(Number(seen.warnings)).to.equal(seen.shown)
      const sessionReads = t.routes
        .slice(0, scoped)
        .filter((r) => /^(select @|show warnings)/.test(r.sql))
      expect(sessionReads).to.have.length(4)
      expect(sessionReads.map((r) => r.node)).to.deep.equal(Array(4).fill('primary'))
      // The failure this prevents: the same read outside the scope runs on a replica, where @n is unset.
      const { rows } = await sql<{ v: number | null }>`select @n as v`.execute(t.db)
      expect(rows[0]?.v ?? null).to.equal(null)
      expect(t.routes.at(-1)?.role).to.equal('replica')
    })

    it('applies onCreateConnection to every connection on every node, including ones opened later', async () => {
      const setting =
        fx.name === 'mysql'
          ? {
              set: "set session time_zone = '+03:00'",
              read: sql<{ v: string }>`select @@session.time_zone as v`,
            }
          : {
              set: "set timezone = 'Asia/Tokyo'",
              read: sql<{ v: string }>`select current_setting('TimeZone') as v`,
            }
      const expected = fx.name === 'mysql' ? '+03:00' : 'Asia/Tokyo'
      let created = 0
      t = fx.create(cluster(), {
        consistency: 'eventual',
        health: { probeIntervalMs: 0 },
        onCreateConnection: async (conn) => {
          created++
          await conn.executeQuery(CompiledQuery.raw(setting.set))
        },
      })
      // The first query opens one connection per node; the burst makes the pools open more lazily.
      await setting.read.execute(t.db)
      const values = await Promise.all(
        Array.from({ length: 24 }, () => sql<{ v: string }>`${setting.read}`.execute(t.db)),
      )
      await t.db.transaction().execute(async (trx) => {
        values.push(await setting.read.execute(trx))
      })
      expect(created).to.be.greaterThan(3)
      for (const v of values) expect(v.rows[0]?.v).to.equal(expected)
    })

    it("runs Kysely's Migrator on the primary", async () => {
      const events: ReplicationEvent[] = []
      t = fx.create(cluster(), {
        consistency: 'causal',
        health: { probeIntervalMs: 0 },
        onEvent: (e) => events.push(e),
      })
      const migrations: Record<string, Migration> = {
        '0001_widget': {
          up: async (db: Kysely<any>) => {
            await db.schema
              .createTable('widget')
              .addColumn('id', 'integer', (c) => c.primaryKey())
              .execute()
          },
          down: async (db: Kysely<any>) => {
            await db.schema.dropTable('widget').execute()
          },
        },
      }
      const migrator = new Migrator({
        db: t.db,
        provider: { getMigrations: async () => migrations },
      })
      const result = await migrator.migrateToLatest()
      expect(result.error).to.equal(undefined)
      expect(result.results?.map((r) => r.status)).to.deep.equal(['Success'])
      const down = await migrator.migrateDown()
      expect(down.error).to.equal(undefined)
      expect(
        t.routes.filter((r) => r.sql.includes('widget')).every((r) => r.node === 'primary'),
      ).to.equal(true)
      // The Migrator's lock and checks are not writes: plain reads afterwards, in no scope, still
      // go to a replica (before a fix they stuck to the primary for the life of the process).
      const { rows } = await fx.whereAmI(cluster()).execute(t.db)
      expect(fx.nodeOf(cluster(), rows[0]!), JSON.stringify(t.routes.at(-1))).to.match(/^replica-/)
      expect(events.filter((e) => e.type === 'causal-unsupported')).to.deep.equal([])
    })

    it('cancels a long read on the replica that runs it (abort signal, cancel query)', async () => {
      t = fx.create(cluster(), { consistency: 'eventual', health: { probeIntervalMs: 0 } })
      const sleep = fx.name === 'mysql' ? sql`select sleep(20) as s` : sql`select pg_sleep(20) as s`
      const controller = new AbortController()
      const started = Date.now()
      setTimeout(() => controller.abort(new Error('stop')), 300)
      const err = await t.db
        .executeQuery(sleep.compile(t.db), {
          signal: controller.signal,
          inflightQueryAbortStrategy: 'cancel query',
        })
        .catch((e: unknown) => e)
      expect(err).to.be.instanceOf(Error)
      const node = t.routes.at(-1)?.node
      expect(node).to.match(/^replica-/)
      // The server itself no longer runs it: check the replica's process list.
      const deadline = Date.now() + 5000
      for (;;) {
        const running =
          fx.name === 'mysql'
            ? await cluster().admin(
                node!,
                "select id from information_schema.processlist where info like 'select sleep(20)%'",
              )
            : await cluster().admin(
                node!,
                "select pid from pg_stat_activity where query like 'select pg_sleep(20)%' and state = 'active'",
              )
        if (running.length === 0) break
        if (Date.now() > deadline) throw new Error(`the query still runs on ${node}`)
        await new Promise((r) => setTimeout(r, 50))
      }
      expect(Date.now() - started).to.be.lessThan(10_000)
    })
  })
})
