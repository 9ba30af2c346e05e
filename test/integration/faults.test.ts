import { expect } from 'chai'
import {
  NodeUnreachableError,
  onPrimary,
  onReplica,
  ReadTimeoutError,
  type ReplicationEvent,
  withReadTimeout,
} from '../../src/index.js'
import {
  type DialectFixture,
  forEachDialect,
  type TestCluster,
  type TestDialect,
  useDialectCluster,
} from '../support/dialects.js'
import { pollUntil } from '../support/ports.js'

/**
 * Servers that hang or refuse the library's credentials, on real clusters. Health settings are
 * tight so the suite stays fast (detection in a few hundred milliseconds instead of about two
 * seconds with the defaults; the defaults' figures are in docs/benchmarks.md).
 */
const TIGHT = {
  consistency: 'eventual',
  selector: 'round-robin',
  health: { probeIntervalMs: 100, probeTimeoutMs: 300, cooldownMs: 200, maxCooldownMs: 1000 },
} as const

interface LoadReport {
  reads: number
  failed: number
  errors: unknown[]
  maxMs: number
  /** Reads served per node after `since`, as the servers report. */
  servedAfter(since: number): Record<string, number>
}

/** Closed-loop reads by `workers` workers for `ms`; every read asks the server where it ran. */
async function readLoad(
  fx: DialectFixture,
  cluster: TestCluster,
  t: TestDialect,
  ms: number,
  workers = 16,
): Promise<LoadReport> {
  const end = performance.now() + ms
  const served: Array<{ at: number; node: string }> = []
  const report = {
    reads: 0,
    failed: 0,
    errors: [] as unknown[],
    maxMs: 0,
    servedAfter(since: number) {
      const counts: Record<string, number> = {}
      for (const s of served) if (s.at >= since) counts[s.node] = (counts[s.node] ?? 0) + 1
      return counts
    },
  }
  const worker = async () => {
    while (performance.now() < end) {
      const started = performance.now()
      try {
        const { rows } = await fx.whereAmI(cluster).execute(t.db)
        served.push({ at: performance.now(), node: fx.nodeOf(cluster, rows[0]!) })
      } catch (error) {
        report.failed++
        if (report.errors.length < 3) report.errors.push(error)
      }
      report.reads++
      report.maxMs = Math.max(report.maxMs, performance.now() - started)
    }
  }
  await Promise.all(Array.from({ length: workers }, worker))
  return report
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

forEachDialect((fx) => {
  describe('hung and refusing servers on a real cluster', function () {
    this.timeout(120_000)
    const cluster = useDialectCluster(fx)
    const open: TestDialect[] = []
    const create = (extra: Record<string, unknown> = {}) => {
      const t = fx.create(cluster(), { ...TIGHT, ...extra })
      open.push(t)
      return t
    }
    afterEach(async () => {
      while (open.length > 0) await open.pop()!.db.destroy()
    })

    const stalls: Array<[string, (c: TestCluster) => Promise<() => Promise<void>>, boolean]> = [
      [
        'frozen (SIGSTOP)',
        async (c) => {
          await c.freeze('replica-2')
          return () => c.thaw('replica-2')
        },
        false,
      ],
      [
        'black-holed (a proxy that moves no bytes)',
        async (c) => {
          const proxy = await c.proxyFor('replica-2')
          proxy.setMode('blackhole')
          return async () => proxy.setMode('pass')
        },
        true,
      ],
    ]
    for (const [what, stall, viaProxy] of stalls) {
      it(`a ${what} replica under 16 readers: no read fails, none waits for the stall, and it takes reads again after`, async () => {
        if (viaProxy) await cluster().proxyFor('replica-2')
        const events: ReplicationEvent[] = []
        const t = create({
          onEvent: (e: ReplicationEvent) => events.push(e),
          ...(viaProxy ? { reach: { 'replica-2': { viaProxy: true } } } : {}),
        })
        await readLoad(fx, cluster(), t, 300)
        const load = readLoad(fx, cluster(), t, 5_500)
        await sleep(500)
        const stalledAt = performance.now()
        const recover = await stall(cluster())
        let recoveredAt = 0
        try {
          await sleep(3_000)
        } finally {
          await recover()
          recoveredAt = performance.now()
        }
        const report = await load
        expect(report.failed, String(report.errors[0])).to.equal(0)
        // The stall lasted 3 s: a read waited for detection and a retry, not for the stall.
        expect(report.maxMs).to.be.below(2_000)
        const down = events.find((e) => e.type === 'node-down' && e.node === 'replica-2')
        expect(down, 'replica-2 reported down').to.not.equal(undefined)
        expect(performance.now() - stalledAt).to.be.greaterThan(0)
        // Back: it serves reads again before the load ends (2 s after it recovered).
        expect(report.servedAfter(recoveredAt)['replica-2'] ?? 0).to.be.greaterThan(0)
      })
    }

    it('a replica that refuses the credentials: every read succeeds and the replica is reported down with the error', async () => {
      const events: ReplicationEvent[] = []
      const t = create({
        onEvent: (e: ReplicationEvent) => events.push(e),
        reach: { 'replica-2': { password: 'wrong-password' } },
      })
      const report = await readLoad(fx, cluster(), t, 1_000, 8)
      expect(report.failed, String(report.errors[0])).to.equal(0)
      expect(report.reads).to.be.greaterThan(20)
      const info = t.dialect.getReplicaInfo().find((n) => n.name === 'replica-2')!
      expect(info.state).to.not.equal('healthy')
      expect(info.lastError).to.match(/denied|password|authentication/i)
      expect(info.lastError).to.not.include('wrong-password')
      expect(events.some((e) => e.type === 'node-down' && e.node === 'replica-2')).to.equal(true)
      expect(report.servedAfter(0)['replica-2'] ?? 0).to.equal(0)
    })

    it('a read sent by name to a replica that freezes under it fails with NodeUnreachableError once the replica is found hung, before the freeze ends', async () => {
      const t = create()
      // Connections are open and the replica known healthy before it freezes.
      await fx.whereAmI(cluster()).execute(onReplica(t.db, 'replica-2'))
      const read = fx.sleep(2).execute(onReplica(t.db, 'replica-2'))
      const outcome = read.then(
        () => undefined,
        (e: unknown) => e,
      )
      await sleep(100)
      await cluster().freeze('replica-2')
      const frozenAt = performance.now()
      // The freeze lasts 4 s: a read that waited for it would then succeed.
      const thawed = sleep(4_000).then(() => cluster().thaw('replica-2'))
      let error: unknown
      let tookMs = 0
      try {
        error = await outcome
        tookMs = performance.now() - frozenAt
      } finally {
        await thawed
      }
      expect(error).to.be.instanceOf(NodeUnreachableError)
      expect(error).to.include({ code: 'KR_NODE_UNREACHABLE', node: 'replica-2' })
      expect((error as Error).stack).to.include('faults.test.ts')
      expect(tookMs).to.be.below(4_000)
      // Named, it is not run elsewhere.
      expect(t.routes.filter((r) => /sleep/.test(r.sql)).map((r) => r.node)).to.deep.equal([
        'replica-2',
      ])
    })

    describe('read timeouts', () => {
      /** Sessions of the app user still running a sleep on `node`, as the server lists them. */
      const sleeping = async (node: string) =>
        (await fx.runningStatements(cluster(), node)).filter((s) => /sleep/i.test(s))
      const untilNoSleep = (withinMs = 5_000) =>
        pollUntil(
          async () => {
            const left = [
              ...(await sleeping('replica-1')),
              ...(await sleeping('replica-2')),
              ...(await sleeping('primary')),
            ]
            if (left.length > 0) throw new Error(`still running: ${left.join('; ')}`)
            return true
          },
          { timeoutMs: withinMs, intervalMs: 50, onTimeout: (last) => last as Error },
        )

      it('withReadTimeout(db, ms): a replica read past it fails with ReadTimeoutError, once, its statement gone from the server, the replica still healthy', async () => {
        const events: ReplicationEvent[] = []
        const t = create({ onEvent: (e: ReplicationEvent) => events.push(e) })
        const slow = fx.sleep(6)
        const started = performance.now()
        const error = await slow.execute(withReadTimeout(t.db, 300)).catch((e: unknown) => e)
        const tookMs = performance.now() - started
        expect(error).to.be.instanceOf(ReadTimeoutError)
        expect(error).to.include({ code: 'KR_READ_TIMEOUT' })
        expect((error as ReadTimeoutError).node).to.match(/^replica-/)
        // Its stack reaches this test, though the timer made it.
        expect((error as Error).stack).to.include('faults.test.ts')
        // Abandoned at the bound (not after the 6 s sleep), and not run again elsewhere.
        expect(tookMs).to.be.below(5_000)
        expect(t.routes.filter((r) => /sleep/.test(r.sql))).to.have.length(1)
        // Cancelled on the server too: closing its connection alone leaves a sleep running there
        // past this check (PostgreSQL to its end, 6 s; MariaDB about 5 s).
        await untilNoSleep(3_000)
        expect(events.filter((e) => e.type === 'node-down')).to.deep.equal([])
        expect(
          t.dialect.getReplicaInfo().filter((n) => n.role === 'replica' && n.state !== 'healthy'),
        ).to.deep.equal([])
      })

      it('readTimeoutMs bounds replica reads only: the primary runs the same statement to its end', async () => {
        const t = create({ readTimeoutMs: 300 })
        const error = await fx
          .sleep(6)
          .execute(t.db)
          .catch((e: unknown) => e)
        expect(error).to.be.instanceOf(ReadTimeoutError)
        const { rows } = await fx.sleep(0.6).execute(onPrimary(t.db))
        expect(rows).to.have.length(1)
        expect(t.routes.at(-1)).to.include({ node: 'primary', reason: 'hint' })
        await untilNoSleep(3_000)
      })

      it('a raw template run through withReadTimeout(db, ms) runs unbounded through db afterwards', async () => {
        const t = create()
        const slow = fx.sleep(0.8)
        const error = await slow.execute(withReadTimeout(t.db, 300)).catch((e: unknown) => e)
        expect(error).to.be.instanceOf(ReadTimeoutError)
        const { rows } = await slow.execute(t.db)
        expect(rows).to.have.length(1)
        expect(t.routes.at(-1)).to.include({ role: 'replica' })
        await untilNoSleep()
      })
    })

    it('destroy() with a frozen replica resolves in under 2 s, and nothing is thrown afterwards', async () => {
      const late: unknown[] = []
      const onLate = (error: unknown) => late.push(error)
      process.on('uncaughtException', onLate)
      process.on('unhandledRejection', onLate)
      try {
        const t = fx.create(cluster(), TIGHT)
        await readLoad(fx, cluster(), t, 300, 4)
        await cluster().freeze('replica-2')
        try {
          const reads = readLoad(fx, cluster(), t, 300, 4)
          await sleep(100)
          const started = performance.now()
          await t.db.destroy()
          expect(performance.now() - started).to.be.below(2_000)
          await reads.catch(() => undefined)
          await sleep(1_500)
        } finally {
          await cluster().thaw('replica-2')
        }
        expect(late).to.deep.equal([])
      } finally {
        process.off('uncaughtException', onLate)
        process.off('unhandledRejection', onLate)
      }
    })
  })
})
