import { expect } from 'chai'
import { CompiledQuery, type Kysely, sql } from 'kysely'
import sinon from 'sinon'
import {
  consistencyScope,
  onPrimary,
  onReplica,
  ReadOnlyViolationError,
  ReplicatedConfigError,
  readOnly,
  withReadTimeout,
} from '../../src/index.js'
import {
  type DB,
  lastRoute,
  mysqlRouting,
  postgresRouting,
  type RoutingEngine,
  type RoutingHarness,
  routingHarness,
} from '../support/routing-harness.js'

/** What differs between the engines in the rules below: spellings and driver errors. */
interface EngineCase {
  readonly engine: RoutingEngine
  /** An identifier and the n-th parameter, as Kysely compiles them. */
  readonly id: (name: string) => string
  readonly param: (n: number) => string
  /** What a read-only transaction starts with. */
  readonly readOnlyBegin: readonly string[]
  /** What makes a replica session read-only. */
  readonly readOnlySession: string
  /** A session setting an application runs in `onCreateConnection`. */
  readonly sessionSetting: string
  /** The driver's error when a connection is lost mid-statement. */
  readonly connectionLost: () => Error
  /** The driver's error for a table that does not exist. */
  readonly noSuchTable: () => Error
}

const engines: readonly EngineCase[] = [
  {
    engine: mysqlRouting,
    id: (name) => `\`${name}\``,
    param: () => '?',
    readOnlyBegin: ['set transaction read only', 'begin'],
    readOnlySession: 'set session transaction read only',
    sessionSetting: "set time_zone = '+00:00'",
    connectionLost: () =>
      Object.assign(new Error('Connection lost'), {
        code: 'PROTOCOL_CONNECTION_LOST',
        fatal: true,
      }),
    noSuchTable: () =>
      Object.assign(new Error("Table 'app.nope' doesn't exist"), {
        code: 'ER_NO_SUCH_TABLE',
        errno: 1146,
      }),
  },
  {
    engine: postgresRouting,
    id: (name) => `"${name}"`,
    param: (n) => `$${n}`,
    readOnlyBegin: ['start transaction read only'],
    readOnlySession: 'SET default_transaction_read_only = on',
    sessionSetting: "set time zone 'UTC'",
    connectionLost: () => new Error('Connection terminated unexpectedly'),
    noSuchTable: () =>
      Object.assign(new Error('relation "nope" does not exist'), {
        code: '42P01',
        severity: 'ERROR',
      }),
  },
]

