import { expect } from 'chai'
import { type RawBuilder, sql } from 'kysely'
import {
  type DialectFixture,
  forEachDialect,
  type TestCluster,
  type TestDialect,
  useDialectCluster,
} from '../support/dialects.js'

/** How long a read sleeps on the slow replica (its server really runs it that long). */
// Long enough that a slow statement left running would still be seen well after the reads end,
// while the cancels (a control connection each, slow to open on a loaded machine) land.
const SLOW_S = 5
const SLOW_MS = SLOW_S * 1000

/**
 * A read that says where it ran (`node`) and sleeps `seconds` on `slow` only: the same statement,
 * fast on every other node. The delay is the server's own, so a hedge's loser is a statement
 * really running there, which the test can see in the server's process list.
 */
function slowOn(
  fx: DialectFixture,
  cluster: TestCluster,
  slow: string,
  seconds: number,
): RawBuilder<Record<string, unknown>> {
  const node = cluster.nodes.find((n) => n.name === slow)!
  return fx.name === 'mysql'
    ? sql`select @@server_id as server_id, sleep(if(@@server_id = ${sql.lit(node.serverId)}, ${sql.lit(seconds)}, 0)) as s`
    : sql`select inet_server_port() as port, pg_sleep(case when inet_server_port() = ${sql.lit(node.port)} then ${sql.lit(seconds)} else 0 end) as s`
}

/** A select that sleeps `seconds` wherever it runs (an expression, for builders). */
function sleepExpression(fx: DialectFixture, seconds: number): RawBuilder<unknown> {
  return fx.name === 'mysql' ? sql`sleep(${sql.lit(seconds)})` : sql`pg_sleep(${sql.lit(seconds)})`
}

interface Timed {
  readonly ms: number[]
  readonly nodes: string[]
}

