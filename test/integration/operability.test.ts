import { expect } from 'chai'
import type { ReplicationEvent } from '../../src/index.js'
import { onPrimary, withQueryComment } from '../../src/index.js'
import { forEachDialect, type TestDialect, useDialectCluster } from '../support/dialects.js'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

forEachDialect((fx) => {
  describe('pools, lifecycle and query comments on a real cluster', function () {
    this.timeout(60_000)
    const cluster = useDialectCluster(fx)
    const open: TestDialect[] = []
    afterEach(async () => {
      while (open.length > 0) await open.pop()!.db.destroy()
    })

    it('rotates connections older than maxLifetimeMs, as the server sees it', async () => {
      const t = fx.create(cluster(), {
        health: { probeIntervalMs: 0 },
        nodeOptions: { maxLifetimeMs: 150 },
      })
      open.push(t)
      const ids = new Set<number>()
      const started = Date.now()
      while (Date.now() - started < 800) {
        const { rows } = await fx.sessionId().execute(onPrimary(t.db))
        ids.add(Number(rows[0]!.id))
        await sleep(25)
      }
      // One connection at a time, 150 ms lifetime, 800 ms of queries: several server sessions.
      expect(ids.size).to.be.at.least(4)
      // The retired sessions are gone from the server, not just from the pool.
      const live = await fx.serverSessions(cluster(), 'primary')
      const retired = [...ids].slice(0, -1)
      expect(retired.filter((id) => live.includes(id))).to.deep.equal([])
      expect(
        t.dialect.getPoolStats().find((s) => s.node === 'primary')!.retiredByLifetime,
      ).to.be.at.least(3)
    })

    it('without maxLifetimeMs the same loop stays on one server session (the rotation is the setting)', async () => {
      const t = fx.create(cluster(), { health: { probeIntervalMs: 0 } })
      open.push(t)
      const ids = new Set<number>()
      for (let i = 0; i < 10; i++) {
        const { rows } = await fx.sessionId().execute(onPrimary(t.db))
        ids.add(Number(rows[0]!.id))
        await sleep(25)
      }
      expect(ids.size).to.equal(1)
    })

    it('reports pool statistics that match the connections the servers list', async () => {
      const t = fx.create(cluster(), {
        consistency: 'eventual',
        health: { probeIntervalMs: 0 },
        nodeOptions: { fromConnection: true, poolSize: 4 },
      })
      open.push(t)
      // Open several connections per node: concurrent reads and writes.
      await Promise.all(Array.from({ length: 12 }, () => fx.whereAmI(cluster()).execute(t.db)))
      await Promise.all(Array.from({ length: 4 }, () => fx.sessionId().execute(onPrimary(t.db))))
      const stats = t.dialect.getPoolStats()
      for (const s of stats) {
        const server = await fx.serverSessions(cluster(), s.node)
        expect(s.total, `${s.node}: pool total vs server sessions`).to.equal(server.length)
        expect(s.limit).to.equal(4)
        expect(s.total).to.be.at.most(4)
        expect(s.opened).to.equal(s.total)
        expect(s.inUse).to.equal(0)
        expect(s.idle).to.equal(s.total)
        expect(s.acquisitions).to.be.greaterThan(0)
        expect(s.acquireWaitMaxMs).to.be.at.least(s.acquireWaitMeanMs)
      }
    })

    it('closes idle connections after idleTimeoutMs on pools it creates, as the server sees it', async () => {
      const t = fx.create(cluster(), {
        consistency: 'eventual',
        health: { probeIntervalMs: 0 },
        nodeOptions: { fromConnection: true, poolSize: 4, idleTimeoutMs: 300 },
        replicaNames: [],
      })
      open.push(t)
      await Promise.all(Array.from({ length: 4 }, () => fx.sessionId().execute(t.db)))
      const before = (await fx.serverSessions(cluster(), 'primary')).length
      expect(before).to.be.at.least(2)
      const deadline = Date.now() + 5000
      let after = before
      while (Date.now() < deadline) {
        await sleep(200)
        after = (await fx.serverSessions(cluster(), 'primary')).length
        if (after < before) break
      }
      expect(after).to.be.lessThan(before)
    })

    it('warns once when a pool may open more connections than the server has room for', async () => {
      const events: ReplicationEvent[] = []
      const t = fx.create(cluster(), {
        consistency: 'eventual',
        health: { probeIntervalMs: 0 },
        nodeOptions: { fromConnection: true, poolSize: 100_000 },
        onEvent: (e) => events.push(e),
        replicaNames: [],
      })
      open.push(t)
      await fx.sessionId().execute(t.db)
      await fx.sessionId().execute(t.db)
      const oversized = events.filter((e) => e.type === 'pool-oversized')
      expect(oversized).to.have.length(1)
      expect(oversized[0]).to.include({ node: 'primary' })
    })

    it('shows the sqlcommenter comment, routing decision included, in the server activity; hostile values stay inside it', async () => {
      const t = fx.create(cluster(), {
        consistency: 'eventual',
        health: { probeIntervalMs: 0 },
        queryComments: true,
      })
      open.push(t)
      const hostile = "x'*/ drop table person; --\n/*"
      const running = withQueryComment({ route: '/reports', request_id: hostile }, () =>
        fx.sleep(1).execute(t.db),
      )
      const node = await (async () => {
        for (let i = 0; i < 40; i++) {
          await sleep(25)
          const last = t.routes.at(-1)
          if (last?.sql.includes('sleep')) return last.node
        }
        throw new Error('the statement was never routed')
      })()
      let seen: string | undefined
      for (let i = 0; i < 40 && seen === undefined; i++) {
        seen = (await fx.runningStatements(cluster(), node)).find((q) => q.includes('sleep'))
        if (seen === undefined) await sleep(25)
      }
      await running
      expect(seen, 'the statement as the server shows it').to.be.a('string')
      expect(seen).to.contain(`db_node='${node}'`)
      expect(seen).to.contain("db_route_reason='read'")
      expect(seen).to.contain("route='%2Freports'")
      expect(seen).to.contain(
        `request_id='${encodeURIComponent(hostile).replace(/[*'()!]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)}'`,
      )
      // The comment is one comment at the end: nothing after it, no second comment opened.
      expect(seen!.trimEnd().endsWith('*/')).to.equal(true)
      expect(seen!.split('/*')).to.have.length(2)
    })
  })
})
