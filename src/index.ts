export type { ConsistencyScopeOptions } from './consistency/scope.js'
export { consistencyScope, getCausalToken } from './consistency/scope.js'
export type {
  ConnectionHooks,
  ConsistencyMode,
  NodeConfig,
  ReplicaConfig,
  ReplicatedDialectConfig,
} from './core/config.js'
export type { NodeInfo } from './core/contracts/engine.js'
export {
  ConnectionSetupError,
  DialectDestroyedError,
  InvalidCausalTokenError,
  KyselyReplicatedError,
  NodeUnreachableError,
  NoReplicaAvailableError,
  PoolWaitTimeoutError,
  PrimaryChangedError,
  PrimaryUnavailableError,
  ReadOnlyViolationError,
  ReadTimeoutError,
  ReplicatedConfigError,
} from './core/contracts/errors.js'
export type {
  NodeState,
  ReplicationEvent,
  RouteEvent,
  RouteExplanation,
  RouteReason,
} from './core/contracts/events.js'
export type { PoolStats, ReplicaInfo, RoutingStats } from './core/contracts/stats.js'
export { explainRoute } from './core/explain-route.js'
export type {
  ReadonlyCommonTableExpression,
  ReadonlyCompiledQuery,
  ReadonlyConnectionBuilder,
  ReadonlyControlledTransaction,
  ReadonlyControlledTransactionBuilder,
  ReadonlyKysely,
  ReadonlyQueryCreator,
  ReadonlyTransaction,
  ReadonlyTransactionBuilder,
} from './core/readonly-kysely.js'
export type { RouteHint } from './core/route-hints.js'
export {
  onPrimary,
  onReplica,
  ReadTimeoutPlugin,
  RouteHintPlugin,
  readOnly,
  withReadTimeout,
} from './core/route-hints.js'
export type { MysqlPool, MysqlPoolConnection, MysqlPromisePool } from './mysql/mysql-pool-types.js'
export { ReplicatedMysqlDialect } from './mysql/replicated-mysql-dialect.js'
export type {
  MysqlConnectionOptions,
  ReplicatedMysqlDialectConfig,
} from './mysql/replicated-mysql-dialect-config.js'
export type { MetricsMeterProvider, MetricsOptions } from './observability/metrics.js'
export type { QueryCommentContext } from './observability/query-comments.js'
export { withQueryComment } from './observability/query-comments.js'
export type { TracingOptions } from './observability/tracing.js'
export type {
  PostgresCursor,
  PostgresCursorConstructor,
  PostgresPool,
  PostgresPoolClient,
  PostgresQueryResult,
} from './postgres/postgres-pool-types.js'
export { ReplicatedPostgresDialect } from './postgres/replicated-postgres-dialect.js'
export type {
  PostgresConnectionOptions,
  ReplicatedPostgresDialectConfig,
} from './postgres/replicated-postgres-dialect-config.js'
export { LeastLatencySelector } from './selection/least-latency.js'
export { P2cEwmaSelector } from './selection/p2c-ewma.js'
export { RandomSelector } from './selection/random.js'
export type {
  BuiltInSelectorName,
  ReplicaCandidate,
  ReplicaLoadView,
  ReplicaSelector,
  SelectionContext,
} from './selection/replica-selector.js'
export { RoundRobinSelector } from './selection/round-robin.js'
export { WeightedSelector } from './selection/weighted.js'
