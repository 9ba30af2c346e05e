import { expect } from 'chai'

import { consistencyScope, type ReplicationEvent } from '../../src/index.js'
import { forEachDialect, type TestDialect, useDialectCluster } from '../support/dialects.js'

/**
 * Role changes on real clusters, under concurrent writers and readers: a planned switchover and
 * a failover (primary killed, a replica promoted a second later), followed without a restart;
 * replicas added and removed at run time. Health settings are tight so the suite stays fast.
 */
const FOLLOW = {
  consistency: 'causal',
  health: { probeIntervalMs: 100, probeTimeoutMs: 300, cooldownMs: 200, maxCooldownMs: 1000 },
  topology: { writeWaitMs: 8000 },
} as const

interface Workload {
  acknowledged: Set<number>
  failedWrites: unknown[]
  failedReads: unknown[]
  stale: number
  readBacks: number
  /** Completion time and node of every acknowledged write, from `onRoute`. */
  writesOn: Array<{ at: number; node: string }>
  stop(): Promise<void>
}

forEachDialect((fx) => {
  describe('switchover, failover and replicas at run time on a real cluster', function () {
    this.timeout(120_000)
    const cluster = useDialectCluster(fx)
    const open: TestDialect[] = []
    let nextId = 1
    afterEach(async () => {
      while (open.length > 0) await open.pop()!.db.destroy()
    })

    before(async () => {
      const t = fx.create(cluster(), { consistency: 'eventual' })
      await t.db.schema.dropTable('topo').ifExists().execute()
      await t.db.schema
        .createTable('topo')
        .addColumn('id', 'integer', (c) => c.primaryKey())
        .execute()
      await t.db.destroy()
      await cluster().waitForReplication()
    })

    /** 4 writers, 4 write-then-read-back workers (causal), 4 readers asking where they ran. */
    function run(t: TestDialect): Workload {
      const w: Workload = {
        acknowledged: new Set(),
        failedWrites: [],
        failedReads: [],
        stale: 0,
        readBacks: 0,
        writesOn: [],
        stop: async () => {},
      }
      let stopping = false
      const insert = async (id: number) => {
        await t.db.insertInto('topo').values({ id }).execute()
        w.acknowledged.add(id)
        const route = [...t.routes].reverse().find((r) => r.sql.startsWith('insert'))
        w.writesOn.push({ at: performance.now(), node: route?.node ?? '?' })
      }
      const writer = async () => {
        while (!stopping) {
          try {
            await insert(nextId++)
          } catch (error) {
            w.failedWrites.push(error)
          }
        }
      }
      const readBack = async () => {
        while (!stopping) {
          const id = nextId++
          await consistencyScope(async () => {
            try {
              await insert(id)
            } catch (error) {
              w.failedWrites.push(error)
              return
            }
            try {
              const row = await t.db
                .selectFrom('topo')
                .select('id')
                .where('id', '=', id)
                .executeTakeFirst()
              w.readBacks++
              if (row === undefined) w.stale++
            } catch (error) {
              w.failedReads.push(error)
            }
          })
        }
      }
      const reader = async () => {
        while (!stopping) {
          try {
            await fx.whereAmI(cluster()).execute(t.db)
          } catch (error) {
            w.failedReads.push(error)
          }
          await new Promise((r) => setTimeout(r, 2))
        }
      }
      const workers = [
        ...Array.from({ length: 4 }, writer),
        ...Array.from({ length: 4 }, readBack),
        ...Array.from({ length: 4 }, reader),
      ]
      w.stop = async () => {
        stopping = true
        await Promise.all(workers)
      }
      return w
    }

    /** The figures for docs/operations.md, on stderr. */
    function report(what: string, w: Workload, promotedAt: number, newPrimary: string): void {
      const times = w.writesOn.map((x) => x.at).sort((a, b) => a - b)
      let pause = 0
      for (let i = 1; i < times.length; i++) pause = Math.max(pause, times[i]! - times[i - 1]!)
      const first = w.writesOn.find((x) => x.node === newPrimary && x.at >= promotedAt - 2000)
      process.stderr.write(
        `      ${fx.name} ${what}: ${w.acknowledged.size} writes acknowledged, ${w.failedWrites.length} failed, longest write pause ${pause.toFixed(0)} ms, first write on the new primary ${first === undefined ? 'n/a' : `${(first.at - promotedAt).toFixed(0)} ms`} after the harness returned, ${w.readBacks} read-backs (${w.stale} stale), ${w.failedReads.length} failed reads\n`,
      )
    }

    /** Every acknowledged write is on the primary, once (the key would refuse a second). */
    async function lost(w: Workload): Promise<number[]> {
      const rows = await cluster().admin(cluster().primaryName(), 'select id from topo')
      const present = new Set(rows.map((r) => Number(r.id)))
      return [...w.acknowledged].filter((id) => !present.has(id))
    }

    it('adds a replica and removes one while reads run: no read fails, the removed pool is ended', async () => {
      const t = fx.create(cluster(), { ...FOLLOW, replicaNames: ['replica-1'] })
      open.push(t)
      const w = run(t)
      await new Promise((r) => setTimeout(r, 300))
      const dialect = t.dialect as unknown as {
        addReplica(r: object): Promise<void>
        removeReplica(name: string): Promise<void>
      }
      await dialect.addReplica({
        name: 'replica-2',
        connection: cluster().connectionOptions('replica-2'),
      })
      await new Promise((r) => setTimeout(r, 500))
      const servedBy2 = t.routes.filter((r) => r.node === 'replica-2').length
      await dialect.removeReplica('replica-1')
      const routesAfterRemoval = t.routes.length
      await new Promise((r) => setTimeout(r, 300))
      await w.stop()
      expect(w.failedReads.map(String)).to.deep.equal([])
      expect(w.failedWrites.map(String)).to.deep.equal([])
      expect(servedBy2).to.be.greaterThan(0)
      expect(t.routes.slice(routesAfterRemoval).some((r) => r.node === 'replica-1')).to.equal(false)
      const info = t.dialect.getReplicaInfo().map((n) => n.name)
      expect(info).to.deep.equal(['primary', 'replica-2'])
      expect(await fx.serverSessions(cluster(), 'replica-1')).to.deep.equal([])
    })

    it('with `nodes`, finds the primary at start from the servers, in whatever order they are listed', async () => {
      const base = fx.create(cluster(), { consistency: 'eventual' })
      open.push(base)
      const names = cluster()
        .nodes.map((n) => n.name)
        .reverse()
      const dialect = new (
        base.dialect as unknown as { constructor: new (config: object) => TestDialect['dialect'] }
      ).constructor({
        nodes: names.map((name) => ({ name, connection: cluster().connectionOptions(name) })),
        consistency: 'eventual',
        health: FOLLOW.health,
      })
      const { Kysely } = await import('kysely')
      const db = new Kysely<any>({ dialect: dialect as never })
      try {
        await db.insertInto('topo').values({ id: nextId++ }).execute()
        const roles = Object.fromEntries(dialect.getReplicaInfo().map((n) => [n.name, n.role]))
        expect(roles[cluster().primaryName()]).to.equal('primary')
        expect(Object.values(roles).filter((r) => r === 'primary')).to.have.length(1)
      } finally {
        await db.destroy()
      }
    })

    it('a planned switchover: no write fails, none is lost, no read-back is stale, no read fails', async () => {
      const events: ReplicationEvent[] = []
      const t = fx.create(cluster(), {
        ...FOLLOW,
        onEvent: (e: ReplicationEvent) => events.push(e),
      })
      open.push(t)
      const w = run(t)
      await new Promise((r) => setTimeout(r, 500))
      await cluster().switchover('replica-1')
      const promotedAt = performance.now()
      await new Promise((r) => setTimeout(r, 1500))
      await w.stop()
      report('switchover', w, promotedAt, 'replica-1')
      expect(w.failedWrites.map(String)).to.deep.equal([])
      expect(w.failedReads.map(String)).to.deep.equal([])
      expect(w.stale).to.equal(0)
      expect(w.readBacks).to.be.greaterThan(0)
      expect(await lost(w)).to.deep.equal([])
      const changed = events.find((e) => e.type === 'primary-changed')
      expect(changed).to.include({ from: 'primary', to: 'replica-1' })
      const firstOnNew = w.writesOn.find((x) => x.node === 'replica-1')
      expect(firstOnNew, 'a write on the new primary').to.not.equal(undefined)
      expect(firstOnNew!.at - promotedAt).to.be.below(1500)
      expect(t.routes.some((r) => r.reason === 'primary-changed')).to.equal(true)
      const roles = Object.fromEntries(t.dialect.getReplicaInfo().map((n) => [n.name, n.role]))
      expect(roles).to.include({ 'replica-1': 'primary', primary: 'replica' })
    })

    it('a failover (primary killed, a replica promoted 1 s later): only writes in flight fail, none acknowledged is lost', async () => {
      const t = fx.create(cluster(), FOLLOW)
      open.push(t)
      const before = cluster().primaryName()
      const target = cluster()
        .replicas.map((r) => r.name)
        .find((n) => n !== before)!
      const w = run(t)
      await new Promise((r) => setTimeout(r, 500))
      const change = await cluster().failover(target, { delayMs: 1000 })
      const promotedAt = performance.now()
      await new Promise((r) => setTimeout(r, 2500))
      await w.stop()
      report('failover', w, promotedAt, target)
      expect(change.newPrimary).to.equal(target)
      // Only writes whose outcome is unknown fail: in flight when the primary died (one per
      // writing worker), or sent on a pooled connection before its reset reached the client.
      // None fails for want of a primary, none is refused and re-run.
      expect(w.failedWrites.length, w.failedWrites.map(String).join('\n')).to.be.at.most(16)
      for (const error of w.failedWrites) {
        expect(String(error)).to.not.match(
          /PrimaryUnavailable|PrimaryChanged|read-only|read_only|duplicate/i,
        )
      }
      expect(await lost(w)).to.deep.equal([])
      expect(w.stale).to.equal(0)
      const firstOnNew = w.writesOn.find((x) => x.node === target && x.at >= promotedAt - 1000)
      expect(firstOnNew, 'a write on the new primary').to.not.equal(undefined)
      expect(firstOnNew!.at - promotedAt).to.be.below(2500)
      // Reads kept working throughout, and on the live replica after.
      expect(w.failedReads.map(String)).to.deep.equal([])
      const { rows } = await fx.whereAmI(cluster()).execute(t.db)
      expect(rows).to.have.length(1)
    })
  })
})
