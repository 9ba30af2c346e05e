import { metrics } from '@opentelemetry/api'
import {
  AggregationTemporality,
  type DataPoint,
  type Histogram,
  InMemoryMetricExporter,
  MeterProvider,
  type MetricData,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics'
import { expect } from 'chai'
import { Kysely, sql } from 'kysely'
import sinon from 'sinon'
import {
  consistencyScope,
  ReplicatedMysqlDialect,
  type ReplicatedMysqlDialectConfig,
} from '../../src/index.js'
import { errorType } from '../../src/observability/metrics.js'
import { fakeMysqlNode } from '../support/fake-mysql.js'

/** A meter provider whose metrics a test collects on demand, through the in-memory exporter. */
function meterProvider() {
  const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE)
  const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 })
  const provider = new MeterProvider({ readers: [reader] })
  /** Collects now; returns the metrics by name. */
  const collect = async (): Promise<Map<string, MetricData>> => {
    exporter.reset()
    await reader.forceFlush()
    const [resource] = exporter.getMetrics()
    const all = (resource?.scopeMetrics ?? []).flatMap((s) => s.metrics)
    return new Map(all.map((m) => [m.descriptor.name, m]))
  }
  return { provider, collect }
}

function setup(overrides: Partial<ReplicatedMysqlDialectConfig> = {}) {
  const primary = fakeMysqlNode('primary')
  const replicas = [fakeMysqlNode('replica-1'), fakeMysqlNode('replica-2')]
  // What mysql2 pools created from options hold: the node's endpoint.
  Object.assign(primary.pool.config, {
    connectionConfig: { host: 'primary.internal', port: 3307, database: 'app' },
  })
  const dialect = new ReplicatedMysqlDialect({
    primary: { pool: primary.pool },
    replicas: replicas.map((r) => ({ name: r.name, pool: r.pool })),
    selector: 'round-robin',
    consistency: 'eventual',
    health: { probeIntervalMs: 0 },
    metrics: true,
    ...overrides,
  })
  return { primary, replicas, dialect, db: new Kysely<any>({ dialect }) }
}

type Attributes = Record<string, unknown>

const points = (metric: MetricData | undefined): Array<DataPoint<unknown>> =>
  (metric?.dataPoints ?? []) as Array<DataPoint<unknown>>

/** The data points' values (histograms: their counts), keyed by the chosen attributes. */
function valuesBy(metric: MetricData | undefined, keys: string[]): Record<string, number> {
  const out: Record<string, number> = {}
  for (const p of points(metric)) {
    const key = keys.map((k) => String((p.attributes as Attributes)[k])).join(' ')
    const value = typeof p.value === 'number' ? p.value : (p.value as Histogram).count
    out[key] = (out[key] ?? 0) + value
  }
  return out
}

async function workload(db: Kysely<any>, writes: number, reads: number): Promise<void> {
  for (let i = 0; i < writes; i++) await db.insertInto('person').values({ id: i }).execute()
  for (let i = 0; i < reads; i++) await db.selectFrom('person').selectAll().execute()
}