/** `workers` closed-loop readers, `reads` each, of `query`; per read its duration and node. */
async function timedReads(
  fx: DialectFixture,
  cluster: TestCluster,
  t: TestDialect,
  query: RawBuilder<Record<string, unknown>>,
  workers: number,
  reads: number,
): Promise<Timed> {
  const result: Timed = { ms: [], nodes: [] }
  const worker = async () => {
    for (let i = 0; i < reads; i++) {
      const started = performance.now()
      const { rows } = await query.execute(t.db)
      result.ms.push(performance.now() - started)
      result.nodes.push(fx.nodeOf(cluster, rows[0]!))
    }
  }
  await Promise.all(Array.from({ length: workers }, worker))
  return result
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Polls `check` until it holds or `ms` pass; returns its last value. */
async function eventually<T>(check: () => Promise<T>, ok: (v: T) => boolean, ms: number) {
  const end = performance.now() + ms
  let value = await check()
  while (!ok(value) && performance.now() < end) {
    await sleep(50)
    value = await check()
  }
  return value
}

forEachDialect((fx) => {
  describe('hedged reads on a real cluster', function () {
    this.timeout(120_000)
    const cluster = useDialectCluster(fx)
    const open: TestDialect[] = []
    const create = (extra: Record<string, unknown> = {}) => {
      const t = fx.create(cluster(), {
        consistency: 'eventual',
        // Round-robin keeps sending half of the reads to the slow replica: the worst case.
        selector: 'round-robin',
        health: { probeIntervalMs: 0 },
        ...extra,
      })
      open.push(t)
      return t
    }
    afterEach(async () => {
      while (open.length > 0) await open.pop()!.db.destroy()
    })

    it('answers from the other replica well before a slow one, cancels the slow statement and leaks no connection', async () => {
      const t = create({ hedge: { after: 20, budget: 1 } })
      const query = slowOn(fx, cluster(), 'replica-2', SLOW_S)
      const { ms, nodes } = await timedReads(fx, cluster(), t, query, 4, 8)
      const endedAt = performance.now()
      // Every read answered well under the slow replica's delay, by the fast replica.
      expect(Math.max(...ms)).to.be.below(SLOW_MS / 2)
      expect(new Set(nodes)).to.deep.equal(new Set(['replica-1']))
      const stats = t.dialect.getRoutingStats()
      expect(stats.hedges).to.be.greaterThan(0)
      expect(stats.hedgesWon).to.be.greaterThan(0)
      expect(stats.hedgesWon).to.be.at.most(stats.hedges)
      expect(stats.byReason.hedge).to.equal(stats.hedges)
      expect(t.routes.filter((r) => r.reason === 'hedge').every((r) => r.node === 'replica-1')).to
        .be.true
      // The losers were cancelled on the server, not left to sleep out their SLOW_S seconds...
      // (A cancel statement itself, from a control connection, may still be listed while the
      // server closes that connection: only the slow reads must be gone.)
      const running = await eventually(
        async () =>
          (await fx.runningStatements(cluster(), 'replica-2')).filter(
            (statement) =>
              !/^\s*(kill\b|select pg_cancel_backend|select pg_terminate_backend)/i.test(statement),
          ),
        (statements) => statements.length === 0,
        SLOW_MS / 2,
      )
      expect(running, 'statements still running on replica-2').to.deep.equal([])
      expect(performance.now() - endedAt).to.be.below(SLOW_MS)
      // ...and their connections went back to the pool (none leaked, none released twice).
      const pools = await eventually(
        async () => t.dialect.getPoolStats(),
        (all) => all.every((p) => p.inUse === 0),
        SLOW_MS / 2,
      )
      expect(pools.map((p) => [p.node, p.inUse])).to.deep.equal(pools.map((p) => [p.node, 0]))
      // The cancelled statements say nothing against the slow replica's health.
      const info = t.dialect.getReplicaInfo().find((r) => r.name === 'replica-2')!
      expect(info.state).to.equal('healthy')
      // The pool's connections still work after their statements were cancelled.
      const again = await timedReads(fx, cluster(), t, query, 4, 2)
      expect(Math.max(...again.ms)).to.be.below(SLOW_MS / 2)
    })

    it('a hedged read the caller aborts (cancel query) stops on both replicas and leaks no connection', async function () {
      if (!('AbortedTransactionError' in (await import('kysely')))) this.skip() // Kysely 0.28: no signals
      const t = create({ hedge: { after: 20, budget: 1 } })
      // Slow on both replicas: the hedge is sent, and neither attempt answers before the abort.
      const query = sql`select ${sleepExpression(fx, SLOW_S)} as s`
      const controller = new AbortController()
      setTimeout(() => controller.abort(new Error('stop')), 300)
      const outcome = await t.db
        .executeQuery(query.compile(t.db), {
          signal: controller.signal,
          inflightQueryAbortStrategy: 'cancel query',
        } as never)
        .then(
          () => 'finished',
          (e: unknown) => e,
        )
      expect(outcome).to.be.instanceOf(Error)
      expect(t.dialect.getRoutingStats().hedges).to.equal(1)
      // Neither attempt sleeps out its SLOW_S seconds on its server (statements of earlier tests
      // may still be listed there: only this one counts)...
      const text = query.compile(t.db).sql
      const running = await eventually(
        async () =>
          [
            ...(await fx.runningStatements(cluster(), 'replica-1')),
            ...(await fx.runningStatements(cluster(), 'replica-2')),
          ].filter((statement) => statement === text),
        (statements) => statements.length === 0,
        SLOW_MS / 2,
      )
      expect(running, 'statements still running on the replicas').to.deep.equal([])
      // ...and both connections go back to their pools.
      const pools = await eventually(
        async () => t.dialect.getPoolStats(),
        (all) => all.every((p) => p.inUse === 0),
        SLOW_MS / 2,
      )
      expect(pools.map((p) => [p.node, p.inUse])).to.deep.equal(pools.map((p) => [p.node, 0]))
    })

    it('(the failure it prevents) without hedge, reads on the slow replica take its whole delay', async () => {
      const t = create()
      const query = slowOn(fx, cluster(), 'replica-2', SLOW_S)
      const { ms, nodes } = await timedReads(fx, cluster(), t, query, 4, 1)
      expect(nodes).to.include('replica-2')
      expect(Math.max(...ms)).to.be.at.least(SLOW_MS * 0.9)
      expect(t.dialect.getRoutingStats().hedges).to.equal(0)
    })

    describe('what is never hedged', () => {
      before(async () => {
        const t = create()
        await t.db.schema.dropTable('hedge_item').ifExists().execute()
        await t.db.schema
          .createTable('hedge_item')
          .addColumn('id', 'integer', (c) => c.primaryKey())
          .execute()
        await t.db.insertInto('hedge_item').values({ id: 1 }).execute()
        await cluster().waitForReplication()
      })

      it('a locking read, reads in transactions, a write and a stream run once, unhedged, while a plain read is hedged', async () => {
        // Every statement sleeps 100 ms wherever it runs: a hedge after 1 ms would fire on any
        // eligible one (the budget allows it).
        const t = create({ hedge: { after: 1, budget: 1 } })
        const pause = sleepExpression(fx, 0.1)
        const unhedged = async (what: string, run: () => Promise<unknown>, routes: number) => {
          const before = { routes: t.routes.length, hedges: t.dialect.getRoutingStats().hedges }
          await run()
          const seen = t.routes.slice(before.routes)
          expect(
            seen.map((r) => r.reason),
            what,
          ).to.not.include('hedge')
          expect(seen, `${what}: routed once per statement`).to.have.length(routes)
          expect(t.dialect.getRoutingStats().hedges, what).to.equal(before.hedges)
        }
        await unhedged(
          'locking read',
          () => t.db.selectFrom('hedge_item').select(pause.as('s')).forUpdate().execute(),
          1,
        )
        await unhedged(
          'read in a transaction',
          () =>
            t.db
              .transaction()
              .execute((trx) => trx.selectFrom('hedge_item').select(pause.as('s')).execute()),
          3, // begin, the read, commit
        )
        await unhedged(
          'read in a read-only transaction',
          () =>
            t.db
              .transaction()
              .setAccessMode('read only')
              .execute((trx) => trx.selectFrom('hedge_item').select(pause.as('s')).execute()),
          // (MariaDB: `set transaction read only` first)
          fx.name === 'mysql' ? 4 : 3,
        )
        await unhedged(
          'write',
          () => t.db.updateTable('hedge_item').set({ id: 1 }).where('id', '=', 1).execute(),
          1,
        )
        await unhedged(
          'stream',
          async () => {
            for await (const _ of t.db.selectFrom('hedge_item').select(pause.as('s')).stream()) {
              // read to the end
            }
          },
          1,
        )
        // The test can fail: the same read, plain, is hedged.
        const before = t.dialect.getRoutingStats().hedges
        await t.db.selectFrom('hedge_item').select(pause.as('s')).execute()
        expect(t.dialect.getRoutingStats().hedges).to.equal(before + 1)
        expect(t.routes.at(-1)?.reason).to.equal('hedge')
      })
    })
  })
})
