import { expect } from 'chai'
import { Kysely } from 'kysely'
import {
  consistencyScope,
  getCausalToken,
  ReplicatedMysqlDialect,
  type RouteEvent,
} from '../../src/index.js'
import { fakeMysqlNode } from '../support/fake-mysql.js'

function setup() {
  const primary = fakeMysqlNode('primary')
  const replica = fakeMysqlNode('replica-1')
  const routes: RouteEvent[] = []
  const dialect = new ReplicatedMysqlDialect({
    primary: { pool: primary.pool },
    replicas: [{ name: 'replica-1', pool: replica.pool }],
    consistency: 'sticky',
    health: { probeIntervalMs: 0 },
    onRoute: (e) => routes.push(e),
  })
  const db = new Kysely<any>({ dialect })
  const read = async () => {
    await db.selectFrom('t').selectAll().execute()
    return routes.at(-1)!.role
  }
  const write = () => db.insertInto('t').values({ id: 1 }).execute()
  return { db, dialect, read, write }
}

describe('consistency scopes', () => {
  it('an inner scope sees the outer scope’s writes, and inner writes count for the outer scope', async () => {
    const { db, read, write } = setup()
    await consistencyScope(async () => {
      await write()
      expect(await consistencyScope(read)).to.equal('primary')
    })
    await consistencyScope(async () => {
      await consistencyScope(write)
      expect(await read()).to.equal('primary')
    })
    await db.destroy()
  })

  it('unrelated scopes do not see each other’s writes (nested ones do, through their enclosing scope)', async () => {
    const { db, read, write } = setup()
    await consistencyScope(write)
    expect(await consistencyScope(read)).to.equal('replica')
    await consistencyScope(async () => {
      await consistencyScope(write)
      // The write counted for the enclosing scope, so a later nested scope observes it.
      expect(await consistencyScope(read)).to.equal('primary')
    })
    await db.destroy()
  })

  it('code in no scope shares the process-wide scope, and a transaction outside any scope counts in it', async () => {
    const { db, read } = setup()
    // A fresh scope first: the process-wide scope may already hold writes of other tests.
    expect(await consistencyScope(read)).to.equal('replica')
    await db.transaction().execute((trx) => trx.insertInto('t').values({ id: 2 }).execute())
    expect(await read()).to.equal('primary')
    await db.destroy()
  })

  it('a causal token from one scope makes another scope observe its write', async () => {
    const primary = fakeMysqlNode('primary')
    const replica = fakeMysqlNode('replica-1')
    const routes: RouteEvent[] = []
    const db = new Kysely<any>({
      dialect: new ReplicatedMysqlDialect({
        primary: { pool: primary.pool },
        replicas: [{ name: 'replica-1', pool: replica.pool }],
        health: { probeIntervalMs: 0 },
        onRoute: (e) => routes.push(e),
      }),
    })
    const token = await consistencyScope(async () => {
      await db.insertInto('t').values({ id: 1 }).execute()
      return getCausalToken()
    })
    expect(token).to.equal('kr1.m.0-1-1')
    await consistencyScope(() => db.selectFrom('t').selectAll().execute())
    expect(routes.at(-1)!.reason).to.equal('read')
    await consistencyScope(() => db.selectFrom('t').selectAll().execute(), { causalToken: token })
    expect(routes.at(-1)!.reason).to.equal('causal-waited')
    const wait = replica.statements.find((s) => s.sql.startsWith('select master_gtid_wait'))
    expect(wait?.parameters[0]).to.equal('0-1-1')
    await db.destroy()
  })

  it('reports a causal token for another engine once, instead of ignoring it silently', async () => {
    const primary = fakeMysqlNode('primary')
    const replica = fakeMysqlNode('replica-1')
    const events: string[] = []
    const db = new Kysely<any>({
      dialect: new ReplicatedMysqlDialect({
        primary: { pool: primary.pool },
        replicas: [{ name: 'replica-1', pool: replica.pool }],
        health: { probeIntervalMs: 0 },
        onEvent: (e) => events.push(e.type),
      }),
    })
    await consistencyScope(
      async () => {
        await db.selectFrom('t').selectAll().execute()
        await db.selectFrom('t').selectAll().execute()
      },
      { causalToken: 'kr1.p.16-B374D848' },
    )
    expect(events.filter((e) => e === 'causal-token-ignored')).to.have.length(1)
    await db.destroy()
  })
})
