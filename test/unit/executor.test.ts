import { trace } from '@opentelemetry/api'
import { expect } from 'chai'
import { CompiledQuery, type DatabaseConnection, Kysely } from 'kysely'
import { canRetry } from '../../src/core/retry-policy.js'
import { ReplicatedMysqlDialect, type ReplicatedMysqlDialectConfig } from '../../src/index.js'
import { type FakeMysqlNode, fakeMysqlNode } from '../support/fake-mysql.js'
import { useInMemoryTracing } from '../support/in-memory-tracing.js'

function setup(overrides: Partial<ReplicatedMysqlDialectConfig> = {}) {
  const primary = fakeMysqlNode('primary')
  const replicas = [fakeMysqlNode('replica-1'), fakeMysqlNode('replica-2')]
  const dialect = new ReplicatedMysqlDialect({
    primary: { pool: primary.pool },
    replicas: replicas.map((r) => ({ name: r.name, pool: r.pool })),
    selector: 'round-robin',
    consistency: 'eventual',
    health: { probeIntervalMs: 0 },
    ...overrides,
  })
  return { primary, replicas, dialect }
}

const SLEEP = CompiledQuery.raw('select sleep(10)')

/** A routing connection straight from the driver, as Kysely's abort handler gets it. */
type Cancellable = DatabaseConnection & Required<Pick<DatabaseConnection, 'killSession'>>

async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 1000 && !condition(); i++) await new Promise((r) => setImmediate(r))
  if (!condition()) throw new Error('condition never held')
}

const ranSleep = (node: FakeMysqlNode) => node.statements.some((s) => s.sql === SLEEP.sql)

async function run(connection: DatabaseConnection, path: 'execute' | 'stream'): Promise<unknown> {
  if (path === 'execute') return connection.executeQuery(SLEEP)
  const rows: unknown[] = []
  for await (const chunk of connection.streamQuery(SLEEP, 1)) rows.push(...chunk.rows)
  return rows
}

describe('executor: one set of rules on every path', () => {
  for (const path of ['execute', 'stream'] as const) {
    it(`${path === 'execute' ? 'an execute' : 'a stream'} whose session this library killed on request is neither retried nor held against its replica`, async () => {
      const { dialect, replicas } = setup()
      for (const r of replicas) r.hang = /sleep/
      const driver = dialect.createDriver()
      await driver.init()
      const connection = (await driver.acquireConnection()) as Cancellable
      const running = run(connection, path).then(
        () => undefined,
        (e: unknown) => e,
      )
      await until(() => ranSleep(replicas[0]!))
      await connection.killSession(async () => {})
      const error = (await running) as { code?: string; node?: string }
      expect(error).to.include({ code: 'ER_CONNECTION_KILLED', node: 'replica-1' })
      expect(ranSleep(replicas[1]!), 'retried on the other replica').to.equal(false)
      expect(replicas[0]!.statements.map((s) => s.sql)).to.include('kill connection 1')
      const info = dialect.getReplicaInfo().find((n) => n.name === 'replica-1')!
      expect(info.state).to.equal('healthy')
      expect(info.inFlight).to.equal(0)
      await driver.releaseConnection(connection)
      await driver.destroy()
    })

    it(`${path === 'execute' ? 'an execute' : 'a stream'} that loses its replica session unasked is re-run on another replica, which the failure prevents`, async () => {
      const { dialect, replicas } = setup()
      replicas[0]!.hang = /sleep/
      const driver = dialect.createDriver()
      await driver.init()
      const connection = await driver.acquireConnection()
      const running = run(connection, path)
      await until(() => ranSleep(replicas[0]!))
      replicas[0]!.lose()
      await running
      expect(ranSleep(replicas[1]!)).to.equal(true)
      const info = dialect.getReplicaInfo().find((n) => n.name === 'replica-1')!
      expect(info.state).to.not.equal('healthy')
      expect(info.inFlight).to.equal(0)
      await driver.releaseConnection(connection)
      await driver.destroy()
    })
  }

  describe('canRetry', () => {
    const lost = { connectionLevel: true, replicaRead: true, rowsDelivered: false }
    const defaults = { retryReads: true, hint: undefined, signal: undefined }
    it('re-runs a read whose replica connection failed before any row', () => {
      expect(canRetry(lost, defaults)).to.equal(true)
    })
    it('never re-runs a statement error, a primary statement, a stream with rows delivered', () => {
      expect(canRetry({ ...lost, connectionLevel: false }, defaults)).to.equal(false)
      expect(canRetry({ ...lost, replicaRead: false }, defaults)).to.equal(false)
      expect(canRetry({ ...lost, rowsDelivered: true }, defaults)).to.equal(false)
    })
    it('respects retry.reads, a named replica and an aborted signal; any replica may move', () => {
      expect(canRetry(lost, { ...defaults, retryReads: false })).to.equal(false)
      const named = { target: 'replica', name: 'replica-1' } as const
      expect(canRetry(lost, { ...defaults, hint: named })).to.equal(false)
      expect(canRetry(lost, { ...defaults, hint: { target: 'replica' } })).to.equal(true)
      expect(canRetry(lost, { ...defaults, signal: AbortSignal.abort() })).to.equal(false)
    })
    it('re-runs a read whose replica pool had no free connection (it never ran), under the same conditions', () => {
      const busy = { ...lost, connectionLevel: false, poolExhausted: true }
      expect(canRetry(busy, defaults)).to.equal(true)
      expect(canRetry({ ...busy, replicaRead: false }, defaults)).to.equal(false)
      expect(canRetry(busy, { ...defaults, retryReads: false })).to.equal(false)
      const named = { target: 'replica', name: 'replica-1' } as const
      expect(canRetry(busy, { ...defaults, hint: named })).to.equal(false)
      expect(canRetry(busy, { ...defaults, signal: AbortSignal.abort() })).to.equal(false)
    })
  })

  describe('tracing', () => {
    const exporter = useInMemoryTracing()

    for (const path of ['execute', 'stream'] as const) {
      it(`gives ${path === 'execute' ? 'an execute' : 'a stream'} its span, active while the driver runs the statement`, async () => {
        const { dialect, replicas } = setup({ tracing: true })
        const seen: Array<string | undefined> = []
        replicas[0]!.respond = (sqlText) => {
          if (sqlText.startsWith('select * from')) {
            seen.push(trace.getActiveSpan()?.spanContext().spanId)
          }
          return undefined
        }
        const db = new Kysely<{ person: { id: number } }>({ dialect })
        const query = db.selectFrom('person').selectAll()
        if (path === 'execute') await query.execute()
        else for await (const _ of query.stream()) void _
        await db.destroy()
        const spans = exporter.getFinishedSpans()
        expect(spans).to.have.length(1)
        expect(spans[0]!.name).to.equal('SELECT')
        expect(spans[0]!.attributes).to.include({
          'db.replication.node': 'replica-1',
          'db.replication.reason': 'read',
        })
        expect(seen).to.deep.equal([spans[0]!.spanContext().spanId])
      })
    }
  })
})