for (const spelling of engines) {
  const { engine, id, param } = spelling
  describe(`routing rules of every engine: ${engine.name} (stubbed pools)`, () => {
    let h: RoutingHarness
    const harness = (overrides?: Parameters<typeof routingHarness>[1], replicaCount?: number) =>
      routingHarness(engine, overrides, replicaCount)
    const selectPerson = `select * from ${id('person')}`

    afterEach(async () => {
      await h?.db.destroy()
    })

    describe('reads', () => {
      it('routes a plain SELECT to a replica', async () => {
        h = harness()
        await h.db.selectFrom('person').selectAll().execute()
        expect(lastRoute(h)).to.include({ role: 'replica', reason: 'read' })
        expect(h.userStatements(h.primary)).to.have.length(0)
        sinon.assert.calledOnce(h.checkout(h.replicas[0]!))
        sinon.assert.notCalled(h.checkout(h.replicas[1]!))
        sinon.assert.notCalled(h.checkout(h.primary))
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
        await h.db.insertInto('person').values({ id: 1, name: 'a' }).execute()
        await h.db.updateTable('person').set({ name: 'b' }).where('id', '=', 1).execute()
        await h.db.deleteFrom('person').where('id', '=', 1).execute()
        expect(h.routes.map((r) => `${r.node}/${r.reason}`)).to.deep.equal([
          'primary/write',
          'primary/write',
          'primary/write',
        ])
        sinon.assert.calledThrice(h.checkout(h.primary))
        for (const replica of h.replicas) sinon.assert.notCalled(h.checkout(replica))
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
          'a lock in a subquery',
          (db: Kysely<DB>) =>
            db
              .selectFrom('person')
              .selectAll()
              .where('id', 'in', db.selectFrom('pet').select('owner_id').forUpdate()),
        ],
      ] as const) {
        it(`routes a SELECT with ${name} to the primary as a locking read`, async () => {
          h = harness()
          await build(h.db).execute()
          expect(lastRoute(h)).to.include({ role: 'primary', reason: 'locking-read' })
        })
      }

      it('routes calls of functions the user lists to the primary', async () => {
        h = harness({ primaryFunctions: ['Bump_Counter'] })
        await h.db.selectNoFrom((eb) => eb.fn<number>('bump_counter', []).as('n')).execute()
        expect(lastRoute(h)).to.include({ role: 'primary', reason: 'primary-function' })
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
        const primary = h.userStatements(h.primary)
        expect(primary.map((s) => s.sql)).to.deep.equal([
          'begin',
          selectPerson,
          `savepoint ${id('sp1')}`,
          `insert into ${id('person')} (${id('id')}, ${id('name')}) values (${param(1)}, ${param(2)})`,
          `rollback to ${id('sp1')}`,
          `release savepoint ${id('sp1')}`,
          'commit',
        ])
        expect(new Set(primary.map((s) => s.connectionId)).size).to.equal(1)
        expect(h.replicas.flatMap((r) => h.userStatements(r))).to.have.length(0)
        sinon.assert.calledOnce(h.checkout(h.primary))
        for (const replica of h.replicas) sinon.assert.notCalled(h.checkout(replica))
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
        expect(h.ran()).to.deep.equal(
          [...spelling.readOnlyBegin, selectPerson, `select * from ${id('pet')}`, 'commit'].map(
            (s) => `replica-1: ${s}`,
          ),
        )
        const ids = h.userStatements(h.replicas[0]!).map((s) => s.connectionId)
        expect(new Set(ids).size).to.equal(1)
        // Every statement of the transaction, its control statements included, is routed and reported.
        expect(h.routes.map((r) => r.reason)).to.deep.equal(
          h.ran().map(() => 'read-only-transaction'),
        )
        sinon.assert.calledOnce(h.checkout(h.replicas[0]!))
        sinon.assert.notCalled(h.checkout(h.primary))
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
        sinon.assert.calledThrice(h.checkout(h.replicas[1]!))
        sinon.assert.notCalled(h.checkout(h.replicas[0]!))
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
        const err = await sql`delete from person`
          .execute(ro as unknown as Kysely<DB>)
          .catch((e) => e)
        expect(err).to.be.instanceOf(ReadOnlyViolationError)
        expect(h.ran().filter((s) => s.includes('delete'))).to.have.length(0)
        sinon.assert.notCalled(h.checkout(h.primary))
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

      // A raw `sql` template keeps its query id across executions: a hint given to one execution
      // through a hinted Kysely must not follow it to a later execution through plain `db`.
      it('gives a raw template executed through a hinted Kysely no hint when it runs again through db', async () => {
        h = harness()
        const count = sql<{ n: number }>`select count(*) as n from person`
        await count.execute(onReplica(h.db, 'replica-2'))
        await count.execute(onPrimary(h.db))
        expect(h.routes.map((r) => r.reason)).to.deep.equal(['hint', 'hint'])
        await count.execute(h.db)
        expect(lastRoute(h)).to.include({ role: 'replica', reason: 'read' })
        // And a write that readOnly(db) refused runs when sent through db.
        const purge = sql`delete from person where id = 0`
        const refused = await purge.execute(readOnly(h.db) as never).catch((e) => e)
        expect(refused).to.be.instanceOf(ReadOnlyViolationError)
        await purge.execute(h.db)
        expect(lastRoute(h)).to.include({ role: 'primary', reason: 'write' })
      })

      it('keeps the hint on a query compiled through a hinted Kysely, however often it runs', async () => {
        h = harness()
        const compiled = onReplica(h.db, 'replica-2').selectFrom('person').selectAll().compile()
        for (let i = 0; i < 3; i++) await h.db.executeQuery(compiled)
        expect(h.routes.map((r) => `${r.node}:${r.reason}`)).to.deep.equal([
          'replica-2:hint',
          'replica-2:hint',
          'replica-2:hint',
        ])
      })

      it('keeps the innermost of two nested hints, and leaves none behind', async () => {
        h = harness()
        const count = sql<{ n: number }>`select count(*) as n from person`
        await count.execute(onPrimary(onReplica(h.db, 'replica-2')))
        expect(lastRoute(h)).to.include({ node: 'replica-2', reason: 'hint' })
        await count.execute(h.db)
        expect(lastRoute(h)).to.include({ role: 'replica', reason: 'read' })
        // With the library's other plugin between the two hints.
        await count.execute(onPrimary(withReadTimeout(onReplica(h.db, 'replica-2'), 5000)))
        expect(lastRoute(h)).to.include({ node: 'replica-2', reason: 'hint' })
        await count.execute(h.db)
        expect(lastRoute(h)).to.include({ role: 'replica', reason: 'read' })
      })

      it('gives no hint to a run of a template after a compile of it through a hinted Kysely that never ran', async () => {
        h = harness()
        const count = sql<{ n: number }>`select count(*) as n from person`
        count.compile(onPrimary(h.db))
        await count.execute(h.db)
        expect(lastRoute(h)).to.include({ role: 'replica', reason: 'read' })
      })
    })

    describe('connections', () => {
      it('runs onCreateConnection once per physical connection on every node, lazily opened ones included, after the read-only setting', async () => {
        const seen: string[] = []
        h = harness({
          onCreateConnection: async (conn, node) => {
            seen.push(node.name)
            await conn.executeQuery(CompiledQuery.raw(spelling.sessionSetting))
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
          for (const connection of ids) {
            expect(
              node.statements.filter(
                (s) => s.connectionId === connection && s.sql === spelling.sessionSetting,
              ),
              `${node.name} connection ${connection}`,
            ).to.have.length(1)
          }
        }
        const first = h.replicas[0]!.statements.filter((s) => s.connectionId === 1)
        expect(first.map((s) => s.sql).slice(0, 2)).to.deep.equal([
          spelling.readOnlySession,
          spelling.sessionSetting,
        ])
      })

      it('runs onCreateConnection once on each new connection, which it can query', async () => {
        const order: string[] = []
        h = harness({
          onCreateConnection: async (conn, node) => {
            order.push(`create ${node.name}`)
            await conn.executeQuery(CompiledQuery.raw('select 1'))
          },
        })
        await h.db.insertInto('person').values({ id: 1, name: 'a' }).execute()
        await h.db.insertInto('person').values({ id: 2, name: 'a' }).execute()
        expect(order).to.deep.equal(['create primary'])
      })

      it('makes replica sessions read-only, once per physical connection, and leaves the primary alone', async () => {
        h = harness()
        await Promise.all(
          Array.from({ length: 4 }, () => h.db.selectFrom('person').selectAll().execute()),
        )
        await h.db.insertInto('person').values({ id: 1, name: 'a' }).execute()
        for (const replica of h.replicas) {
          const ids = new Set(replica.statements.map((s) => s.connectionId))
          for (const connection of ids) {
            const mine = replica.statements.filter((s) => s.connectionId === connection)
            expect(mine[0]!.sql).to.equal(spelling.readOnlySession)
            expect(mine.filter((s) => s.sql === spelling.readOnlySession)).to.have.length(1)
          }
        }
        expect(
          h.primary.statements.filter((s) => s.sql === spelling.readOnlySession),
        ).to.have.length(0)
      })

      it('skips the read-only session setting with replicaSessionReadOnly: false', async () => {
        h = harness({ replicaSessionReadOnly: false })
        await h.db.selectFrom('person').selectAll().execute()
        const ran = h.replicas[0]!.statements.map((s) => s.sql)
        expect(ran).to.include(selectPerson)
        expect(ran.filter((s) => /read.only/i.test(s))).to.have.length(0)
      })

      it('adds the node name to driver errors and keeps the error object', async () => {
        h = harness()
        const boom = spelling.noSuchTable()
        for (const replica of h.replicas) {
          replica.respond = (s) => (s.includes('nope') ? boom : undefined)
        }
        const err = await sql`select * from nope`.execute(h.db).catch((e) => e)
        expect(err).to.equal(boom)
        expect(err.code).to.equal((boom as { code?: string }).code)
        expect(err.node).to.match(/^replica-/)
        expect(err.message).to.contain('(node "replica-')
      })

      it('ends every pool once when Kysely is destroyed', async () => {
        h = harness()
        await h.db.selectFrom('person').selectAll().execute()
        await h.db.destroy()
        for (const node of [h.primary, ...h.replicas]) sinon.assert.calledOnce(engine.end(node))
      })
    })

    describe('config validation', () => {
      const pool = () => engine.fakeNode('x').pool
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
        [
          'an unknown consistency',
          { primary: { pool: pool() }, replicas: [], consistency: 'strong' },
          /unknown consistency/,
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
          expect(() => engine.createDialect(config as never)).to.throw(
            ReplicatedConfigError,
            message,
          )
        })
      }
    })

    describe('consistency', () => {
      it('eventual: never waits', async () => {
        h = harness({ consistency: 'eventual' })
        await h.db.insertInto('person').values({ id: 1, name: 'a' }).execute()
        await h.db.selectFrom('person').selectAll().execute()
        expect(lastRoute(h)).to.include({ role: 'replica', reason: 'read' })
        // the replica ran the read and nothing else: no wait, no position poll
        expect(h.replicas.flatMap((r) => h.userStatements(r)).map((s) => s.sql)).to.deep.equal([
          selectPerson,
        ])
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

    describe('failover of reads', () => {
      it('retries a read on another replica when one refuses connections', async () => {
        h = harness()
        h.replicas[0]!.down = true
        const rows = await h.db.selectFrom('person').selectAll().execute()
        expect(rows).to.deep.equal([{ node: 'replica-2' }])
        expect(h.dialect.getReplicaInfo().find((n) => n.name === 'replica-1')!.state).to.equal(
          'cooling-down',
        )
        sinon.assert.calledOnce(h.checkout(h.replicas[0]!))
        sinon.assert.calledOnce(h.checkout(h.replicas[1]!))
        sinon.assert.notCalled(h.checkout(h.primary))
      })

      it('falls back to the primary when every replica is down', async () => {
        h = harness()
        h.replicas[0]!.down = true
        h.replicas[1]!.down = true
        const rows = await h.db.selectFrom('person').selectAll().execute()
        expect(rows).to.deep.equal([{ node: 'primary' }])
        sinon.assert.calledOnce(h.checkout(h.primary))
      })

      it('never retries a write that lost its connection', async () => {
        h = harness()
        const lost = spelling.connectionLost()
        let calls = 0
        h.primary.respond = (s) => {
          if (s.startsWith('insert')) {
            calls++
            return lost
          }
          return undefined
        }
        const err = await h.db
          .insertInto('person')
          .values({ id: 1, name: 'a' })
          .execute()
          .catch((e) => e)
        expect(err).to.equal(lost)
        expect(err.node).to.equal('primary')
        expect(calls).to.equal(1)
        sinon.assert.calledOnce(h.checkout(h.primary))
      })
    })
  })
}
