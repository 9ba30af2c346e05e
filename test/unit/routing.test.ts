import { expect } from 'chai'
import { CompiledQuery, Kysely, sql } from 'kysely'
import {
  consistencyScope,
  onPrimary,
  onReplica,
  ReadOnlyViolationError,
  ReplicatedConfigError,
  ReplicatedMysqlDialect,
  type ReplicatedMysqlDialectConfig,
  type RouteEvent,
  readOnly,
} from '../../src/index.js'
import { type FakeMysqlNode, fakeMysqlNode } from '../support/fake-mysql.js'

interface DB {
  person: { id: number; name: string }
  pet: { id: number; owner_id: number }
}

interface Harness {
  db: Kysely<DB>
  dialect: ReplicatedMysqlDialect
  primary: FakeMysqlNode
  replicas: FakeMysqlNode[]
  routes: RouteEvent[]
  /** Non-setup statements, as `node: sql`. */
  ran(): string[]
}

const SETUP =
  /^(set session session_track|set session transaction read only|select @@gtid_slave_pos|show slave status|select @@max_connections)/i

function harness(overrides: Partial<ReplicatedMysqlDialectConfig> = {}, replicaCount = 2): Harness {
  const primary = fakeMysqlNode('primary')
  const replicas = Array.from({ length: replicaCount }, (_, i) => fakeMysqlNode(`replica-${i + 1}`))
  const routes: RouteEvent[] = []
  const dialect = new ReplicatedMysqlDialect({
    primary: { pool: primary.pool },
    replicas: replicas.map((r) => ({ name: r.name, pool: r.pool })),
    selector: 'round-robin',
    consistency: 'eventual',
    health: { probeIntervalMs: 0 },
    onRoute: (e) => routes.push(e),
    ...overrides,
  })
  const db = new Kysely<DB>({ dialect })
  return {
    db,
    dialect,
    primary,
    replicas,
    routes,
    ran: () =>
      [primary, ...replicas]
        .flatMap((n) => n.statements)
        .filter((s) => !SETUP.test(s.sql.trim()))
        .map((s) => `${s.node}: ${s.sql}`),
  }
}

function lastRoute(h: Harness): RouteEvent {
  const e = h.routes.at(-1)
  if (!e) throw new Error('no route event')
  return e
}

