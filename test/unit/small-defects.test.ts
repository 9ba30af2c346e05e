import { expect } from 'chai'
import { Kysely } from 'kysely'
import { annotateNodeError } from '../../src/core/contracts/errors.js'
import {
  ReplicatedMysqlDialect,
  ReplicatedPostgresDialect,
  type ReplicationEvent,
  type RouteEvent,
  withQueryComment,
} from '../../src/index.js'
import { formatSqlComment } from '../../src/observability/query-comments.js'
import { fakeMysqlNode } from '../support/fake-mysql.js'
import { fakePgNode } from '../support/fake-pg.js'

describe('small defects, each pinned by a test', () => {
  it('a lone UTF-16 surrogate in a query comment value becomes U+FFFD instead of throwing URIError', async () => {
    expect(formatSqlComment({ route: 'a\uD800b' })).to.equal("/*route='a%EF%BF%BDb'*/")
    expect(formatSqlComment({ route: '\uDC00' })).to.equal("/*route='%EF%BF%BD'*/")
    // A well-formed pair is kept.
    expect(formatSqlComment({ route: '\uD83D\uDE00' })).to.equal("/*route='%F0%9F%98%80'*/")
    const primary = fakeMysqlNode('primary')
    const dialect = new ReplicatedMysqlDialect({
      primary: { pool: primary.pool },
      replicas: [],
      queryComments: true,
      health: { probeIntervalMs: 0 },
    })
    const db = new Kysely<{ t: { id: number } }>({ dialect })
    await withQueryComment({ route: 'cut\uD800' }, () => db.selectFrom('t').selectAll().execute())
    expect(primary.statements.at(-1)?.sql).to.contain("route='cut%EF%BF%BD'")
    await db.destroy()
  })

  it("passes an abort error back untouched (Kysely recognises it by identity; a DOMException's message is read-only)", () => {
    const abort = new DOMException('This operation was aborted', 'AbortError')
    expect(() => annotateNodeError(abort, 'replica-1')).to.not.throw()
    expect(annotateNodeError(abort, 'replica-1')).to.equal(abort)
    expect(abort.message).to.equal('This operation was aborted')
    expect((abort as unknown as { node?: string }).node).to.equal(undefined)
    const driver = new Error('connect ECONNREFUSED')
    expect(annotateNodeError(driver, 'replica-1').message).to.contain('(node "replica-1")')
  })

  it('reports no causal-unsupported when a PostgreSQL primary dies right after a write (its position could not be read)', async () => {
    const primary = fakePgNode('primary')
    const events: ReplicationEvent[] = []
    const dialect = new ReplicatedPostgresDialect({
      primary: { pool: primary.pool },
      replicas: [{ name: 'replica-1', pool: fakePgNode('replica-1').pool }],
      consistency: 'causal',
      health: { probeIntervalMs: 0 },
      onEvent: (e) => events.push(e),
    })
    const db = new Kysely<{ t: { id: number } }>({ dialect })
    primary.respond = (text) =>
      text.includes('pg_current_wal_insert_lsn')
        ? Object.assign(new Error('Connection terminated unexpectedly'), { code: 'ECONNRESET' })
        : undefined
    await db.insertInto('t').values({ id: 1 }).execute()
    expect(events.filter((e) => e.type === 'causal-unsupported')).to.deep.equal([])
    // The scope's reads still go to the primary (its write's position is unknown): sticky.
    await db.destroy()
  })

  describe("MariaDB's whole-second lag in causal planning", () => {
    for (const [seconds, expected] of [
      [1, 'causal-waited'],
      [3, 'causal-behind'],
    ] as const) {
      it(`a replica reporting ${seconds} s of lag is ${expected === 'causal-waited' ? 'waited for' : 'skipped'}`, async () => {
        const primary = fakeMysqlNode('primary')
        const replica = fakeMysqlNode('replica-1')
        replica.respond = (text) =>
          text.startsWith('show slave status')
            ? [
                {
                  Seconds_Behind_Master: seconds,
                  Slave_SQL_Running: 'Yes',
                  Slave_IO_Running: 'Yes',
                },
              ]
            : undefined
        const routes: RouteEvent[] = []
        const dialect = new ReplicatedMysqlDialect({
          primary: { pool: primary.pool },
          replicas: [{ name: 'replica-1', pool: replica.pool }],
          consistency: 'causal',
          health: { probeIntervalMs: 0 },
          onRoute: (e) => routes.push(e),
        })
        const db = new Kysely<{ t: { id: number } }>({ dialect })
        await db.insertInto('t').values({ id: 1 }).execute()
        await dialect.probeNow()
        await db.selectFrom('t').selectAll().execute()
        expect(routes.at(-1)?.reason).to.equal(expected)
        await db.destroy()
      })
    }
  })
})
