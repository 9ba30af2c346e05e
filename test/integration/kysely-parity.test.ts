import { expect } from 'chai'
import { type DatabaseConnection, type Dialect, Kysely, sql } from 'kysely'
import { type ConsistencyMode, consistencyScope, DialectDestroyedError } from '../../src/index.js'
import { forEachDialect, type TestDialect, useDialectCluster } from '../support/dialects.js'

/**
 * What Kysely's own dialects do and users (and Kysely's own test suite) rely on: transaction
 * statements visible to `log`, errors with the caller's stack, one dialect serving several
 * `Kysely` instances, and reads after a failed write that see what made it fail.
 */
forEachDialect((fx) => {
  describe('Kysely parity on a real cluster', function () {
    this.timeout(60_000)
    const cluster = useDialectCluster(fx)
    const open: Array<Kysely<any>> = []
    const track = (db: Kysely<any>) => {
      open.push(db)
      return db
    }
    /** A dialect whose pools the library creates from connection options (so, per driver). */
    const withFactories = (extra: Record<string, unknown> = {}): TestDialect => {
      const t = fx.create(cluster(), { nodeOptions: { fromConnection: true }, ...extra })
      track(t.db)
      return t
    }
    const dialectOf = (t: TestDialect) => t.dialect as unknown as Dialect
    let id = 1

    before(async () => {
      const t = fx.create(cluster(), { consistency: 'eventual' })
      await t.db.schema.dropTable('parity').ifExists().execute()
      await t.db.schema
        .createTable('parity')
        .addColumn('id', 'integer', (c) => c.primaryKey())
        .execute()
      await t.db.destroy()
      await cluster().waitForReplication()
    })
    afterEach(async () => {
      while (open.length > 0) await open.pop()!.destroy()
    })

    it("Kysely's log sees every transaction statement, and routing is unchanged", async () => {
      const t = withFactories()
      await t.db.destroy()
      const logged: string[] = []
      const db = track(
        new Kysely<any>({
          dialect: dialectOf(t),
          log: (event) => {
            if (event.level === 'query') logged.push(event.query.sql)
          },
        }),
      )
      await db
        .transaction()
        .setIsolationLevel('serializable')
        .execute(async (trx) => {
          await trx.insertInto('parity').values({ id: id++ }).execute()
        })
      const trx = await db.startTransaction().execute()
      const sp = await trx.savepoint('a').execute()
      await sp.insertInto('parity').values({ id: id++ }).execute()
      await sp.rollbackToSavepoint('a').execute()
      await sp.releaseSavepoint('a').execute()
      await trx.rollback().execute()
      const where = await db
        .transaction()
        .setAccessMode('read only')
        .execute((trx) => fx.whereAmI(cluster()).execute(trx))
      const control = logged.filter((s) => !/^(insert|select)/i.test(s))
      const quoted = /^(savepoint|rollback to|release savepoint) [`"]a[`"]$/
      expect(control.filter((s) => quoted.test(s))).to.have.length(3)
      expect(control.filter((s) => s === 'commit')).to.have.length(2)
      expect(control.filter((s) => s === 'rollback')).to.have.length(1)
      expect(control.some((s) => /isolation level serializable/.test(s))).to.equal(true)
      expect(control.some((s) => /read only/.test(s))).to.equal(true)
      expect(
        control.filter((s) => s === 'begin' || s.startsWith('start transaction')).length,
      ).to.be.at.least(2)
      // The read-only transaction still ran on a replica.
      expect(fx.nodeOf(cluster(), where.rows[0]!)).to.match(/^replica-/)
    })

    it("puts the caller's stack on a failing statement's error", async () => {
      const t = withFactories()
      const error = (await sql`select * from no_such_table`.execute(t.db).catch((e) => e)) as Error
      expect(error).to.be.instanceOf(Error)
      expect(error.stack).to.include('kysely-parity.test.ts')
    })

    it('serves a second Kysely after the first was destroyed, with pool factories', async () => {
      const t = withFactories()
      await t.db.insertInto('parity').values({ id: id++ }).execute()
      await t.db.destroy()
      const db = track(new Kysely<any>({ dialect: dialectOf(t) }))
      await db.insertInto('parity').values({ id: id++ }).execute()
      const { rows } = await fx.whereAmI(cluster()).execute(db)
      expect(fx.nodeOf(cluster(), rows[0]!)).to.match(/^replica-/)
    })

    it('says what happened when a dialect with pool instances outlives its Kysely', async () => {
      const t = fx.create(cluster())
      await t.db.selectFrom('parity').selectAll().execute()
      await t.db.destroy()
      const db = new Kysely<any>({ dialect: dialectOf(t) })
      const error = await db
        .selectFrom('parity')
        .selectAll()
        .execute()
        .catch((e) => e)
      expect(error).to.be.instanceOf(DialectDestroyedError)
      expect(error.message).to.match(/pool instance.*pool factories/)
    })

    it('onReserveConnection sets a per-request session value that reads on replicas see', async () => {
      const setting =
        fx.name === 'mysql'
          ? { set: sql`set @tenant = 'acme'`, get: sql<{ v: string }>`select @tenant as v` }
          : {
              set: sql`select set_config('app.tenant', 'acme', false)`,
              get: sql<{ v: string }>`select current_setting('app.tenant', true) as v`,
            }
      const t = withFactories({
        onReserveConnection: async (connection: DatabaseConnection) => {
          await connection.executeQuery(setting.set.compile(t.db))
        },
      })
      for (let i = 0; i < 4; i++) {
        const { rows } = await setting.get.execute(t.db)
        expect(rows[0]?.v).to.equal('acme')
        expect(t.routes.at(-1)?.role).to.equal('replica')
      }
      // The failure it prevents: without the hook, a replica session has no such value.
      const plain = withFactories()
      const { rows } = await setting.get.execute(plain.db)
      expect(rows[0]?.v ?? null).to.not.equal('acme')
    })

    for (const mode of ['causal', 'sticky'] as ConsistencyMode[]) {
      it(`after losing a race for a key, a ${mode} scope reads the winner's row back`, async () => {
        const replicas = cluster().replicas.map((r) => r.name)
        // Replicas apply late: a read there cannot see the winner's row yet.
        await Promise.all(replicas.map((r) => cluster().delayReplica(r, 1000)))
        try {
          const winner = fx.create(cluster(), { consistency: mode })
          const loser = fx.create(cluster(), { consistency: mode })
          track(winner.db)
          track(loser.db)
          const key = id++
          await winner.db.insertInto('parity').values({ id: key }).execute()
          const seen = await consistencyScope(async () => {
            const error = await loser.db
              .insertInto('parity')
              .values({ id: key })
              .execute()
              .catch((e: unknown) => e)
            expect(error, 'the duplicate insert').to.be.instanceOf(Error)
            return loser.db.selectFrom('parity').selectAll().where('id', '=', key).execute()
          })
          expect(seen).to.have.length(1)
          // The failure this prevents: a plain read in a fresh scope does not see it yet.
          const fresh = await consistencyScope(() =>
            loser.db.selectFrom('parity').selectAll().where('id', '=', key).execute(),
          )
          expect(fresh, 'a stale replica read (the failure the rule prevents)').to.have.length(0)
        } finally {
          await Promise.all(replicas.map((r) => cluster().delayReplica(r, 0)))
        }
      })
    }
  })
})
