import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { expect } from 'chai'
import { NoReplicaAvailableError, type ReplicationEvent } from '../../src/index.js'
import { forEachDialect, type TestDialect, useDialectCluster } from '../support/dialects.js'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

forEachDialect((fx) => {
  describe('health, failover and lag on a real cluster', function () {
    this.timeout(120_000)
    const cluster = useDialectCluster(fx)
    const open: TestDialect[] = []
    afterEach(async () => {
      while (open.length > 0) await open.pop()!.db.destroy()
    })

    async function where(t: TestDialect): Promise<string> {
      const { rows } = await fx.whereAmI(cluster()).execute(t.db)
      return fx.nodeOf(cluster(), rows[0]!)
    }

    it('a replica killed with SIGKILL under a read load at concurrency 16 costs no failed read, and serves again after its restart', async () => {
      const events: ReplicationEvent[] = []
      const health = {
        probeIntervalMs: 250,
        cooldownMs: 500,
        maxCooldownMs: 2000,
        probeTimeoutMs: 500,
      }
      const t = fx.create(cluster(), {
        consistency: 'eventual',
        selector: 'round-robin',
        health,
        onEvent: (e) => events.push(e),
      })
      open.push(t)
      const victim = 'replica-1'
      let reads = 0
      let failed = 0
      const errors: unknown[] = []
      const perNodeAfterRestart = new Map<string, number>()
      let restartedAt: number | undefined
      let firstReadAfterRestart: number | undefined
      const deadline = Date.now() + 10_000
      const worker = async () => {
        while (Date.now() < deadline) {
          try {
            const node = await where(t)
            reads++
            if (restartedAt !== undefined) {
              perNodeAfterRestart.set(node, (perNodeAfterRestart.get(node) ?? 0) + 1)
              if (node === victim && firstReadAfterRestart === undefined)
                firstReadAfterRestart = Date.now()
            }
          } catch (error) {
            failed++
            if (errors.length < 5) errors.push(error)
          }
        }
      }
      const chaos = (async () => {
        await sleep(2000)
        await cluster().kill(victim)
        await sleep(3000)
        await cluster().restart(victim)
        restartedAt = Date.now()
      })()
      await Promise.all([...Array.from({ length: 16 }, worker), chaos])
      const backAfterMs =
        firstReadAfterRestart === undefined ? undefined : firstReadAfterRestart - restartedAt!
      process.stderr.write(
        `      ${reads} reads, ${failed} failed; ${victim} served again ${backAfterMs ?? 'never'} ms after its restart; after restart: ${JSON.stringify(Object.fromEntries(perNodeAfterRestart))}\n`,
      )
      expect(failed, String(errors[0])).to.equal(0)
      expect(events.some((e) => e.type === 'node-down' && e.node === victim)).to.equal(true)
      expect(events.some((e) => e.type === 'node-up' && e.node === victim)).to.equal(true)
      expect(perNodeAfterRestart.get(victim) ?? 0).to.be.greaterThan(0)
      // Back within the longest cool-down plus a probe interval (and the slack of one probe round trip).
      expect(backAfterMs).to.be.lessThan(health.maxCooldownMs + health.probeIntervalMs + 1000)
    })

    it('with the primary killed, writes fail with the server error and the primary name, reads keep working', async () => {
      // Static roles: no replica is promoted here, so writes fail at once (with the topology
      // followed they wait for a new primary: see topology.test.ts).
      const t = fx.create(cluster(), {
        consistency: 'eventual',
        health: { probeIntervalMs: 250 },
        topology: 'static',
      })
      open.push(t)
      await where(t)
      await cluster().kill('primary')
      try {
        const err = await t.db.schema
          .createTable('never')
          .addColumn('id', 'integer')
          .execute()
          .catch((e: unknown) => e)
        expect(err).to.be.instanceOf(Error)
        expect((err as Error & { node?: string }).node).to.equal('primary')
        expect((err as Error).message).to.contain('(node "primary")')
        // Keep reading across several probe rounds: the replicas lost their primary, but not their
        // data, and must keep taking reads (not be marked stopped and send reads to the dead primary).
        const until = Date.now() + 1500
        let reads = 0
        while (Date.now() < until) {
          expect(await where(t)).to.match(/^replica-/)
          reads++
          await sleep(20)
        }
        expect(reads).to.be.greaterThan(20)
        expect(
          t.dialect
            .getReplicaInfo()
            .filter((n) => n.role === 'replica')
            .map((n) => n.state),
        ).to.deep.equal(['healthy', 'healthy'])
      } finally {
        await cluster().restart('primary')
      }
    })

    it('a replica whose SQL thread stops is excluded by lag within two probe intervals, and back after it restarts', async () => {
      const events: ReplicationEvent[] = []
      const probeIntervalMs = 300
      const t = fx.create(cluster(), {
        consistency: 'eventual',
        // Round-robin, so that "serves reads again" does not depend on latency estimates.
        selector: 'round-robin',
        health: { probeIntervalMs },
        maxReplicationLagMs: 2000,
        onEvent: (e) => events.push(e),
      })
      open.push(t)
      await t.dialect.probeNow()
      const victim = 'replica-2'
      await cluster().stopReplicaSqlThread(victim)
      const stoppedAt = Date.now()
      try {
        // Keep writing, as the issue says.
        await t.db.schema.dropTable('lagging').ifExists().execute()
        await t.db.schema.createTable('lagging').addColumn('id', 'integer').execute()
        let excludedAt: number | undefined
        while (Date.now() - stoppedAt < 10 * probeIntervalMs) {
          await t.db.insertInto('lagging').values({ id: 1 }).execute()
          if (t.dialect.getReplicaInfo().find((n) => n.name === victim)?.state === 'lagging') {
            excludedAt = Date.now()
            break
          }
          await sleep(20)
        }
        expect(excludedAt, 'never marked lagging').to.not.equal(undefined)
        // Within two probe intervals, plus the round trips of a loaded machine.
        expect(excludedAt! - stoppedAt).to.be.at.most(2 * probeIntervalMs + 1000)
        for (let i = 0; i < 10; i++) expect(await where(t)).to.not.equal(victim)
        expect(events.some((e) => e.type === 'lag-exceeded' && e.node === victim)).to.equal(true)
      } finally {
        await cluster().startReplica(victim)
      }
      const restartedAt = Date.now()
      while (t.dialect.getReplicaInfo().find((n) => n.name === victim)?.state !== 'healthy') {
        if (Date.now() - restartedAt > 10_000) throw new Error('never recovered')
        await sleep(20)
      }
      expect(events.some((e) => e.type === 'lag-recovered' && e.node === victim)).to.equal(true)
      const seen = new Set<string>()
      for (let i = 0; i < 20; i++) seen.add(await where(t))
      expect(seen.has(victim)).to.equal(true)
    })

    it('with every replica down, reads fall back to the primary, or fail with NoReplicaAvailableError, and return to the replicas', async () => {
      const health = { probeIntervalMs: 200, cooldownMs: 200, maxCooldownMs: 400 }
      const fallback = fx.create(cluster(), { consistency: 'eventual', health })
      const strict = fx.create(cluster(), { consistency: 'eventual', health, fallback: 'error' })
      open.push(fallback, strict)
      await where(fallback)
      await where(strict)
      for (const r of cluster().replicas) await cluster().kill(r.name)
      try {
        for (let i = 0; i < 5; i++) expect(await where(fallback)).to.equal('primary')
        await strict.dialect.probeNow()
        let err: unknown
        for (let i = 0; i < 5 && !(err instanceof NoReplicaAvailableError); i++) {
          err = await where(strict).catch((e: unknown) => e)
        }
        expect(err).to.be.instanceOf(NoReplicaAvailableError)
      } finally {
        for (const r of cluster().replicas) await cluster().restart(r.name)
      }
      const started = Date.now()
      for (;;) {
        const node = await where(fallback)
        if (node.startsWith('replica-')) break
        if (Date.now() - started > 10_000) throw new Error('reads never returned to the replicas')
        await sleep(50)
      }
      // The strict instance has its own view of the replicas: it uses them again once its own
      // cool-down and probe say they are back (until then it keeps refusing, never the primary).
      for (;;) {
        const node = await where(strict).catch((e: unknown) => e)
        if (typeof node === 'string') {
          expect(node).to.match(/^replica-/)
          break
        }
        expect(node).to.be.instanceOf(NoReplicaAvailableError)
        if (Date.now() - started > 10_000)
          throw new Error('the strict instance never used the replicas again')
        await sleep(50)
      }
    })

    it('a process that runs one query and destroys the Kysely instance exits by itself', async () => {
      const script = fileURLToPath(new URL('../support/one-query.ts', import.meta.url))
      const options = cluster().connectionOptions('primary')
      const replica = cluster().connectionOptions('replica-1')
      const started = Date.now()
      let out = ''
      const code = await new Promise<number | null>((resolve, reject) => {
        const child = spawn(
          process.execPath,
          ['--import', 'tsx', script, fx.name, JSON.stringify({ primary: options, replica })],
          {
            stdio: ['ignore', 'pipe', 'inherit'],
          },
        )
        child.stdout.on('data', (d) => {
          out += d
        })
        const timer = setTimeout(() => {
          child.kill('SIGKILL')
          reject(new Error('the process did not exit by itself within 15 s'))
        }, 15_000)
        child.on('exit', (c) => {
          clearTimeout(timer)
          resolve(c)
        })
      })
      const { exitAfterDestroyMs } = JSON.parse(out.trim().split('\n').at(-1) ?? '{}')
      process.stderr.write(
        `      exited by itself ${Number(exitAfterDestroyMs).toFixed(1)} ms after db.destroy() (${Date.now() - started} ms with process start-up)\n`,
      )
      expect(code).to.equal(0)
      expect(exitAfterDestroyMs).to.be.lessThan(1000)
    })
  })
})
