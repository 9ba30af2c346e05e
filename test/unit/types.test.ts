/**
 * Compile-time checks (run by `npm run typecheck`): real driver pools fit the config types, and
 * `readOnly(db)` refuses write builders. The runtime part only makes mocha see a test.
 */
import { expect } from 'chai'
import type { Kysely } from 'kysely'
import { createPool } from 'mysql2'
import { createPool as createPromisePool } from 'mysql2/promise'
import pg from 'pg'
import Cursor from 'pg-cursor'
import type {
  ReplicatedMysqlDialectConfig,
  ReplicatedPostgresDialectConfig,
} from '../../src/index.js'
import { readOnly } from '../../src/index.js'

interface DB {
  person: { id: number; name: string }
}

// A mysql2 callback pool, a mysql2/promise pool, an async factory and connection options.
const mysqlConfig: ReplicatedMysqlDialectConfig = {
  primary: { pool: createPool({ host: 'primary' }) },
  replicas: [
    { name: 'r1', pool: createPromisePool({ host: 'r1' }) },
    { name: 'r2', pool: async () => createPool({ host: 'r2' }), weight: 2 },
    { name: 'r3', connection: { host: 'r3', user: 'app' }, poolSize: 5, maxLifetimeMs: 60_000 },
  ],
  selector: 'p2c-ewma',
  consistency: 'causal',
}

// A pg Pool, an async factory, connection options, and pg-cursor for streaming.
const postgresConfig: ReplicatedPostgresDialectConfig = {
  primary: { pool: new pg.Pool({ host: 'primary' }) },
  replicas: [
    { name: 'r1', pool: async () => new pg.Pool({ host: 'r1' }) },
    { name: 'r2', connection: { host: 'r2' }, idleTimeoutMs: 10_000 },
  ],
  cursor: Cursor,
}

function readOnlyViewHasNoWriteBuilders(db: Kysely<DB>): void {
  const ro = readOnly(db)
  void ro.selectFrom('person').selectAll()
  // The library's ReadonlyKysely has no write builders: the write does not compile.
  // @ts-expect-error insert through a read-only view
  void ro.insertInto('person').values({ id: 1, name: 'x' }).execute()
  // @ts-expect-error update through a read-only view
  void ro.updateTable('person').set({ name: 'x' }).execute()
  // @ts-expect-error delete through a read-only view
  void ro.deleteFrom('person').execute()
  // @ts-expect-error schema changes through a read-only view
  void ro.schema.dropTable('person').execute()
}

/** `connection` options are typed (mysql2's and pg's option names), so a typo does not compile. */
const typedConnections: ReplicatedMysqlDialectConfig = {
  primary: {
    connection: { host: 'p', user: 'u', password: 'x', database: 'd', connectTimeout: 3000 },
  },
  replicas: [
    // @ts-expect-error a misspelt mysql2 option
    { name: 'r1', connection: { host: 'r1', databse: 'd' } },
  ],
}
const typedPgConnections: ReplicatedPostgresDialectConfig = {
  primary: { connection: { host: 'p', connectionTimeoutMillis: 3000, application_name: 'app' } },
  replicas: [
    // @ts-expect-error a misspelt pg option
    { name: 'r1', connection: { host: 'r1', connectionTimeout: 3000 } },
  ],
}

describe('public types', () => {
  it('type connection options, so a misspelt one does not compile (checked by the type checker)', () => {
    expect(typedConnections.replicas).to.have.length(1)
    expect(typedPgConnections.replicas).to.have.length(1)
  })

  it('accept real mysql2 and pg pools (checked by the type checker)', () => {
    expect(mysqlConfig.replicas).to.have.length(3)
    expect(postgresConfig.replicas).to.have.length(2)
    expect(readOnlyViewHasNoWriteBuilders).to.be.a('function')
  })
})
