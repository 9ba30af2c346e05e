import { expect } from 'chai'
import { type Kysely, sql } from 'kysely'
import { onPrimary } from '../../src/index.js'
import { forEachDialect, type TestDialect, useDialectCluster } from '../support/dialects.js'

/**
 * Kysely 0.29's abort signals against full pools: a cancel must never wedge a pool, nor land on
 * another caller's statement. Kysely 0.28 has no abort signals: the suite is skipped there.
 */
forEachDialect((fx) => {
  describe('cancellation on a real cluster', function () {
    this.timeout(60_000)
    const cluster = useDialectCluster(fx)
    const open: TestDialect[] = []
    afterEach(async () => {
      while (open.length > 0) await open.pop()!.db.destroy()
    })
    const poolOf = (size: number) =>
      fx.name === 'mysql' ? { connectionLimit: size } : { max: size }
    const sleepFor = (seconds: number) =>
      fx.name === 'mysql'
        ? sql<{ s: number }>`select sleep(${sql.lit(seconds)}) as s`
        : sql<{ s: number }>`select pg_sleep(${sql.lit(seconds)}) as s`
    /** Runs `query` with an abort at `ms` and the given strategy; resolves with its outcome. */
    const aborted = (
      db: Kysely<any>,
      query: ReturnType<typeof sleepFor>,
      ms: number,
      strategy: string,
    ) => {
      const controller = new AbortController()
      setTimeout(() => controller.abort(new Error('stop')), ms)
      return db
        .executeQuery(query.compile(db), {
          signal: controller.signal,
          inflightQueryAbortStrategy: strategy,
        } as never)
        .then(
          () => 'finished',
          (e: unknown) => e,
        )
    }

    before(async function () {
      const t = fx.create(cluster(), { consistency: 'eventual' })
      // Kysely 0.29 (abort signals) has AbortedTransactionError; 0.28 has neither.
      if (!('AbortedTransactionError' in (await import('kysely')))) {
        await t.db.destroy()
        this.skip()
      }
      await t.db.schema.dropTable('cancelled').ifExists().execute()
      await t.db.schema
        .createTable('cancelled')
        .addColumn('id', 'integer', (c) => c.primaryKey())
        .execute()
      await t.db.destroy()
    })

    for (const strategy of ['cancel query', 'kill session']) {
      it(`a full primary pool whose every statement is aborted (${strategy}) still runs the next insert`, async () => {
        const t = fx.create(cluster(), {
          consistency: 'eventual',
          health: { probeIntervalMs: 0 },
          poolOptions: poolOf(4),
        })
        open.push(t)
        const primary = onPrimary(t.db)
        const outcomes = await Promise.all(
          Array.from({ length: 4 }, () => aborted(primary, sleepFor(1), 200, strategy)),
        )
        expect(outcomes.every((o) => o instanceof Error)).to.equal(true)
        const id = Math.floor(Math.random() * 1e9)
        const inserted = await Promise.race([
          t.db
            .insertInto('cancelled')
            .values({ id })
            .execute()
            .then(() => 'inserted'),
          new Promise((resolve) => setTimeout(() => resolve('still waiting after 5 s'), 5000)),
        ])
        expect(inserted).to.equal('inserted')
      })
    }

    // Killing the session breaks its connection, which is what a primary that went away looks
    // like: the statement must not be taken for one refused by a former primary and run again.
    it('a statement on the primary aborted with kill session is not taken for a lost primary: no probe round, no second run', async () => {
      const t = fx.create(cluster(), {
        consistency: 'eventual',
        health: { probeIntervalMs: 0 },
        topology: { writeWaitMs: 1_000 },
      })
      open.push(t)
      const primary = onPrimary(t.db)
      const probes = () => t.dialect.getReplicaInfo().map((n) => n.lastProbeRttMs)
      await primary.selectNoFrom(sql<number>`1`.as('one')).execute()
      const probedBefore = probes()
      expect(await aborted(primary, sleepFor(2), 200, 'kill session')).to.be.instanceOf(Error)
      // Long enough for a re-run to have been planned and sent (writeWaitMs is 1 s).
      await new Promise((r) => setTimeout(r, 1_500))
      // Not taken for a primary that went away: no probe round of the nodes to find a new one,
      // and no second route of the statement (a re-run is reported as 'primary-changed').
      expect(probes()).to.deep.equal(probedBefore)
      expect(t.routes.filter((r) => /sleep/.test(r.sql)).map((r) => r.reason)).to.deep.equal([
        'hint',
      ])
    })

    it('inside db.connection(), a statement after one aborted with kill session runs on a new primary session', async () => {
      const t = fx.create(cluster(), { consistency: 'eventual', health: { probeIntervalMs: 0 } })
      open.push(t)
      const base = Math.floor(Math.random() * 1e9)
      const ids = await t.db.connection().execute(async (conn) => {
        // A plain update: the scope holds a primary session with no state of its own (an insert
        // would pin it: its insert id is session state).
        await conn.updateTable('cancelled').set({ id: base }).where('id', '=', -1).execute()
        const first = (await fx.sessionId().execute(onPrimary(conn))).rows[0]?.id
        expect(await aborted(onPrimary(conn), sleepFor(2), 200, 'kill session')).to.be.instanceOf(
          Error,
        )
        await conn.updateTable('cancelled').set({ id: base }).where('id', '=', -1).execute()
        const second = (await fx.sessionId().execute(onPrimary(conn))).rows[0]?.id
        return { first, second }
      })
      expect(ids.second).to.not.equal(undefined)
      expect(ids.second).to.not.equal(ids.first)
    })

    it("a cancel never interrupts another caller's statement", async () => {
      const t = fx.create(cluster(), {
        consistency: 'eventual',
        health: { probeIntervalMs: 0 },
        poolOptions: poolOf(2),
        replicaNames: ['replica-1'],
      })
      open.push(t)
      // A is aborted at 200 ms; B and C are not; C waits for a connection behind A.
      const a = aborted(t.db, sleepFor(1), 200, 'cancel query')
      const b = sleepFor(1).execute(t.db)
      await new Promise((r) => setTimeout(r, 50))
      const c = sleepFor(1).execute(t.db)
      expect(await a).to.be.instanceOf(Error)
      const [rb, rc] = await Promise.all([b, c])
      // sleep() returns 1 when interrupted (MySQL); pg_sleep raises when cancelled.
      expect(Number(rb.rows[0]?.s ?? 0)).to.equal(0)
      expect(Number(rc.rows[0]?.s ?? 0)).to.equal(0)
    })
  })
})
