import { expect } from 'chai'
import * as kyselyModule from 'kysely'
import { CompiledQuery, Kysely, sql } from 'kysely'
import sinon from 'sinon'
import { formatLsn } from '../../src/consistency/pg-lsn.js'
import type { PhysicalConnection } from '../../src/core/contracts/engine.js'
import {
  ConnectionSetupError,
  consistencyScope,
  onReplica,
  PoolWaitTimeoutError,
  ReplicatedConfigError,
  ReplicatedPostgresDialect,
  type ReplicatedPostgresDialectConfig,
} from '../../src/index.js'
import { PostgresEngine, withoutPageHeader } from '../../src/postgres/postgres-engine.js'
import { FakeCursor, type FakePgNode, fakePgNode } from '../support/fake-pg.js'
import {
  type DB,
  lastRoute,
  postgresRouting,
  type RoutingHarness,
  routingHarness,
} from '../support/routing-harness.js'

/** Kysely 0.29's AbortedTransactionError; Kysely 0.28 has none. */
const AbortedTransactionError = (
  kyselyModule as unknown as { AbortedTransactionError?: new () => Error }
).AbortedTransactionError

// The rules every engine shares are in routing.test.ts; these are PostgreSQL's own.

const POSITION = /^select pg_current_wal_insert_lsn\(\)/
const POLL = 'select pg_last_wal_replay_lsn() >= $1::pg_lsn as reached'

const harness = (overrides: Partial<ReplicatedPostgresDialectConfig> = {}, replicaCount = 2) =>
  routingHarness(postgresRouting, overrides, replicaCount)

