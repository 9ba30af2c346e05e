import {
  type Driver,
  DummyDriver,
  Kysely,
  MysqlAdapter,
  MysqlIntrospector,
  MysqlQueryCompiler,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
} from 'kysely'
import type { SqlFlavor } from '../../src/routing/classification.js'

/**
 * A Kysely that compiles for `flavor` without a database: the routing unit tests classify what it
 * compiles. `driver` defaults to Kysely's `DummyDriver` (executes nothing, returns no rows).
 */
export function offlineKysely<DB>(flavor: SqlFlavor, driver?: () => Driver): Kysely<DB> {
  const mysql = flavor === 'mysql'
  return new Kysely<DB>({
    dialect: {
      createAdapter: () => (mysql ? new MysqlAdapter() : new PostgresAdapter()),
      createDriver: driver ?? (() => new DummyDriver()),
      createIntrospector: (db) =>
        mysql ? new MysqlIntrospector(db) : new PostgresIntrospector(db),
      createQueryCompiler: () => (mysql ? new MysqlQueryCompiler() : new PostgresQueryCompiler()),
    },
  })
}
