import { expect } from 'chai'
import { type Kysely, sql } from 'kysely'
import { type ConsistencyMode, consistencyScope, InvalidCausalTokenError } from '../../src/index.js'
import { forEachDialect, type TestDialect, useDialectCluster } from '../support/dialects.js'

interface PairStats {
  pairs: number
  stale: number
  onReplica: number
  ms: number
}

/**
 * The read-your-writes workload of the issue: insert a row, update it, read it back at once, at
 * concurrency 8. A read-back that misses the row or sees the old value is stale.
 */
async function writeUpdateReadBack(
  t: TestDialect,
  options: { pairs: number; concurrency?: number; scoped: boolean; idBase: number },
): Promise<PairStats> {
  const db = t.db as Kysely<any>
  const concurrency = options.concurrency ?? 8
  let next = 0
  const stats: PairStats = { pairs: 0, stale: 0, onReplica: 0, ms: 0 }
  const started = performance.now()
  const pair = async (id: number) => {
    await db.insertInto('ryw').values({ id, v: 'inserted' }).execute()
    await db.updateTable('ryw').set({ v: 'updated' }).where('id', '=', id).execute()
    const before = t.routes.length
    const row = await db.selectFrom('ryw').select('v').where('id', '=', id).executeTakeFirst()
    const route = t.routes.slice(before).find((r) => r.sql.startsWith('select'))
    stats.pairs++
    if (row?.v !== 'updated') stats.stale++
    if (route?.role === 'replica') stats.onReplica++
  }
  const worker = async () => {
    for (;;) {
      const i = next++
      if (i >= options.pairs) return
      const id = options.idBase + i
      if (options.scoped) await consistencyScope(() => pair(id))
      else await pair(id)
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  stats.ms = performance.now() - started
  return stats
}

function report(label: string, s: PairStats): void {
  process.stderr.write(
    `      ${label}: ${s.pairs} pairs, ${s.stale} stale, ${Math.round((100 * s.onReplica) / s.pairs)}% read-backs on replicas, ${(s.ms / s.pairs).toFixed(2)} ms/pair\n`,
  )
}

forEachDialect((fx) => {
  describe('read-your-writes on a real cluster', function () {
    this.timeout(180_000)
    const cluster = useDialectCluster(fx)
    let idBase = 1
    const open: TestDialect[] = []
    const create = (mode: ConsistencyMode, extra: Record<string, unknown> = {}) => {
      const t = fx.create(cluster(), { consistency: mode, ...extra })
      open.push(t)
      return t
    }

    before(async () => {
      const t = create('eventual')
      await t.db.schema.dropTable('ryw').ifExists().execute()
      await t.db.schema
        .createTable('ryw')
        .addColumn('id', 'integer', (c) => c.primaryKey())
        .addColumn('v', 'varchar(32)')
        .execute()
      await cluster().waitForReplication()
    })
    afterEach(async () => {
      while (open.length > 0) await open.pop()!.db.destroy()
    })

    describe('replicas without delay', () => {
      it("'eventual' reads stale rows (the failure causal mode prevents)", async () => {
        const t = create('eventual')
        // How many read-backs are stale depends on how fast replication is here: keep going
        // (up to 2,000 pairs) until the failure shows, so the test proves it exists.
        const total: PairStats = { pairs: 0, stale: 0, onReplica: 0, ms: 0 }
        while (total.stale === 0 && total.pairs < 2000) {
          const s = await writeUpdateReadBack(t, {
            pairs: 300,
            scoped: true,
            idBase: (idBase += 1000),
          })
          total.pairs += s.pairs
          total.stale += s.stale
          total.onReplica += s.onReplica
          total.ms += s.ms
        }
        report('eventual', total)
        expect(total.stale).to.be.greaterThan(0)
      })

      it("'causal' reads every write back in explicit scopes, mostly from replicas", async () => {
        const t = create('causal')
        const s = await writeUpdateReadBack(t, {
          pairs: 500,
          scoped: true,
          idBase: (idBase += 1000),
        })
        report('causal, consistencyScope per pair', s)
        expect(s.stale).to.equal(0)
        expect(s.onReplica / s.pairs).to.be.at.least(0.8)
      })

      it("'causal' reads every write back in the process-wide default scope", async () => {
        const t = create('causal')
        const s = await writeUpdateReadBack(t, {
          pairs: 500,
          scoped: false,
          idBase: (idBase += 1000),
        })
        report('causal, process-wide scope', s)
        expect(s.stale).to.equal(0)
      })

      it("'sticky' reads every write back from the primary", async () => {
        const t = create('sticky')
        const s = await writeUpdateReadBack(t, {
          pairs: 200,
          scoped: true,
          idBase: (idBase += 1000),
        })
        report('sticky', s)
        expect(s.stale).to.equal(0)
        expect(s.onReplica).to.equal(0)
      })

      it('a raw no-op UPDATE or DELETE outside any scope leaves later reads on the replicas, like the builder form', async () => {
        const replicaNames = cluster().replicas.map((r) => r.name)
        const readsFrom = async (t: TestDialect) =>
          fx.nodeOf(cluster(), (await fx.whereAmI(cluster()).execute(t.db)).rows[0]!)
        for (const form of ['builder', 'raw'] as const) {
          const t = create('causal')
          if (form === 'builder') {
            await t.db.updateTable('ryw').set({ v: 'x' }).where('id', '=', -1).execute()
            await t.db.deleteFrom('ryw').where('id', '=', -1).execute()
          } else {
            await sql`update ryw set v = 'x' where id = -1`.execute(t.db)
            await sql`delete from ryw where id = -1`.execute(t.db)
          }
          expect(replicaNames, form).to.include(await readsFrom(t))
          expect(t.routes.at(-1)?.reason, form).to.equal('read')
        }
        // The failure this prevents: a raw write that changes a row does make the reads that
        // follow in 'sticky' mode run on the primary, as the no-op would have if counted.
        const t = create('sticky')
        const id = (idBase += 1000)
        await t.db.insertInto('ryw').values({ id, v: 'x' }).execute()
        await sql`update ryw set v = 'y' where id = ${id}`.execute(t.db)
        expect(await readsFrom(t)).to.equal('primary')
      })

      it('writes in one scope do not send reads of another scope to the primary', async () => {
        const t = create('sticky')
        await consistencyScope(async () => {
          await t.db
            .insertInto('ryw')
            .values({ id: (idBase += 1000), v: 'x' })
            .execute()
        })
        await consistencyScope(async () => {
          await t.db.selectFrom('ryw').select('v').limit(1).execute()
        })
        expect(t.routes.at(-1)?.role).to.equal('replica')
      })
    })

    describe('replicas delayed by 1 s', () => {
      before(async function () {
        this.timeout(60_000)
        for (const r of cluster().replicas) await cluster().delayReplica(r.name, 1000)
      })
      after(async function () {
        this.timeout(60_000)
        for (const r of cluster().replicas) await cluster().delayReplica(r.name, 0)
        await cluster().waitForReplication(30_000)
      })

      it("'eventual' reads stale rows", async () => {
        const t = create('eventual')
        const s = await writeUpdateReadBack(t, {
          pairs: 100,
          scoped: true,
          idBase: (idBase += 1000),
        })
        report('eventual, 1 s delay', s)
        expect(s.stale).to.be.greaterThan(50)
      })

      it("'causal' reads every write back, without long waits on replicas known to be behind", async () => {
        const t = create('causal')
        await t.dialect.probeNow()
        const scoped = await writeUpdateReadBack(t, {
          pairs: 200,
          scoped: true,
          idBase: (idBase += 1000),
        })
        report('causal, 1 s delay, scoped', scoped)
        const global = await writeUpdateReadBack(t, {
          pairs: 200,
          scoped: false,
          idBase: (idBase += 1000),
        })
        report('causal, 1 s delay, process-wide', global)
        const primaryOnly = create('sticky')
        const baseline = await writeUpdateReadBack(primaryOnly, {
          pairs: 200,
          scoped: true,
          idBase: (idBase += 1000),
        })
        report('primary-only baseline (sticky), 1 s delay', baseline)
        expect(scoped.stale + global.stale).to.equal(0)
        const stats = t.dialect.getRoutingStats()
        process.stderr.write(
          `      causal waits: ${stats.causalWaits}, ${stats.causalWaitMs.toFixed(0)} ms in all; reasons ${JSON.stringify(stats.byReason)}\n`,
        )
        // Waits are skipped once replicas are known to be behind: a bounded number of timed-out waits,
        // not one per read (which is what would make a pair cost 50 ms more than on the primary).
        expect(stats.byReason['causal-timeout'] ?? 0).to.be.lessThan(40)
      })

      it('a causal token carries a write to a second Kysely instance with its own pools', async () => {
        const writer = create('causal')
        const reader = create('causal')
        const id = (idBase += 1000)
        // Both started (pools open, first probe done) before the write: the read without the
        // token must come well within the replicas' 1 s delay, even on a loaded machine.
        await writer.db.selectFrom('ryw').select('v').where('id', '=', -1).execute()
        await reader.db.selectFrom('ryw').select('v').where('id', '=', -1).execute()
        const token = await consistencyScope(async () => {
          await writer.db.insertInto('ryw').values({ id, v: 'from-writer' }).execute()
          return writer.dialect.getCausalToken()
        })
        expect(token).to.match(/^kr1\./)
        // Without the token the second instance reads a replica that has not applied the write yet.
        const without = await consistencyScope(() =>
          reader.db.selectFrom('ryw').select('v').where('id', '=', id).executeTakeFirst(),
        )
        expect(without).to.equal(undefined)
        const withToken = await consistencyScope(
          () => reader.db.selectFrom('ryw').select('v').where('id', '=', id).executeTakeFirst(),
          { causalToken: token },
        )
        expect(withToken?.v).to.equal('from-writer')
      })
    })

    describe('causal tokens', () => {
      it('reject a malformed token before any query runs', async () => {
        expect(() => consistencyScope(() => 1, { causalToken: 'kr1.m.0-1-x' })).to.throw(
          InvalidCausalTokenError,
        )
        expect(() => consistencyScope(() => 1, { causalToken: 'x'.repeat(5000) })).to.throw(
          InvalidCausalTokenError,
        )
        expect(() => consistencyScope(() => 1, { causalToken: 42 as unknown as string })).to.throw(
          InvalidCausalTokenError,
        )
      })
    })
  })
})
