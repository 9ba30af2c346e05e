/**
 * Run by test/unit/debug-log.test.ts in a child process (`NODE_DEBUG` is read when the process
 * starts): a few statements and a replica failure over fake pools, so that the debug log has a
 * route line of each shape and a node state change to print.
 */
import { Kysely, sql } from 'kysely'
import { consistencyScope, ReplicatedMysqlDialect } from '../../src/index.js'
import { fakeMysqlNode } from './fake-mysql.js'

const primary = fakeMysqlNode('primary')
const replica = fakeMysqlNode('replica-1')
const dialect = new ReplicatedMysqlDialect({
  primary: { pool: primary.pool },
  replicas: [{ name: 'replica-1', pool: replica.pool }],
  health: { probeIntervalMs: 0 },
})
const db = new Kysely<any>({ dialect })
// A server with room for the pools (the fake answers 0 otherwise: a pool-oversized event).
for (const node of [primary, replica]) {
  node.respond = (text) =>
    text.includes('@@max_connections') ? [{ max: 100, used: 1 }] : undefined
}

await consistencyScope(async () => {
  await db.insertInto('person').values({ id: 1 }).execute()
  await db.selectFrom('person').selectAll().execute()
})
await db.selectFrom('person').selectAll().forUpdate().execute()
await sql`select id,
    name   from person where name = 'a "quoted" name' and id in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)`.execute(
  db,
)
replica.down = true
await dialect.probeNow()
await db.destroy()