describe('ReplicatedPostgresDialect routing (fake pg pools)', () => {
  let h: RoutingHarness<FakePgNode, ReplicatedPostgresDialect>
  afterEach(async () => {
    await h?.db.destroy()
  })

  describe('reads and writes through the builder', () => {
    const cteWrites: Array<[string, (db: Kysely<DB>) => { execute(): Promise<unknown> }]> = [
      [
        'an INSERT ... RETURNING in a top-level CTE',
        (db) =>
          db
            .with('x', (db) => db.insertInto('person').values({ id: 1, name: 'a' }).returning('id'))
            .selectFrom('x')
            .selectAll(),
      ],
      [
        'an UPDATE in a CTE',
        (db) =>
          db
            .with('x', (db) => db.updateTable('person').set({ name: 'b' }).returning('id'))
            .selectFrom('x')
            .selectAll(),
      ],
      [
        'a DELETE in a CTE nested in a CTE',
        (db) =>
          db
            .with('outer', (db) =>
              db
                .with('inner', (db) => db.deleteFrom('pet').returning('owner_id'))
                .selectFrom('inner')
                .select('owner_id'),
            )
            .selectFrom('outer')
            .selectAll(),
      ],
      [
        'an INSERT CTE inside a WHERE subquery',
        (db) =>
          db
            .selectFrom('person')
            .selectAll()
            .where(
              'id',
              'in',
              db
                .with('x', (db) =>
                  db.insertInto('pet').values({ id: 1, owner_id: 1 }).returning('owner_id'),
                )
                .selectFrom('x')
                .select('owner_id'),
            ),
      ],
    ]
    for (const [name, build] of cteWrites) {
      it(`routes a SELECT with ${name} to the primary as a write`, async () => {
        h = harness()
        await build(h.db).execute()
        expect(lastRoute(h)).to.include({ role: 'primary', reason: 'write' })
        expect(h.userStatements(h.replicas[0]!)).to.have.length(0)
        for (const replica of h.replicas) sinon.assert.notCalled(replica.pool.connect)
      })
    }

    for (const fn of ['nextval', 'pg_advisory_lock', 'set_config', 'txid_current']) {
      it(`routes a SELECT calling ${fn}() to the primary`, async () => {
        h = harness()
        await h.db.selectNoFrom((eb) => eb.fn<number>(fn, [sql.lit('x')]).as('v')).execute()
        expect(lastRoute(h)).to.include({ role: 'primary', reason: 'primary-function', detail: fn })
        await sql`select ${sql.raw(fn)}('x')`.execute(h.db)
        expect(lastRoute(h)).to.include({ role: 'primary', reason: 'primary-function' })
      })
    }

    for (const [name, build] of [
      [
        'for no key update',
        (db: Kysely<DB>) => db.selectFrom('person').selectAll().forNoKeyUpdate(),
      ],
      ['for key share', (db: Kysely<DB>) => db.selectFrom('person').selectAll().forKeyShare()],
      [
        'for update of ... nowait',
        (db: Kysely<DB>) => db.selectFrom('person').selectAll().forUpdate(['person']).noWait(),
      ],
    ] as const) {
      it(`routes a SELECT ... ${name} to the primary as a locking read`, async () => {
        h = harness()
        await build(h.db).execute()
        expect(lastRoute(h)).to.include({ role: 'primary', reason: 'locking-read' })
      })
    }
  })

  describe('raw SQL', () => {
    for (const text of [
      'listen jobs',
      "notify jobs, 'x'",
      'unlisten *',
      "set search_path = 'app'",
      'reset all',
      'discard all',
      'prepare q as select 1',
      'create temp table t (id int)',
      'copy person from stdin',
      "select pg_notify('jobs', 'x')",
      'lock table person in exclusive mode',
    ]) {
      it(`routes \`${text}\` to the primary`, async () => {
        h = harness()
        await h.db.executeQuery(CompiledQuery.raw(text))
        expect(lastRoute(h).role).to.equal('primary')
      })
    }

    for (const text of [
      'show search_path',
      'explain select * from person',
      'explain (format json) select 1',
      'copy (select * from person) to stdout',
      'values (1), (2)',
      'table person',
    ]) {
      it(`routes \`${text}\` to a replica`, async () => {
        h = harness()
        await h.db.executeQuery(CompiledQuery.raw(text))
        expect(lastRoute(h)).to.include({ role: 'replica', reason: 'read' })
      })
    }

    it('routes EXPLAIN ANALYZE of a write to the primary', async () => {
      h = harness()
      await h.db.executeQuery(
        CompiledQuery.raw("explain analyze insert into person values (1, 'a')"),
      )
      expect(lastRoute(h).role).to.equal('primary')
    })

    it('pins a db.connection() scope to the primary session after LISTEN', async () => {
      h = harness()
      await h.db.connection().execute(async (conn) => {
        await conn.selectFrom('person').selectAll().execute()
        await sql`listen jobs`.execute(conn)
        await conn.selectFrom('person').selectAll().execute()
      })
      expect(h.routes.map((r) => `${r.role}/${r.reason}`)).to.deep.equal([
        'replica/read',
        'primary/session-state',
        'primary/session-pinned',
      ])
      const primary = h.userStatements(h.primary)
      expect(new Set(primary.map((s) => s.connectionId)).size).to.equal(1)
      sinon.assert.calledOnce(h.primary.pool.connect)
    })
  })

  describe('transactions', () => {
    it('builds the BEGIN exactly as Kysely: isolation level and access mode', async () => {
      h = harness()
      await h.db
        .transaction()
        .setIsolationLevel('serializable')
        .setAccessMode('read only')
        .execute(async () => {})
      await h.db
        .transaction()
        .setIsolationLevel('repeatable read')
        .execute(async () => {})
      await h.db.transaction().execute(async () => {})
      expect(h.ran().filter((s) => /begin|start/.test(s))).to.have.members([
        'replica-1: start transaction isolation level serializable read only',
        'primary: start transaction isolation level repeatable read',
        'primary: begin',
      ])
    })

    it('throws AbortedTransactionError when COMMIT is answered with ROLLBACK, without rolling back again', async function () {
      // Kysely 0.28 has no AbortedTransactionError (and its PostgresDialect does not check).
      if (AbortedTransactionError === undefined) this.skip()
      h = harness({ consistency: 'causal' })
      h.primary.respond = (s) =>
        s === 'commit' ? { command: 'ROLLBACK', rowCount: null, rows: [] } : undefined
      const err = await h.db
        .transaction()
        .execute(async (trx) => {
          await trx.insertInto('person').values({ id: 1, name: 'a' }).execute()
        })
        .catch((e: unknown) => e)
      expect(err).to.be.instanceOf(AbortedTransactionError!)
      const sqls = h.userStatements(h.primary).map((s) => s.sql)
      expect(sqls.at(-1)).to.equal('commit')
      expect(sqls.filter((s) => POSITION.test(s))).to.have.length(0)
    })
  })

  describe('results as Kysely maps them', () => {
    it('maps rows, numAffectedRows and insert ... returning', async () => {
      h = harness()
      const inserted = await h.db
        .insertInto('person')
        .values({ id: 1, name: 'a' })
        .returning('id')
        .executeTakeFirstOrThrow()
      expect(inserted).to.deep.equal({ id: 1, node: 'primary' })
      const updated = await h.db.updateTable('person').set({ name: 'b' }).executeTakeFirstOrThrow()
      expect(updated.numUpdatedRows).to.equal(1n)
      const raw = await h.db.executeQuery(CompiledQuery.raw('select 1'))
      expect(raw).to.deep.equal({ numAffectedRows: undefined, rows: [{ node: 'replica-1' }] })
    })

    it('streams through the cursor in chunks of chunkSize and closes it', async () => {
      h = harness()
      const cursors: FakeCursor<unknown>[] = []
      class SpyCursor<T> extends FakeCursor<T> {
        constructor(text: string, values: unknown[]) {
          super(text, values)
          cursors.push(this as FakeCursor<unknown>)
        }
      }
      await h.db.destroy()
      h = harness({ cursor: SpyCursor })
      h.replicas[0]!.respond = (s) =>
        s.startsWith('select') ? [1, 2, 3, 4, 5].map((id) => ({ id })) : undefined
      const seen: unknown[] = []
      for await (const row of h.db.selectFrom('person').selectAll().stream(2)) seen.push(row)
      expect(seen).to.deep.equal([1, 2, 3, 4, 5].map((id) => ({ id })))
      expect(cursors).to.have.length(1)
      expect(cursors[0]!.reads).to.deep.equal([2, 2, 2, 2])
      expect(cursors[0]!.closed).to.equal(true)
      expect(lastRoute(h)).to.include({ role: 'replica' })
      // an early break closes the cursor too
      for await (const _ of h.db.selectFrom('person').selectAll().stream(2)) break
      expect(cursors[1]!.closed).to.equal(true)
    })

    it('fails .stream() with a clear message when no cursor is configured', async () => {
      h = harness({ cursor: undefined })
      const err = await (async () => {
        for await (const _ of h.db.selectFrom('person').selectAll().stream()) {
          // drain
        }
      })().catch((e: unknown) => e)
      expect(err).to.be.instanceOf(Error)
      expect((err as Error).message).to.match(/`cursor`.*pg-cursor/)
      // the replica connection went back to the pool
      await h.db.selectFrom('person').selectAll().execute()
    })
  })

  describe('LSN tracking and causal reads', () => {
    it('reads the WAL insert LSN on the same primary connection right after an autocommit write', async () => {
      h = harness({ consistency: 'causal' })
      await h.db.insertInto('person').values({ id: 1, name: 'a' }).execute()
      const ran = h.userStatements(h.primary)
      expect(ran.map((s) => s.sql)[0]).to.match(/^insert/)
      expect(ran[1]!.sql).to.match(POSITION)
      expect(ran[0]!.connectionId).to.equal(ran[1]!.connectionId)
      sinon.assert.calledOnce(h.primary.pool.connect)
    })

    it('reads it after COMMIT of a transaction that wrote, not after one that only read', async () => {
      h = harness({ consistency: 'causal' })
      await h.db.transaction().execute(async (trx) => {
        await trx.selectFrom('person').selectAll().execute()
      })
      expect(h.userStatements(h.primary).filter((s) => POSITION.test(s.sql))).to.have.length(0)
      await h.db.transaction().execute(async (trx) => {
        await trx.insertInto('person').values({ id: 1, name: 'a' }).execute()
      })
      const sqls = h.userStatements(h.primary).map((s) => s.sql)
      expect(sqls.slice(-2)[0]).to.equal('commit')
      expect(sqls.at(-1)).to.match(POSITION)
    })

    it('does not ask for the LSN in eventual mode, nor after a DML statement that matched nothing', async () => {
      h = harness({ consistency: 'eventual' })
      await h.db.insertInto('person').values({ id: 1, name: 'a' }).execute()
      expect(h.userStatements(h.primary).filter((s) => POSITION.test(s.sql))).to.have.length(0)
      await h.db.destroy()
      h = harness({ consistency: 'causal' })
      h.primary.respond = (s) =>
        s.startsWith('update') ? { command: 'UPDATE', rowCount: 0, rows: [] } : undefined
      await h.db.updateTable('person').set({ name: 'x' }).where('id', '=', 42).execute()
      expect(h.userStatements(h.primary).filter((s) => POSITION.test(s.sql))).to.have.length(0)
    })

    it('polls the replay LSN on the replica connection that then runs the read', async () => {
      h = harness({ consistency: 'causal' }, 1)
      const replica = h.replicas[0]!
      replica.replayLsn = 0n
      replica.onPoll = (polls) => {
        if (polls >= 3) replica.replayLsn = h.primary.walLsn
      }
      await h.db.insertInto('person').values({ id: 1, name: 'a' }).execute()
      const target = h.primary.walLsn
      await h.db.selectFrom('person').selectAll().execute()
      const ran = h.userStatements(replica).slice(1)
      expect(h.userStatements(replica)[0]!.sql).to.equal(
        "select current_setting('server_version_num') as v",
      )
      expect(ran.map((s) => s.sql)).to.deep.equal([POLL, POLL, POLL, 'select * from "person"'])
      expect(ran[0]!.parameters).to.deep.equal([formatLsn(target)])
      expect(new Set(ran.map((s) => s.connectionId)).size).to.equal(1)
      sinon.assert.calledOnce(replica.pool.connect)
      expect(lastRoute(h)).to.include({ node: 'replica-1', reason: 'causal-waited' })
      // the replica is now known to cover the write: the next read does not wait
      await h.db.selectFrom('person').selectAll().execute()
      expect(lastRoute(h)).to.include({ node: 'replica-1', reason: 'causal-caught-up' })
      expect(h.userStatements(replica).filter((s) => s.sql === POLL)).to.have.length(3)
    })

    it('backs off between polls and reads on the primary when the wait times out', async () => {
      h = harness({ consistency: 'causal', causalWaitTimeoutMs: 30 }, 1)
      h.replicas[0]!.replayLsn = 0n
      await h.db.insertInto('person').values({ id: 1, name: 'a' }).execute()
      const started = performance.now()
      await h.db.selectFrom('person').selectAll().execute()
      const elapsed = performance.now() - started
      expect(lastRoute(h)).to.include({ node: 'primary', reason: 'causal-timeout' })
      const polls = h.userStatements(h.replicas[0]!).filter((s) => s.sql === POLL).length
      expect(elapsed).to.be.greaterThanOrEqual(29)
      // 0.2, 0.4, 0.8, 1.6, 3.2, 5, 5, ... ms: about a dozen polls in 30 ms, not hundreds
      expect(polls).to.be.within(5, 20)
    })

    it('never waits on a "replica" that is not in recovery (replay LSN NULL)', async () => {
      h = harness({ consistency: 'causal', causalWaitTimeoutMs: 1000 }, 1)
      h.replicas[0]!.replayLsn = null
      await h.db.insertInto('person').values({ id: 1, name: 'a' }).execute()
      const started = performance.now()
      await h.db.selectFrom('person').selectAll().execute()
      expect(performance.now() - started).to.be.lessThan(200)
      expect(lastRoute(h)).to.include({ node: 'primary', reason: 'causal-timeout' })
    })

    it('subtracts a WAL page header from an insert LSN that sits right after one', async () => {
      h = harness({ consistency: 'causal' }, 1)
      h.primary.respond = (s) =>
        POSITION.test(s) ? [{ lsn: '0/4000028', block: '8192', segment: '16777216' }] : undefined
      h.replicas[0]!.replayLsn = 0x4000000n
      await h.db.insertInto('person').values({ id: 1, name: 'a' }).execute()
      await h.db.selectFrom('person').selectAll().execute()
      const poll = h.userStatements(h.replicas[0]!).find((s) => s.sql === POLL)
      expect(poll?.parameters).to.deep.equal(['0/4000000'])
      expect(lastRoute(h)).to.include({ node: 'replica-1', reason: 'causal-waited' })
    })

    it('uses WAIT FOR LSN on PostgreSQL 19+ (version checked once per node)', async () => {
      h = harness({ consistency: 'causal' }, 1)
      const replica = h.replicas[0]!
      replica.versionNum = 190000
      for (let i = 0; i < 2; i++) {
        await h.db.insertInto('person').values({ id: i, name: 'a' }).execute()
        replica.replayLsn = h.primary.walLsn
        await h.db.selectFrom('person').selectAll().execute()
      }
      expect(h.userStatements(replica).map((s) => s.sql)).to.deep.equal([
        "select current_setting('server_version_num') as v",
        `WAIT FOR LSN '${formatLsn(h.primary.walLsn - 0x100n)}' WITH (TIMEOUT '50ms', NO_THROW)`,
        'select * from "person"',
        `WAIT FOR LSN '${formatLsn(h.primary.walLsn)}' WITH (TIMEOUT '50ms', NO_THROW)`,
        'select * from "person"',
      ])
      expect(lastRoute(h)).to.include({ node: 'replica-1', reason: 'causal-waited' })
    })

    it('falls back to polling when WAIT FOR LSN is rejected', async () => {
      h = harness({ consistency: 'causal' }, 1)
      const replica = h.replicas[0]!
      replica.versionNum = 190000
      replica.respond = (s) =>
        s.startsWith('WAIT')
          ? Object.assign(new Error('syntax error at or near "WAIT"'), { code: '42601' })
          : undefined
      await h.db.insertInto('person').values({ id: 1, name: 'a' }).execute()
      replica.replayLsn = h.primary.walLsn
      await h.db.selectFrom('person').selectAll().execute()
      expect(
        h
          .userStatements(replica)
          .map((s) => s.sql)
          .slice(1),
      ).to.deep.equal([
        `WAIT FOR LSN '${formatLsn(h.primary.walLsn)}' WITH (TIMEOUT '50ms', NO_THROW)`,
        POLL,
        'select * from "person"',
      ])
    })

    it('does not fail a committed write when the LSN cannot be read; the scope then reads on the primary', async () => {
      h = harness({ consistency: 'causal' }, 1)
      h.primary.respond = (s) =>
        POSITION.test(s)
          ? Object.assign(new Error('function pg_current_wal_insert_lsn() does not exist'), {
              code: '42883',
            })
          : undefined
      await consistencyScope(async () => {
        await h.db.insertInto('person').values({ id: 1, name: 'a' }).execute()
        await h.db.selectFrom('person').selectAll().execute()
        expect(lastRoute(h)).to.include({ node: 'primary', reason: 'sticky' })
      })
      expect(h.events.map((e) => e.type)).to.include('causal-unsupported')
    })

    it('hands out a causal token carrying the LSN', async () => {
      h = harness({ consistency: 'causal' })
      await consistencyScope(async () => {
        await h.db.insertInto('person').values({ id: 1, name: 'a' }).execute()
        expect(h.dialect.getCausalToken()).to.be.a('string')
      })
    })
  })

  describe('probes', () => {
    async function probed(setup: (r: FakePgNode) => void) {
      h = harness({}, 1)
      setup(h.replicas[0]!)
      await h.db.insertInto('person').values({ id: 1, name: 'a' }).execute() // initialises the pools
      await h.dialect.probeNow()
      return h.dialect.getReplicaInfo().find((n) => n.name === 'replica-1')!
    }

    it('reports lag 0 when everything received is replayed, however old the last replayed transaction', async () => {
      const info = await probed((r) => {
        r.replayLsn = 0x5000000n
        r.probe.receiveLsn = 0x5000000n
        r.probe.lagMs = 600_000
      })
      expect(info.lagMs).to.equal(0)
      expect(info.position).to.equal('0/5000000')
      expect(info.state).to.equal('healthy')
    })

    it('reports now() - last replay timestamp while WAL is pending', async () => {
      const info = await probed((r) => {
        r.replayLsn = 0x5000000n
        r.probe.receiveLsn = 0x5000100n
        r.probe.lagMs = 1234.5
      })
      expect(info.lagMs).to.equal(1234.5)
    })

    it('reports unknown lag without a WAL receiver (primary unreachable) and keeps the standby, null when replay is paused', async () => {
      let info = await probed((r) => {
        r.probe.receiver = false
      })
      expect(info.lagMs).to.equal(undefined)
      expect(info.state).to.equal('healthy')
      await h.db.destroy()
      info = await probed((r) => {
        r.probe.paused = true
      })
      expect(info.lagMs).to.equal(null)
    })

    it('reports a server not in recovery as not read-only, with no lag', async () => {
      const info = await probed((r) => {
        r.probe.inRecovery = false
        r.replayLsn = null
      })
      expect(info.lagMs).to.equal(undefined)
      expect(h.events.map((e) => e.type)).to.include('not-read-only')
    })
  })

  describe('a replica pool with no free connection (PoolWaitTimeoutError)', () => {
    /** replica-1's pool answers every checkout as a pool whose clients all stayed busy. */
    const exhaust = (node: FakePgNode) => {
      node.pool.connect = sinon.spy(() =>
        Promise.reject(
          new PoolWaitTimeoutError(
            `node "${node.name}": no connection of its pool was free`,
            node.name,
            {
              cause: new Error('timeout exceeded when trying to connect'),
            },
          ),
        ),
      )
    }

    it('runs the read on another replica and keeps the busy replica healthy', async () => {
      h = harness()
      exhaust(h.replicas[0]!)
      const rows = await h.db.selectFrom('person').selectAll().execute()
      expect(rows).to.deep.equal([{ node: 'replica-2' }])
      expect(lastRoute(h)).to.include({ node: 'replica-2', reason: 'retry' })
      // What this prevents: a connection error here took replica-1 to cooling-down (node-down).
      expect(h.dialect.getReplicaInfo().find((n) => n.name === 'replica-1')!.state).to.equal(
        'healthy',
      )
      expect(h.events.filter((e) => e.type === 'node-down')).to.deep.equal([])
      // Still a candidate: round-robin offers it the next reads again.
      await h.db.selectFrom('person').selectAll().execute()
      await h.db.selectFrom('person').selectAll().execute()
      expect(h.checkout(h.replicas[0]!).callCount).to.be.greaterThan(1)
    })

    it('fails a read sent to that named replica with PoolWaitTimeoutError, the replica still healthy', async () => {
      h = harness()
      exhaust(h.replicas[0]!)
      const error = await onReplica(h.db, 'replica-1')
        .selectFrom('person')
        .selectAll()
        .execute()
        .catch((e) => e)
      expect(error).to.be.instanceOf(PoolWaitTimeoutError)
      expect(error).to.include({ node: 'replica-1', code: 'KR_POOL_WAIT_TIMEOUT' })
      expect(h.dialect.getReplicaInfo().find((n) => n.name === 'replica-1')!.state).to.equal(
        'healthy',
      )
      expect(h.userStatements(h.replicas[1]!)).to.deep.equal([])
    })

    it('is not retried with retry: { reads: false }', async () => {
      h = harness({ retry: { reads: false } })
      exhaust(h.replicas[0]!)
      const error = await h.db
        .selectFrom('person')
        .selectAll()
        .execute()
        .catch((e) => e)
      expect(error).to.be.instanceOf(PoolWaitTimeoutError)
      expect(h.dialect.getReplicaInfo().find((n) => n.name === 'replica-1')!.state).to.equal(
        'healthy',
      )
    })
  })

  describe('connections', () => {
    it('destroys a client whose setup failed and throws ConnectionSetupError', async () => {
      h = harness({
        onCreateConnection: async (conn) => {
          await conn.executeQuery(CompiledQuery.raw('set nonsense = 1'))
        },
      })
      h.primary.respond = (s) =>
        s.startsWith('set nonsense')
          ? Object.assign(new Error('unrecognized configuration parameter "nonsense"'), {
              code: '42704',
            })
          : undefined
      const err = await h.db
        .insertInto('person')
        .values({ id: 1, name: 'a' })
        .execute()
        .catch((e: unknown) => e)
      expect(err).to.be.instanceOf(ConnectionSetupError)
      expect((err as ConnectionSetupError).node).to.equal('primary')
      expect(h.primary.destroyed).to.deep.equal([1])
    })

    it('listens for client errors while a client is checked out, and closes a broken client on release', async () => {
      h = harness()
      const trx = await h.db.startTransaction().execute()
      await trx.selectFrom('person').selectAll().execute()
      const client = h.primary.clients[0]!
      expect(client.listenerCount('error')).to.equal(1)
      // Without a listener this emit would throw (an uncaught exception in a real process).
      client.emit('error', new Error('Connection terminated unexpectedly'))
      h.primary.respond = () =>
        new Error('Client has encountered a connection error and is not queryable')
      await trx
        .rollback()
        .execute()
        .catch(() => {})
      expect(h.primary.destroyed).to.deep.equal([1])
      expect(client.listenerCount('error')).to.equal(0)
    })

    it('closes a client whose ROLLBACK failed instead of returning it to the pool (as Kysely)', async () => {
      h = harness()
      h.primary.respond = (s) =>
        s === 'rollback' ? Object.assign(new Error('boom'), { code: 'XX000' }) : undefined
      const err = await h.db
        .transaction()
        .execute(async (trx) => {
          await trx.insertInto('person').values({ id: 1, name: 'a' }).execute()
          throw new Error('app error')
        })
        .catch((e: unknown) => e)
      expect((err as Error).message).to.match(/boom|app error/)
      expect(h.primary.destroyed).to.deep.equal([1])
    })

    it('exposes the backend pid as the session id and cancels with pg_cancel_backend / pg_terminate_backend', async () => {
      const engine = new PostgresEngine({ causalUnsupported: () => {} })
      const ran: Array<[string, readonly unknown[]]> = []
      const control = {
        node: { name: 'primary', role: 'primary' },
        sessionId: 7,
        async execute(query: CompiledQuery) {
          ran.push([query.sql, query.parameters])
          return { result: { rows: [] } }
        },
      } as unknown as PhysicalConnection
      await engine.cancel(control, 4242, 'query')
      await engine.cancel(control, 4242, 'session')
      expect(ran).to.deep.equal([
        ['select pg_cancel_backend($1)', [4242]],
        ['select pg_terminate_backend($1)', [4242]],
      ])
    })
  })

  describe('connection-level errors', () => {
    const engine = new PostgresEngine({ causalUnsupported: () => {} })
    const sqlError = (code: string) =>
      Object.assign(new Error(`sqlstate ${code}`), { code, severity: 'ERROR' })
    for (const [what, error] of [
      ['ECONNREFUSED', Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })],
      ['ECONNRESET', Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })],
      ['ETIMEDOUT', Object.assign(new Error('connect ETIMEDOUT'), { code: 'ETIMEDOUT' })],
      ['EPIPE', Object.assign(new Error('write EPIPE'), { code: 'EPIPE' })],
      ['Connection terminated unexpectedly', new Error('Connection terminated unexpectedly')],
      ['Connection terminated', new Error('Connection terminated')],
      ['a pool connect timeout', new Error('timeout exceeded when trying to connect')],
      [
        'a client that is not queryable',
        new Error('Client has encountered a connection error and is not queryable'),
      ],
      ['SQLSTATE 08006', sqlError('08006')],
      ['SQLSTATE 08P01', sqlError('08P01')],
      ['SQLSTATE 57P01 (admin shutdown)', sqlError('57P01')],
      ['SQLSTATE 57P02 (crash shutdown)', sqlError('57P02')],
      ['SQLSTATE 57P03 (cannot connect now)', sqlError('57P03')],
      ['SQLSTATE 53300 (too many connections)', sqlError('53300')],
      [
        'an AggregateError of refused connects',
        new AggregateError([Object.assign(new Error('x'), { code: 'ECONNREFUSED' })]),
      ],
      [
        'a ConnectionSetupError caused by a lost connection',
        new ConnectionSetupError('setup', 'r', { cause: new Error('Connection terminated') }),
      ],
    ] as const) {
      it(`treats ${what} as connection-level`, () => {
        expect(engine.isConnectionError(error)).to.equal(true)
      })
    }
    for (const code of [
      '23505',
      '23503',
      '42P01',
      '42601',
      '42501',
      '40001',
      '40P01',
      '25006',
      '57014',
      '22012',
    ]) {
      it(`never treats SQLSTATE ${code} as connection-level`, () => {
        expect(engine.isConnectionError(sqlError(code))).to.equal(false)
        // not even when the message looks like one
        expect(
          engine.isConnectionError(Object.assign(new Error('Connection terminated'), { code })),
        ).to.equal(false)
      })
    }
    it('treats a ConnectionSetupError caused by an SQL error as not connection-level', () => {
      expect(
        engine.isConnectionError(
          new ConnectionSetupError('setup', 'r', { cause: sqlError('42704') }),
        ),
      ).to.equal(false)
      expect(engine.isConnectionError(undefined)).to.equal(false)
      expect(engine.isConnectionError('ECONNREFUSED')).to.equal(false)
    })
  })

  describe('WAL page headers', () => {
    const block = 8192n
    const segment = 16n * 1024n * 1024n
    it('maps an insert LSN right after a page or segment header to the boundary', () => {
      expect(withoutPageHeader(0x4000028n, block, segment)).to.equal(0x4000000n) // segment start + 40
      expect(withoutPageHeader(0x4002018n, block, segment)).to.equal(0x4002000n) // page start + 24
    })
    it('leaves every other LSN alone', () => {
      expect(withoutPageHeader(0x4002028n, block, segment)).to.equal(0x4002028n) // +40 on a page that is not a segment start
      expect(withoutPageHeader(0x4001f38n, block, segment)).to.equal(0x4001f38n)
      expect(withoutPageHeader(0x4002018n, undefined, undefined)).to.equal(0x4002018n)
    })
  })

  describe('config validation', () => {
    const pool = () => fakePgNode('x').pool
    const cases: Array<[string, unknown, RegExp]> = [
      [
        'a mysql2 pool',
        { primary: { pool: { getConnection() {}, end() {} } }, replicas: [] },
        /not a supported pool/,
      ],
      [
        'a cursor that is not a constructor',
        { primary: { pool: pool() }, replicas: [], cursor: {} },
        /`cursor` must be the pg-cursor constructor/,
      ],
    ]
    for (const [name, config, message] of cases) {
      it(`rejects ${name}`, () => {
        expect(
          () => new ReplicatedPostgresDialect(config as ReplicatedPostgresDialectConfig),
        ).to.throw(ReplicatedConfigError, message)
      })
    }

    it('names the dialect in its errors', () => {
      expect(() => new ReplicatedPostgresDialect({ replicas: [] } as never)).to.throw(
        /^ReplicatedPostgresDialect: /,
      )
    })

    it('accepts an async pool factory and fails init when it returns something else', async () => {
      const node = fakePgNode('primary')
      const ok = new Kysely<DB>({
        dialect: new ReplicatedPostgresDialect({
          primary: { pool: async () => node.pool as never },
          replicas: [],
        }),
      })
      await ok.selectFrom('person').selectAll().execute()
      await ok.destroy()
      expect(node.statements.map((s) => s.sql)).to.deep.equal(['select * from "person"'])
      sinon.assert.calledOnce(node.pool.connect)
      sinon.assert.calledOnce(node.pool.end)
      const bad = new Kysely<DB>({
        dialect: new ReplicatedPostgresDialect({
          primary: { pool: async () => ({}) as never },
          replicas: [],
        }),
      })
      const err = await bad
        .selectFrom('person')
        .selectAll()
        .execute()
        .catch((e: unknown) => e)
      expect((err as Error).message).to.match(/did not return a pg pool/)
      await bad.destroy().catch(() => {})
    })
  })
})
