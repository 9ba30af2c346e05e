import type { Compilable, CompiledQuery, Kysely } from 'kysely'
import { ReplicatedConfigError } from './contracts/errors.js'
import type { RouteExplanation } from './contracts/events.js'
import { RoutingConnection } from './routing-connection.js'

/**
 * Where `query` would run, without running it: `{ role, node?, reason, candidates? }`, from the
 * same routing rules, hints and session rules as a real execution. What depends on the moment is
 * taken as it is now: the replicas' health as the dialect knows it, and the writes of the current
 * `consistencyScope` (outside any, of the process-wide scope). For a replica route, `node` is set
 * only when the rules name one (`onReplica(db, name)`); `candidates` lists the replicas the
 * selector would pick among. No physical connection is taken, but the dialect's pools are
 * initialised (as for a first query), so its prober starts unless `health.probeIntervalMs` is 0.
 * Statements the rules refuse throw as they would (`ReadOnlyViolationError` through
 * `readOnly(db)`).
 *
 * @example
 * ```ts
 * const route = await explainRoute(db, db.selectFrom('person').selectAll().forUpdate())
 * // { role: 'primary', node: 'primary', reason: 'locking-read' }
 * ```
 */
export async function explainRoute(
  db: Kysely<any>,
  query: Compilable | CompiledQuery,
): Promise<RouteExplanation> {
  const compiled = 'compile' in query ? query.compile() : query
  return db.getExecutor().provideConnection(async (connection) => {
    if (!(connection instanceof RoutingConnection)) {
      throw new ReplicatedConfigError(
        'explainRoute(db, query): db does not use a kysely-replicated dialect (ReplicatedMysqlDialect or ReplicatedPostgresDialect)',
      )
    }
    return connection.explain(compiled)
  })
}
