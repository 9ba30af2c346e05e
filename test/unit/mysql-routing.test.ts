import { expect } from 'chai'
import { CompiledQuery, Kysely, sql } from 'kysely'
import sinon from 'sinon'
import { ReplicatedMysqlDialect, type ReplicatedMysqlDialectConfig } from '../../src/index.js'
import { type FakeMysqlNode, fakeMysqlNode } from '../support/fake-mysql.js'
import {
  type DB,
  lastRoute,
  mysqlRouting,
  type RoutingHarness,
  routingHarness,
} from '../support/routing-harness.js'

// The rules every engine shares are in routing.test.ts; these are MariaDB/MySQL's own.

const harness = (overrides: Partial<ReplicatedMysqlDialectConfig> = {}, replicaCount = 2) =>
  routingHarness(mysqlRouting, overrides, replicaCount)

describe('routing (stubbed mysql2 pools)', () => {
  let h: RoutingHarness<FakeMysqlNode, ReplicatedMysqlDialect>
  afterEach(async () => {
    await h?.db.destroy()
  })

  describe('reads', () => {
    it('routes raw SELECT, SHOW and DESCRIBE to a replica', async () => {
      h = harness()
      await sql`select 1`.execute(h.db)
      await h.db.executeQuery(CompiledQuery.raw('show tables'))
      await h.db.executeQuery(CompiledQuery.raw('describe person'))
      expect(h.routes.map((r) => r.role)).to.deep.equal(['replica', 'replica', 'replica'])
    })
  })

  describe('writes and reads that must run on the primary', () => {
    it('returns the insert id the primary reports', async () => {
      h = harness()
      const r = await h.db
        .insertInto('person')
        .values({ id: 1, name: 'a' })
        .executeTakeFirstOrThrow()
      expect(r.insertId).to.equal(7n)
      expect(lastRoute(h)).to.include({ node: 'primary', reason: 'write' })
    })

    it('routes a SELECT with the raw end modifier lock in share mode to the primary', async () => {
      h = harness()
      await h.db.selectFrom('person').selectAll().modifyEnd(sql`lock in share mode`).execute()
      expect(lastRoute(h)).to.include({ role: 'primary', reason: 'locking-read' })
    })

    it('routes a SELECT calling a primary-only function to the primary', async () => {
      h = harness()
      await h.db
        .selectNoFrom((eb) => eb.fn<number>('get_lock', [sql.lit('job'), sql.lit(1)]).as('l'))
        .execute()
      expect(lastRoute(h)).to.include({
        role: 'primary',
        reason: 'primary-function',
        detail: 'get_lock',
      })
      await h.db.selectNoFrom(sql<number>`last_insert_id()`.as('id')).execute()
      expect(lastRoute(h)).to.include({ role: 'primary', reason: 'primary-function' })
    })

    it('routes raw SET, USE, DO, CALL, LOCK TABLES and unknown text to the primary', async () => {
      h = harness()
      for (const text of [
        'set @a = 1',
        'use app',
        'do sleep(0)',
        'call p()',
        'lock tables person read',
        'frobnicate the widgets',
      ]) {
        await h.db.executeQuery(CompiledQuery.raw(text))
        expect(lastRoute(h).role, text).to.equal('primary')
      }
    })
  })

  describe('db.connection() scopes and session state', () => {
    it('keeps SET @var and the SELECT that reads it on the same primary session', async () => {
      h = harness()
      await h.db.connection().execute(async (conn) => {
        await sql`set @myrole = 'master'`.execute(conn)
        await sql`select @myrole as role`.execute(conn)
      })
      const ran = h.userStatements(h.primary)
      expect(ran.map((s) => s.sql)).to.deep.equal([
        "set @myrole = 'master'",
        'select @myrole as role',
      ])
      expect(ran[0]!.connectionId).to.equal(ran[1]!.connectionId)
      expect(h.routes.map((r) => r.reason)).to.deep.equal(['session-state', 'session-pinned'])
      sinon.assert.calledOnce(h.primary.pool.getConnection)
    })

    it('sends reads of a connection scope to replicas until session state appears', async () => {
      h = harness()
      await h.db.connection().execute(async (conn) => {
        await conn.selectFrom('person').selectAll().execute()
        await conn.insertInto('person').values({ id: 1, name: 'a' }).execute()
        await conn.selectNoFrom(sql<number>`last_insert_id()`.as('id')).execute()
        await conn.selectFrom('person').selectAll().execute()
      })
      expect(h.routes.map((r) => `${r.role}/${r.reason}`)).to.deep.equal([
        'replica/read',
        'primary/write',
        'primary/primary-function',
        'primary/session-pinned',
      ])
    })

    it('pins the scope after CREATE TEMPORARY TABLE', async () => {
      h = harness()
      await h.db.connection().execute(async (conn) => {
        await conn.schema.createTable('tmp').temporary().addColumn('id', 'integer').execute()
        await conn
          .selectFrom('tmp' as 'person')
          .selectAll()
          .execute()
      })
      expect(h.routes.map((r) => r.role)).to.deep.equal(['primary', 'primary'])
    })
  })

  describe('connections', () => {
    it('makes replica sessions read-only and, in causal mode, tracks GTIDs on the primary', async () => {
      h = harness({ consistency: 'causal' })
      await h.db.selectFrom('person').selectAll().execute()
      await h.db.insertInto('person').values({ id: 1, name: 'a' }).execute()
      expect(h.replicas[0]!.statements[0]!.sql).to.equal('set session transaction read only')
      expect(h.primary.statements[0]!.sql).to.match(/^set session session_track_system_variables/)
    })

    it('does not track GTIDs when no mode uses them', async () => {
      h = harness({ consistency: 'eventual' })
      await h.db.insertInto('person').values({ id: 1, name: 'a' }).execute()
      expect(h.primary.statements.some((s) => s.sql.includes('session_track'))).to.equal(false)
    })
  })

  describe('config validation', () => {
    it('accepts a mysql2/promise pool by unwrapping .pool', async () => {
      const node = fakeMysqlNode('primary')
      const dialect = new ReplicatedMysqlDialect({
        primary: { pool: { pool: node.pool } as never },
        replicas: [],
      })
      const db = new Kysely<DB>({ dialect })
      await db.selectFrom('person').selectAll().execute()
      await db.destroy()
      expect(node.statements.some((s) => s.sql.startsWith('select'))).to.equal(true)
      sinon.assert.calledOnce(node.pool.getConnection)
      sinon.assert.calledOnce(node.pool.end)
    })
  })

  describe('consistency (stubbed)', () => {
    it('causal: waits on the replica connection for the write GTID before the read', async () => {
      h = harness({ consistency: 'causal' })
      await h.db.insertInto('person').values({ id: 1, name: 'a' }).execute()
      await h.db.selectFrom('person').selectAll().execute()
      const replica = h.replicas.find((r) =>
        r.statements.some((s) => s.sql.startsWith('select master_gtid_wait')),
      )!
      const ran = h.userStatements(replica)
      expect(ran.map((s) => s.sql)).to.deep.equal([
        'select master_gtid_wait(?, ?) as r',
        'select * from `person`',
      ])
      expect(ran[0]!.parameters[0]).to.equal('0-1-1')
      expect(ran[0]!.connectionId).to.equal(ran[1]!.connectionId)
      expect(lastRoute(h).reason).to.equal('causal-waited')
      sinon.assert.calledOnce(replica.pool.getConnection)
    })

    it('causal: reads on the primary when the wait times out, then stops waiting on that replica', async () => {
      h = harness({ consistency: 'causal' }, 1)
      h.replicas[0]!.waitResult = -1
      await h.db.insertInto('person').values({ id: 1, name: 'a' }).execute()
      await h.db.selectFrom('person').selectAll().execute()
      expect(lastRoute(h)).to.include({ node: 'primary', reason: 'causal-timeout' })
      // The time spent waiting on the replica before giving up is reported with the fallback.
      expect(lastRoute(h).waitedMs).to.be.a('number')
      await h.db.selectFrom('person').selectAll().execute()
      expect(lastRoute(h)).to.include({ node: 'primary', reason: 'causal-behind' })
      expect(
        h.replicas[0]!.statements.filter((s) => s.sql.startsWith('select master_gtid_wait')),
      ).to.have.length(1)
    })
  })

  describe('what counts as a write for read-your-writes', () => {
    it('locking reads, session statements, lock functions and no-op updates leave later reads on replicas', async () => {
      const events: string[] = []
      h = harness({ consistency: 'causal', onEvent: (e) => events.push(e.type) })
      // Outside any consistencyScope: these would make the process-wide scope sticky if they
      // counted as writes of unknown position (they come back without a GTID).
      await h.db.selectFrom('person').selectAll().forUpdate().execute()
      await h.db.connection().execute(async (conn) => {
        await sql`set @x = 1`.execute(conn)
        await sql`select @x`.execute(conn)
      })
      await h.db.selectNoFrom(sql<number>`get_lock('job', 1)`.as('l')).execute()
      h.primary.respond = (s) =>
        s.startsWith('update')
          ? { affectedRows: 1, changedRows: 0, insertId: 0, stateChanges: null }
          : undefined
      await h.db.updateTable('person').set({ name: 'same' }).where('id', '=', 1).execute()
      await h.db.selectFrom('person').selectAll().execute()
      expect(lastRoute(h)).to.include({ role: 'replica', reason: 'read' })
      expect(events).to.not.include('causal-unsupported')
    })

    it('a real write without a GTID makes reads sticky until a later write reports one', async () => {
      const events: string[] = []
      h = harness({ consistency: 'causal', onEvent: (e) => events.push(e.type) })
      let withGtid = false
      h.primary.respond = (s) =>
        s.startsWith('delete') && !withGtid
          ? { affectedRows: 1, changedRows: 0, insertId: 0, stateChanges: null }
          : undefined
      await h.db.deleteFrom('person').where('id', '=', 1).execute()
      await h.db.selectFrom('person').selectAll().execute()
      expect(lastRoute(h)).to.include({ role: 'primary', reason: 'sticky' })
      expect(events).to.include('causal-unsupported')
      withGtid = true
      await h.db.insertInto('person').values({ id: 2, name: 'b' }).execute()
      await h.db.selectFrom('person').selectAll().execute()
      expect(lastRoute(h)).to.include({ role: 'replica' })
    })
  })
})
