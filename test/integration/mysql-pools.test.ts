import { expect } from 'chai'
import { sql } from 'kysely'
import { onReplica, PoolWaitTimeoutError, type ReplicationEvent } from '../../src/index.js'
import { mysqlFixture, type TestDialect, useDialectCluster } from '../support/dialects.js'
import { pollUntil } from '../support/ports.js'

/**
 * A mysql2 pool that refuses a checkout at once when it is full (`waitForConnections: false`, or
 * `queueLimit` checkouts already waiting) says nothing of its node: mysql2 answers with a plain
 * `Error('No connections available.')`. Before it became a `PoolWaitTimeoutError`, a plain read
 * that met such a replica failed instead of running elsewhere, and a read sent to it by name got
 * an error that named no node and no remedy.
 */
describe('[mysql] a replica pool that refuses checkouts when full', function () {
  this.timeout(60_000)
  const cluster = useDialectCluster(mysqlFixture)
  let t: TestDialect | undefined
  afterEach(async () => {
    await t?.db.destroy()
    t = undefined
  })

  const where = sql<{ server_id: number }>`select @@server_id as server_id`
  const ranOn = (row: { server_id: number } | undefined) =>
    mysqlFixture.nodeOf(cluster(), row as Record<string, unknown>)

  /** replica-1's pool has one connection and does not queue; a 1.5 s read holds it. */
  async function busyReplica(poolOptions: Record<string, unknown>) {
    const events: ReplicationEvent[] = []
    t = mysqlFixture.create(cluster(), {
      consistency: 'eventual',
      health: { probeIntervalMs: 0 },
      replicaNames: ['replica-1'],
      poolOptions: { connectionLimit: 1, ...poolOptions },
      onEvent: (e: ReplicationEvent) => events.push(e),
    })
    const d = t
    const holding = onReplica(d.db, 'replica-1')
      .selectNoFrom([sql<number>`@@server_id`.as('server_id'), sql`sleep(1.5)`.as('s')])
      .executeTakeFirstOrThrow()
    await pollUntil(
      async () =>
        d.dialect.getPoolStats().find((p) => p.node === 'replica-1')?.inUse === 1 || undefined,
      { timeoutMs: 5_000, onTimeout: () => new Error('the long read never started') },
    )
    return { d, events, holding }
  }

  const expectHealthy = (d: TestDialect, events: readonly ReplicationEvent[]) => {
    expect(d.dialect.getReplicaInfo().find((n) => n.name === 'replica-1')).to.include({
      state: 'healthy',
    })
    expect(events.filter((e) => e.type === 'node-down')).to.deep.equal([])
  }

  it('fails a read sent to that replica by name with PoolWaitTimeoutError, the replica still healthy', async () => {
    const { d, events, holding } = await busyReplica({ waitForConnections: false })
    const error = await where.execute(onReplica(d.db, 'replica-1')).catch((e: unknown) => e)
    expect(error).to.be.instanceOf(PoolWaitTimeoutError)
    expect(error).to.include({ node: 'replica-1', code: 'KR_POOL_WAIT_TIMEOUT' })
    expect((error as Error).message).to.include('waitForConnections: false')
    expect((error as Error).cause).to.have.property('message', 'No connections available.')
    // Made in mysql2's callback, it still ends with the caller's stack.
    expect((error as Error).stack).to.include('mysql-pools.test.ts')
    expectHealthy(d, events)
    expect(ranOn(await holding)).to.equal('replica-1')
  })

  it('runs a plain read that met that replica on the primary instead (no failure), the replica still healthy', async () => {
    const { d, events, holding } = await busyReplica({ waitForConnections: false })
    const { rows } = await where.execute(d.db)
    expect(ranOn(rows[0])).to.equal('primary')
    expect(d.routes.at(-1)).to.include({ node: 'primary', reason: 'retry' })
    expectHealthy(d, events)
    expect(ranOn(await holding)).to.equal('replica-1')
  })

  it('treats a full checkout queue (queueLimit) the same way', async () => {
    const { d, events, holding } = await busyReplica({ queueLimit: 1 })
    // One read waits in the queue for the held connection; the next one finds the queue full.
    const queued = where.execute(onReplica(d.db, 'replica-1'))
    const error = await where.execute(onReplica(d.db, 'replica-1')).catch((e: unknown) => e)
    expect(error).to.be.instanceOf(PoolWaitTimeoutError)
    expect((error as Error).message).to.include('queueLimit')
    expectHealthy(d, events)
    expect(ranOn((await queued).rows[0])).to.equal('replica-1')
    expect(ranOn(await holding)).to.equal('replica-1')
  })
})
