import { expect } from 'chai'
import { Kysely } from 'kysely'
import { NodeHealth } from '../../src/health/node-health.js'
import { ReplicatedMysqlDialect, type ReplicationEvent } from '../../src/index.js'
import { fakeMysqlNode } from '../support/fake-mysql.js'

const settings = { cooldownMs: 1000, maxCooldownMs: 8000, maxReplicationLagMs: 500 }

describe('health state machine', () => {
  it('cools a node down on a connection failure, with exponential backoff and jitter within bounds', () => {
    const h = new NodeHealth(settings)
    expect(h.onFailure(0, () => 0)).to.deep.equal({ type: 'down', retryInMs: 500 })
    expect(h.state).to.equal('cooling-down')
    expect(h.usable()).to.equal(false)
    // Backoff doubles per failed trial (a failure after the wait); jitter keeps it in [half, full].
    let now = 0
    const waits = [1, 2, 3, 4, 5].map(() => {
      now = h.nextAttemptAtMs!
      h.onFailure(now, () => 1)
      return h.nextAttemptAtMs! - now
    })
    expect(waits.map((w) => Math.round(w))).to.deep.equal([2000, 4000, 8000, 8000, 8000])
  })

  it('does not escalate the backoff for failures of queries already in flight when the node died', () => {
    const h = new NodeHealth(settings)
    h.onFailure(0, () => 1)
    const next = h.nextAttemptAtMs
    for (let i = 0; i < 50; i++) expect(h.onFailure(5, () => 1)).to.equal(undefined)
    expect(h.nextAttemptAtMs).to.equal(next)
    expect(h.consecutiveFailures).to.equal(1)
    expect(h.state).to.equal('cooling-down')
  })

  it("reports 'down' after three consecutive failed attempts and 'up' after a success", () => {
    const h = new NodeHealth(settings)
    h.onFailure(0, Math.random)
    h.onFailure(h.nextAttemptAtMs!, Math.random)
    expect(h.state).to.equal('cooling-down')
    h.onFailure(h.nextAttemptAtMs!, Math.random)
    expect(h.state).to.equal('down')
    expect(h.onSuccess()).to.deep.equal({ type: 'up' })
    expect(h.state).to.equal('healthy')
    expect(h.usable()).to.equal(true)
  })

  it('admits one half-open trial once the wait is over', () => {
    const h = new NodeHealth(settings)
    h.onFailure(0, () => 0)
    expect(h.claimTrial(100)).to.equal(false)
    expect(h.claimTrial(600)).to.equal(true)
    expect(h.claimTrial(600)).to.equal(false)
  })

  it('excludes a replica lagging beyond the limit, or with replication stopped, and takes it back', () => {
    const h = new NodeHealth(settings)
    expect(h.onLag(100)).to.equal(undefined)
    expect(h.onLag(900)).to.deep.equal({ type: 'lag-exceeded', lagMs: 900 })
    expect(h.state).to.equal('lagging')
    expect(h.usable()).to.equal(false)
    expect(h.onLag(0)).to.deep.equal({ type: 'lag-recovered', lagMs: 0 })
    expect(h.onLag(null)).to.deep.equal({ type: 'lag-exceeded', lagMs: null })
  })
})

describe('prober', () => {
  it("probes only 'latency.sampleSize' replicas in the first round of 'least-latency', all of them later", async () => {
    const primary = fakeMysqlNode('primary')
    const replicas = Array.from({ length: 8 }, (_, i) => fakeMysqlNode(`replica-${i + 1}`))
    const dialect = new ReplicatedMysqlDialect({
      primary: { pool: primary.pool },
      replicas: replicas.map((r) => ({ name: r.name, pool: r.pool })),
      selector: 'least-latency',
      latency: { sampleSize: 3 },
      health: { probeIntervalMs: 0 },
    })
    const db = new Kysely<any>({ dialect })
    const probed = () =>
      replicas.filter((r) => r.statements.some((s) => s.sql.startsWith('select @@gtid_slave_pos')))
        .length
    await dialect.probeNow()
    expect(probed()).to.equal(3)
    await dialect.probeNow()
    expect(probed()).to.equal(8)
    await db.destroy()
  })

  it('reports a replica that is not read-only', async () => {
    const primary = fakeMysqlNode('primary')
    const replica = fakeMysqlNode('replica-1')
    replica.respond = (sql) =>
      sql.startsWith('select @@gtid_slave_pos') ? [{ pos: '', ro: 0 }] : undefined
    const events: ReplicationEvent[] = []
    const dialect = new ReplicatedMysqlDialect({
      primary: { pool: primary.pool },
      replicas: [{ name: 'replica-1', pool: replica.pool }],
      health: { probeIntervalMs: 0 },
      onEvent: (e) => events.push(e),
    })
    const db = new Kysely<any>({ dialect })
    await dialect.probeNow()
    await dialect.probeNow()
    await db.destroy()
    expect(events.filter((e) => e.type === 'not-read-only')).to.deep.equal([
      { type: 'not-read-only', node: 'replica-1' },
    ])
  })

  it('treats a replica whose receiver is reconnecting (primary unreachable) as unknown lag, not stopped', async () => {
    const primary = fakeMysqlNode('primary')
    const replica = fakeMysqlNode('replica-1')
    let status = {
      Seconds_Behind_Master: null as number | null,
      Slave_SQL_Running: 'Yes',
      Slave_IO_Running: 'Connecting',
    }
    replica.respond = (sql) => (sql.startsWith('show slave status') ? [status] : undefined)
    const dialect = new ReplicatedMysqlDialect({
      primary: { pool: primary.pool },
      replicas: [{ name: 'replica-1', pool: replica.pool }],
      health: { probeIntervalMs: 0 },
    })
    const db = new Kysely<any>({ dialect })
    await dialect.probeNow()
    expect(dialect.getReplicaInfo()[1]).to.include({ state: 'healthy', lagMs: undefined })
    status = { Seconds_Behind_Master: null, Slave_SQL_Running: 'No', Slave_IO_Running: 'Yes' }
    await dialect.probeNow()
    expect(dialect.getReplicaInfo()[1]).to.include({ state: 'lagging', lagMs: null })
    await db.destroy()
  })
})