describe('routing (stubbed mysql2 pools)', () => {
  let h: Harness
  afterEach(async () => {
    await h?.db.destroy()
  })

  describe('reads', () => {
    it('routes a plain SELECT to a replica', async () => {
      h = harness()
      await h.db.selectFrom('person').selectAll().execute()
      expect(lastRoute(h)).to.include({ role: 'replica', reason: 'read' })
      expect(h.primary.statements.filter((s) => !SETUP.test(s.sql))).to.have.length(0)
    })

    it('spreads reads round-robin over the replicas', async () => {
      h = harness()
      for (let i = 0; i < 4; i++) await h.db.selectFrom('person').selectAll().execute()
      expect(h.routes.map((r) => r.node)).to.deep.equal([
        'replica-1',
        'replica-2',
        'replica-1',
        'replica-2',
      ])
    })

    it('sends everything to the primary when there are no replicas', async () => {
      h = harness({}, 0)
      await h.db.selectFrom('person').selectAll().execute()
      expect(lastRoute(h)).to.include({ node: 'primary', reason: 'no-replica' })
    })

    it('routes raw SELECT, SHOW and DESCRIBE to a replica', async () => {
      h = harness()
      await sql`select 1`.execute(h.db)
      await h.db.executeQuery(CompiledQuery.raw('show tables'))
      await h.db.executeQuery(CompiledQuery.raw('describe person'))
      expect(h.routes.map((r) => r.role)).to.deep.equal(['replica', 'replica', 'replica'])
    })

    it('routes a stream like execute: reads to a replica, locking reads to the primary', async () => {
      h = harness()
      const rows = []
      for await (const row of h.db.selectFrom('person').selectAll().stream()) rows.push(row)
      expect(rows).to.have.length(1)
      expect(lastRoute(h)).to.include({ role: 'replica' })
      for await (const _ of h.db.selectFrom('person').selectAll().forUpdate().stream()) {
        // drain
      }
      expect(lastRoute(h)).to.include({ role: 'primary', reason: 'locking-read' })
    })
  })

  describe('writes and reads that must run on the primary', () => {
    it('routes INSERT, UPDATE and DELETE to the primary', async () => {
      h = harness()
      const r = await h.db
        .insertInto('person')
        .values({ id: 1, name: 'a' })
        .executeTakeFirstOrThrow()
      expect(r.insertId).to.equal(7n)
      await h.db.updateTable('person').set({ name: 'b' }).where('id', '=', 1).execute()
      await h.db.deleteFrom('person').where('id', '=', 1).execute()
      expect(h.routes.map((r) => `${r.node}/${r.reason}`)).to.deep.equal([
        'primary/write',
        'primary/write',
        'primary/write',
      ])
    })

    it('routes DDL to the primary', async () => {
      h = harness()
      await h.db.schema.createTable('t').addColumn('id', 'integer').execute()
      await h.db.schema.dropTable('t').execute()
      expect(h.routes.map((r) => r.role)).to.deep.equal(['primary', 'primary'])
    })

    for (const [name, build] of [
      ['for update', (db: Kysely<DB>) => db.selectFrom('person').selectAll().forUpdate()],
      ['for share', (db: Kysely<DB>) => db.selectFrom('person').selectAll().forShare()],
      [
        'for update skip locked',
        (db: Kysely<DB>) => db.selectFrom('person').selectAll().forUpdate().skipLocked(),
      ],
      [
        'raw end modifier lock in share mode',
        (db: Kysely<DB>) => db.selectFrom('person').selectAll().modifyEnd(sql`lock in share mode`),
      ],
      [
        'a lock in a subquery',
        (db: Kysely<DB>) =>
          db
            .selectFrom('person')
            .selectAll()
            .where('id', 'in', db.selectFrom('pet').select('owner_id').forUpdate()),
      ],
    ] as const) {
      it(`routes a SELECT with ${name} to the primary`, async () => {
        h = harness()
        await build(h.db).execute()
        expect(lastRoute(h)).to.include({ role: 'primary', reason: 'locking-read' })
      })
    }

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

    it('routes calls of functions the user lists to the primary', async () => {
      h = harness({ primaryFunctions: ['Bump_Counter'] })
      await h.db.selectNoFrom((eb) => eb.fn<number>('bump_counter', []).as('n')).execute()
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

    it('routes a multi-statement text with any non-read to the primary', async () => {
      h = harness()
      await h.db.executeQuery(CompiledQuery.raw('select 1; delete from person'))
      expect(lastRoute(h)).to.include({ role: 'primary' })
    })
  })

  describe('transactions', () => {
    it('runs a transaction and its savepoints on the primary, on one connection', async () => {
      h = harness()
      const trx = await h.db.startTransaction().execute()
      await trx.selectFrom('person').selectAll().execute()
      const sp = await trx.savepoint('sp1').execute()
      await sp.insertInto('person').values({ id: 1, name: 'a' }).execute()
      const rolledBack = await sp.rollbackToSavepoint('sp1').execute()
      await rolledBack.releaseSavepoint('sp1').execute()
      await trx.commit().execute()
      const primary = h.primary.statements.filter((s) => !SETUP.test(s.sql))
      expect(primary.map((s) => s.sql)).to.deep.equal([
        'begin',
        'select * from `person`',
        'savepoint `sp1`',
        'insert into `person` (`id`, `name`) values (?, ?)',
        'rollback to `sp1`',
        'release savepoint `sp1`',
        'commit',
      ])
      expect(new Set(primary.map((s) => s.connectionId)).size).to.equal(1)
      expect(
        h.replicas.flatMap((r) => r.statements).filter((s) => !SETUP.test(s.sql)),
      ).to.have.length(0)
    })

    it('runs a read-only transaction whole on one replica', async () => {
      h = harness()
      await h.db
        .transaction()
        .setAccessMode('read only')
        .execute(async (trx) => {
          await trx.selectFrom('person').selectAll().execute()
          await trx.selectFrom('pet').selectAll().execute()
        })
      const ran = h.ran()
      expect(ran).to.deep.equal([
        'replica-1: set transaction read only',
        'replica-1: begin',
        'replica-1: select * from `person`',
        'replica-1: select * from `pet`',
        'replica-1: commit',
      ])
      // Every statement of the transaction, its control statements included, is routed and reported.
      expect(h.routes.map((r) => r.reason)).to.deep.equal(Array(5).fill('read-only-transaction'))
    })
  })

  describe('db.connection() scopes and session state', () => {
    it('keeps SET @var and the SELECT that reads it on the same primary session', async () => {
      h = harness()
      await h.db.connection().execute(async (conn) => {
        await sql`set @myrole = 'master'`.execute(conn)
        await sql`select @myrole as role`.execute(conn)
      })
      const ran = h.primary.statements.filter((s) => !SETUP.test(s.sql))
      expect(ran.map((s) => s.sql)).to.deep.equal([
        "set @myrole = 'master'",
        'select @myrole as role',
      ])
      expect(ran[0]!.connectionId).to.equal(ran[1]!.connectionId)
      expect(h.routes.map((r) => r.reason)).to.deep.equal(['session-state', 'session-pinned'])
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

  describe('hints', () => {
    it('onPrimary forces reads to the primary', async () => {
      h = harness()
      await onPrimary(h.db).selectFrom('person').selectAll().execute()
      expect(lastRoute(h)).to.include({ role: 'primary', reason: 'hint' })
    })

    it('onReplica forces a named replica', async () => {
      h = harness()
      for (let i = 0; i < 3; i++)
        await onReplica(h.db, 'replica-2').selectFrom('person').selectAll().execute()
      expect(h.routes.map((r) => r.node)).to.deep.equal(['replica-2', 'replica-2', 'replica-2'])
    })

    it('onReplica with an unknown name fails with the list of replicas', async () => {
      h = harness()
      const err = await onReplica(h.db, 'nope')
        .selectFrom('person')
        .selectAll()
        .execute()
        .catch((e) => e)
      expect(err).to.be.instanceOf(ReplicatedConfigError)
      expect(err.message).to.contain('replica-1, replica-2')
    })

    it('readOnly refuses a raw write before it reaches any server', async () => {
      h = harness()
      const ro = readOnly(h.db)
      await ro.selectFrom('person').selectAll().execute()
      const err = await sql`delete from person`.execute(ro as unknown as Kysely<DB>).catch((e) => e)
      expect(err).to.be.instanceOf(ReadOnlyViolationError)
      expect(h.ran().filter((s) => s.includes('delete'))).to.have.length(0)
    })

    it('keeps the hint when a later plugin rebuilds the tree', async () => {
      h = harness()
      const { CamelCasePlugin } = await import('kysely')
      await onPrimary(h.db)
        .withPlugin(new CamelCasePlugin())
        .selectFrom('person')
        .selectAll()
        .execute()
      expect(lastRoute(h)).to.include({ role: 'primary', reason: 'hint' })
    })
  })

  describe('connections', () => {
    it('runs onCreateConnection once per physical connection on every node, lazily opened ones included', async () => {
      const seen: string[] = []
      h = harness({
        onCreateConnection: async (conn, node) => {
          seen.push(node.name)
          await conn.executeQuery(CompiledQuery.raw("set time_zone = '+00:00'"))
        },
      })
      await Promise.all(
        Array.from({ length: 6 }, () => h.db.selectFrom('person').selectAll().execute()),
      )
      await h.db.insertInto('person').values({ id: 1, name: 'a' }).execute()
      await h.db.selectFrom('person').selectAll().execute()
      const created = h.primary.connections + h.replicas.reduce((n, r) => n + r.connections, 0)
      expect(seen).to.have.length(created)
      for (const node of [h.primary, ...h.replicas]) {
        const ids = new Set(node.statements.map((s) => s.connectionId))
        for (const id of ids) {
          expect(
            node.statements.filter(
              (s) => s.connectionId === id && s.sql.startsWith('set time_zone'),
            ),
            `${node.name} connection ${id}`,
          ).to.have.length(1)
        }
      }
    })

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

    it('adds the node name to driver errors and keeps the error object', async () => {
      h = harness()
      const boom = Object.assign(new Error("Table 'app.nope' doesn't exist"), {
        code: 'ER_NO_SUCH_TABLE',
        errno: 1146,
      })
      h.replicas[0]!.respond = (s) => (s.includes('nope') ? boom : undefined)
      h.replicas[1]!.respond = (s) => (s.includes('nope') ? boom : undefined)
      const err = await sql`select * from nope`.execute(h.db).catch((e) => e)
      expect(err).to.equal(boom)
      expect(err.code).to.equal('ER_NO_SUCH_TABLE')
      expect(err.node).to.match(/^replica-/)
      expect(err.message).to.contain('(node "replica-')
    })
  })

  describe('config validation', () => {
    const pool = () => fakeMysqlNode('x').pool
    const cases: Array<[string, unknown, RegExp]> = [
      ['missing primary', { replicas: [] }, /primary` is missing/],
      [
        'a replica without a pool',
        { primary: { pool: pool() }, replicas: [{ name: 'r1' }] },
        /replica "r1" has no pool/,
      ],
      [
        'duplicate names',
        {
          primary: { pool: pool() },
          replicas: [
            { name: 'r', pool: pool() },
            { name: 'r', pool: pool() },
          ],
        },
        /duplicate node name "r"/,
      ],
      [
        'a replica named like the primary',
        { primary: { pool: pool() }, replicas: [{ name: 'primary', pool: pool() }] },
        /duplicate/,
      ],
      [
        'weight 0',
        { primary: { pool: pool() }, replicas: [{ name: 'r', pool: pool(), weight: 0 }] },
        /`weight` must be a positive finite number/,
      ],
      [
        'weight Infinity',
        { primary: { pool: pool() }, replicas: [{ name: 'r', pool: pool(), weight: Infinity }] },
        /weight/,
      ],
      [
        'an unknown selector',
        { primary: { pool: pool() }, replicas: [], selector: 'fastest' },
        /round-robin/,
      ],
      ['replicas not an array', { primary: { pool: pool() } }, /replicas/],
      [
        'a pool that is not a pool',
        { primary: { pool: { query() {} } }, replicas: [] },
        /not a supported pool/,
      ],
      [
        'a misspelt option',
        { primary: { pool: pool() }, replicas: [], consistancy: 'eventual' },
        /unknown option "consistancy"/,
      ],
      [
        'a misspelt node option',
        { primary: { pool: pool(), maxLifetime: 5 }, replicas: [] },
        /unknown option "maxLifetime" in `primary`/,
      ],
      [
        'a misspelt health option',
        { primary: { pool: pool() }, replicas: [], health: { probeInterval: 5 } },
        /unknown option "probeInterval" in `health`/,
      ],
    ]
    for (const [name, config, message] of cases) {
      it(`rejects ${name}`, () => {
        expect(() => new ReplicatedMysqlDialect(config as ReplicatedMysqlDialectConfig)).to.throw(
          ReplicatedConfigError,
          message,
        )
      })
    }

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
      const ran = replica.statements.filter((s) => !SETUP.test(s.sql))
      expect(ran.map((s) => s.sql)).to.deep.equal([
        'select master_gtid_wait(?, ?) as r',
        'select * from `person`',
      ])
      expect(ran[0]!.parameters[0]).to.equal('0-1-1')
      expect(ran[0]!.connectionId).to.equal(ran[1]!.connectionId)
      expect(lastRoute(h).reason).to.equal('causal-waited')
    })

    it('causal: reads on the primary when the wait times out, then stops waiting on that replica', async () => {
      h = harness({ consistency: 'causal' }, 1)
      h.replicas[0]!.waitResult = -1
      await h.db.insertInto('person').values({ id: 1, name: 'a' }).execute()
      await h.db.selectFrom('person').selectAll().execute()
      expect(lastRoute(h)).to.include({ node: 'primary', reason: 'causal-timeout' })
      await h.db.selectFrom('person').selectAll().execute()
      expect(lastRoute(h)).to.include({ node: 'primary', reason: 'causal-behind' })
      expect(
        h.replicas[0]!.statements.filter((s) => s.sql.startsWith('select master_gtid_wait')),
      ).to.have.length(1)
    })

    it('eventual: never waits', async () => {
      h = harness({ consistency: 'eventual' })
      await h.db.insertInto('person').values({ id: 1, name: 'a' }).execute()
      await h.db.selectFrom('person').selectAll().execute()
      expect(lastRoute(h)).to.include({ role: 'replica', reason: 'read' })
    })

    it('sticky: reads after a write in a scope go to the primary, other scopes are unaffected', async () => {
      h = harness({ consistency: 'sticky' })
      await consistencyScope(async () => {
        await h.db.insertInto('person').values({ id: 1, name: 'a' }).execute()
        await h.db.selectFrom('person').selectAll().execute()
        expect(lastRoute(h)).to.include({ role: 'primary', reason: 'sticky' })
      })
      await consistencyScope(async () => {
        await h.db.selectFrom('person').selectAll().execute()
        expect(lastRoute(h)).to.include({ role: 'replica', reason: 'read' })
      })
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

  describe('failover of reads', () => {
    it('retries a read on another replica when one refuses connections', async () => {
      h = harness()
      h.replicas[0]!.down = true
      const rows = await h.db.selectFrom('person').selectAll().execute()
      expect(rows).to.deep.equal([{ node: 'replica-2' }])
      expect(h.dialect.getReplicaInfo().find((n) => n.name === 'replica-1')!.state).to.equal(
        'cooling-down',
      )
    })

    it('falls back to the primary when every replica is down', async () => {
      h = harness()
      h.replicas[0]!.down = true
      h.replicas[1]!.down = true
      const rows = await h.db.selectFrom('person').selectAll().execute()
      expect(rows).to.deep.equal([{ node: 'primary' }])
    })

    it('never retries a write', async () => {
      h = harness()
      let calls = 0
      h.primary.respond = (s) => {
        if (s.startsWith('insert')) {
          calls++
          return Object.assign(new Error('Connection lost'), {
            code: 'PROTOCOL_CONNECTION_LOST',
            fatal: true,
          })
        }
        return undefined
      }
      const err = await h.db
        .insertInto('person')
        .values({ id: 1, name: 'a' })
        .execute()
        .catch((e) => e)
      expect(err.code).to.equal('PROTOCOL_CONNECTION_LOST')
      expect(err.node).to.equal('primary')
      expect(calls).to.equal(1)
    })
  })
})