describe('OpenTelemetry metrics', () => {
  describe('with the global MeterProvider (metrics: true)', () => {
    // A provider per test: cumulative sums would otherwise carry over from one test to the next.
    let current: ReturnType<typeof meterProvider>
    const collect = () => current.collect()
    beforeEach(() => {
      current = meterProvider()
      metrics.setGlobalMeterProvider(current.provider)
    })
    afterEach(async () => {
      metrics.disable()
      await current.provider.shutdown()
    })

    it('records one db.client.operation.duration per statement, with the semantic conventions and routing attributes', async () => {
      const { db } = setup()
      await workload(db, 10, 30)
      const byName = await collect()
      await db.destroy()
      const duration = byName.get('db.client.operation.duration')!
      expect(duration.descriptor.unit).to.equal('s')
      const recorded = points(duration).reduce((n, p) => n + (p.value as Histogram).count, 0)
      expect(recorded).to.equal(40)
      expect(
        valuesBy(duration, ['db.replication.node', 'db.operation.name', 'db.replication.reason']),
      ).to.deep.equal({
        'primary INSERT write': 10,
        'replica-1 SELECT read': 15,
        'replica-2 SELECT read': 15,
      })
      const write = points(duration).find(
        (p) => (p.attributes as Attributes)['db.replication.node'] === 'primary',
      )!
      expect(write.attributes).to.deep.equal({
        'db.system.name': 'mariadb',
        'db.operation.name': 'INSERT',
        'db.namespace': 'app',
        'server.address': 'primary.internal',
        'server.port': 3307,
        'db.replication.node': 'primary',
        'db.replication.role': 'primary',
        'db.replication.reason': 'write',
      })
      // The conventions' buckets, in seconds.
      expect((write.value as Histogram).buckets.boundaries).to.deep.equal([
        0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10,
      ])
    })

    it('counts routing decisions by node, role and reason', async () => {
      const { db } = setup()
      await workload(db, 10, 30)
      const byName = await collect()
      await db.destroy()
      expect(
        valuesBy(byName.get('kysely_replicated.routes'), [
          'db.replication.node',
          'db.replication.role',
          'db.replication.reason',
        ]),
      ).to.deep.equal({
        'primary primary write': 10,
        'replica-1 replica read': 15,
        'replica-2 replica read': 15,
      })
    })

    it("reads every pool's connections, pending requests and limit at collection time", async () => {
      const { db, dialect } = setup()
      await workload(db, 10, 30)
      const byName = await collect()
      const count = byName.get('db.client.connection.count')
      expect(
        valuesBy(count, ['db.client.connection.pool.name', 'db.client.connection.state']),
      ).to.deep.equal({
        'primary used': 0,
        'primary idle': 1,
        'replica-1 used': 0,
        'replica-1 idle': 1,
        'replica-2 used': 0,
        'replica-2 idle': 1,
      })
      expect(
        valuesBy(byName.get('db.client.connection.pending_requests'), [
          'db.client.connection.pool.name',
        ]),
      ).to.deep.equal({ primary: 0, 'replica-1': 0, 'replica-2': 0 })
      expect(
        valuesBy(byName.get('db.client.connection.max'), ['db.client.connection.pool.name']),
      ).to.deep.equal({ primary: 10, 'replica-1': 10, 'replica-2': 10 })
      // One wait_time sample per checkout, as getPoolStats() counts them.
      const acquisitions = Object.fromEntries(
        dialect.getPoolStats().map((s) => [s.node, s.acquisitions]),
      )
      expect(
        valuesBy(byName.get('db.client.connection.wait_time'), ['db.client.connection.pool.name']),
      ).to.deep.equal(acquisitions)
      expect(acquisitions['replica-1']).to.equal(15)
      await db.destroy()
    })

    it('shows a connection in use while a statement holds it', async () => {
      const { db, replicas } = setup()
      replicas[0]!.hang = /sleep/
      const running = sql`select sleep(10)`.execute(db).catch(() => undefined)
      const sleeping = () => replicas[0]!.statements.some((s) => s.sql.includes('sleep'))
      // Real time, not event loop turns: the first statement also loads the OpenTelemetry API.
      for (const until = Date.now() + 10_000; !sleeping() && Date.now() < until; ) {
        await new Promise((r) => setTimeout(r, 1))
      }
      expect(sleeping(), 'the statement reached replica-1').to.equal(true)
      const byName = await collect()
      replicas[0]!.lose() // The read is then retried on replica-2, which answers.
      await running
      await db.destroy()
      expect(
        valuesBy(byName.get('db.client.connection.count'), [
          'db.client.connection.pool.name',
          'db.client.connection.state',
        ]),
      ).to.include({ 'replica-1 used': 1, 'replica-1 idle': 0 })
    })

    it('reports node up and replica lag from getReplicaInfo()', async () => {
      const { db, dialect, replicas } = setup()
      await db.selectFrom('person').selectAll().execute()
      await dialect.probeNow()
      replicas[1]!.respond = (s) =>
        s.startsWith('show slave status')
          ? [{ Seconds_Behind_Master: 3, Slave_SQL_Running: 'Yes', Slave_IO_Running: 'Yes' }]
          : undefined
      await dialect.probeNow()
      replicas[0]!.down = true
      await dialect.probeNow()
      const byName = await collect()
      await db.destroy()
      expect(
        valuesBy(byName.get('kysely_replicated.node.up'), [
          'db.replication.node',
          'db.replication.role',
        ]),
      ).to.deep.equal({ 'primary primary': 1, 'replica-1 replica': 0, 'replica-2 replica': 1 })
      const lag = byName.get('kysely_replicated.replica.lag')!
      expect(lag.descriptor.unit).to.equal('s')
      expect(valuesBy(lag, ['db.replication.node'])).to.deep.equal({
        'replica-1': 0,
        'replica-2': 3,
      })
    })

    it('sets error.type on a failed statement: the driver error code', async () => {
      const { db, replicas } = setup()
      for (const r of replicas) {
        r.respond = (s) =>
          s.includes('nope')
            ? Object.assign(new Error("Table 'nope' doesn't exist"), { code: 'ER_NO_SUCH_TABLE' })
            : undefined
      }
      await sql`select * from nope`.execute(db).catch(() => undefined)
      const byName = await collect()
      await db.destroy()
      expect(
        valuesBy(byName.get('db.client.operation.duration'), ['db.replication.node', 'error.type']),
      ).to.deep.equal({ 'replica-1 ER_NO_SUCH_TABLE': 1 })
    })

    it('records causal waits', async () => {
      const { db } = setup({ consistency: 'causal' })
      await consistencyScope(async () => {
        await db.insertInto('person').values({ id: 1 }).execute()
        await db.selectFrom('person').selectAll().execute()
      })
      const byName = await collect()
      await db.destroy()
      const wait = byName.get('kysely_replicated.causal_wait.duration')!
      expect(wait.descriptor.unit).to.equal('s')
      expect(points(wait).map((p) => (p.value as Histogram).count)).to.deep.equal([1])
      expect(
        valuesBy(byName.get('kysely_replicated.routes'), ['db.replication.reason']),
      ).to.include({ 'causal-waited': 1 })
    })

    it("stops reading a destroyed dialect's pools", async () => {
      const { db, dialect } = setup()
      await workload(db, 1, 1)
      await db.destroy()
      const poolStats = sinon.spy(dialect, 'getPoolStats')
      const byName = await collect()
      expect(poolStats.called).to.equal(false)
      expect(points(byName.get('db.client.connection.count'))).to.deep.equal([])
    })

    it('records nothing unless metrics are configured', async () => {
      const { db } = setup({ metrics: undefined })
      await workload(db, 1, 1)
      const byName = await collect()
      await db.destroy()
      expect(points(byName.get('db.client.operation.duration'))).to.deep.equal([])
      expect(points(byName.get('kysely_replicated.routes'))).to.deep.equal([])
    })
  })

  it('uses the meterProvider given in the config, not the global one', async () => {
    const { provider, collect } = meterProvider()
    const { db } = setup({ metrics: { meterProvider: provider } })
    await workload(db, 2, 3)
    const byName = await collect()
    await db.destroy()
    await provider.shutdown()
    expect(
      valuesBy(byName.get('db.client.operation.duration'), ['db.replication.role']),
    ).to.deep.equal({ primary: 2, replica: 3 })
  })

  describe('errorType', () => {
    it("is the driver's code, else the error's class name, else _OTHER", () => {
      expect(errorType(Object.assign(new Error('x'), { code: '23505' }))).to.equal('23505')
      expect(errorType(Object.assign(new Error('x'), { code: 1062 }))).to.equal('1062')
      expect(errorType(new TypeError('x'))).to.equal('TypeError')
      expect(errorType('a string')).to.equal('_OTHER')
    })
  })
})
