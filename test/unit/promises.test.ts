/**
 * The cost the library adds to every query is mostly promises: each one, and each continuation,
 * costs more inside an `AsyncLocalStorage` context (their hooks run). These tests count the
 * promises a query makes, with `async_hooks`, through the whole of Kysely, against Kysely's own
 * `MysqlDialect` on the same fake mysql2 pool: a count, not a duration, so they hold on any
 * machine and any load, and on every Kysely version CI runs (its own frames count on both sides).
 */
import { createHook } from 'node:async_hooks'
import { expect } from 'chai'
import { Kysely, MysqlDialect } from 'kysely'
import { consistencyScope, ReplicatedMysqlDialect } from '../../src/index.js'
import { type FakeMysqlNode, fakeMysqlNode } from '../support/fake-mysql.js'

interface DB {
  person: { id: number; name: string }
}

/** Promises made per call of `query`, over `times` sequential awaited calls after a warm-up. */
async function promisesPer(query: () => Promise<unknown>, times = 200): Promise<number> {
  for (let i = 0; i < 50; i++) await query()
  let counting = false
  let promises = 0
  const hook = createHook({
    init(_id, type) {
      if (counting && type === 'PROMISE') promises++
    },
  }).enable()
  try {
    counting = true
    for (let i = 0; i < times; i++) await query()
    counting = false
  } finally {
    hook.disable()
  }
  return promises / times
}

function kysely(): Kysely<DB> {
  const node = fakeMysqlNode('primary')
  return new Kysely<DB>({ dialect: new MysqlDialect({ pool: node.pool as never }) })
}

/** The replicas of the last {@link replicated} dialect made: the reads must have reached them. */
let replicas: FakeMysqlNode[] = []

function replicated(consistency: 'eventual' | 'causal'): Kysely<DB> {
  const primary = fakeMysqlNode('primary')
  replicas = [fakeMysqlNode('replica-1'), fakeMysqlNode('replica-2')]
  return new Kysely<DB>({
    dialect: new ReplicatedMysqlDialect({
      primary: { pool: primary.pool as never },
      replicas: replicas.map((r) => ({ name: r.name, pool: r.pool as never })),
      consistency,
      health: { probeIntervalMs: 0 },
    }),
  })
}

/** Reads of `person` the nodes ran. */
const selectsOn = (nodes: readonly FakeMysqlNode[]) =>
  nodes.reduce(
    (n, node) => n + node.statements.filter((s) => /from `person`/.test(s.sql)).length,
    0,
  )

const read = (db: Kysely<DB>) => () =>
  db.selectFrom('person').select(['id', 'name']).where('id', '=', 1).executeTakeFirst()
const write = (db: Kysely<DB>) => () =>
  db.updateTable('person').set({ name: 'x' }).where('id', '=', 1).execute()

describe('promises per query, against Kysely’s MysqlDialect (async_hooks counts)', () => {
  const dbs: Kysely<DB>[] = []
  const track = (db: Kysely<DB>) => {
    dbs.push(db)
    return db
  }
  after(async () => {
    await Promise.all(dbs.map((db) => db.destroy()))
  })

  for (const consistency of ['eventual', 'causal'] as const) {
    it(`a replica read makes fewer promises than MysqlDialect's read (${consistency})`, async () => {
      const baseline = await promisesPer(read(track(kysely())))
      const ours = await promisesPer(read(track(replicated(consistency))))
      expect(ours).to.be.below(baseline)
      expect(selectsOn(replicas)).to.be.at.least(250)
    })

    it(`a write makes no more promises than MysqlDialect's write (${consistency})`, async () => {
      const baseline = await promisesPer(write(track(kysely())))
      const ours = await promisesPer(write(track(replicated(consistency))))
      expect(ours).to.be.at.most(baseline)
    })
  }

  it('inside a consistencyScope, a read still makes fewer promises than MysqlDialect’s', async () => {
    const baseline = await promisesPer(read(track(kysely())))
    const db = track(replicated('causal'))
    const ours = await promisesPer(() => consistencyScope(read(db)))
    expect(ours).to.be.below(baseline)
    expect(selectsOn(replicas)).to.be.at.least(250)
  })

  it('(the count can fail) sees one async wrapper more around the same query', async () => {
    const db = track(kysely())
    const plain = await promisesPer(read(db))
    const wrapped = await promisesPer(async () => await read(db)())
    expect(wrapped).to.be.at.least(plain + 1)
  })
})
