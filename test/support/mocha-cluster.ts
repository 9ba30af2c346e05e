/**
 * Mocha helpers around the cluster harness (`cluster.ts`): a cluster per `describe`
 * (`useMariadbCluster`, `usePostgresCluster`) for tests that kill, restart or delay nodes, and one
 * lazily started cluster per process (`sharedMariadbCluster`, `sharedPostgresCluster`) for the rest.
 *
 * Without binaries or URLs the suite is skipped with a message printed once, except when `CI` is
 * set: then the `before` hook fails with the availability message.
 */
import { after, before } from 'mocha'
import {
  type ClusterAvailability,
  type MariadbCluster,
  type MariadbClusterOptions,
  mariadbAvailability,
  type PostgresCluster,
  type PostgresClusterOptions,
  postgresAvailability,
  startMariadbCluster,
  startPostgresCluster,
} from './cluster.js'

const START_TIMEOUT_MS = 60_000
const STOP_TIMEOUT_MS = 30_000

const printedMessages = new Set<string>()

/** Throws in CI, otherwise prints the message once and skips the current suite. */
function skipUnavailable(
  context: Mocha.Context,
  engine: string,
  availability: ClusterAvailability,
) {
  if (availability.ok) return
  if (process.env.CI) throw new Error(availability.message)
  if (!printedMessages.has(availability.message)) {
    printedMessages.add(availability.message)
    process.stderr.write(`  (skipping the ${engine} cluster tests: ${availability.message})\n`)
  }
  context.skip()
}

/**
 * Registers a `before` hook that skips the suite when the engine is unavailable and otherwise gets
 * a cluster, and, for a suite's own cluster (not `shared`), an `after` hook that stops it. Returns
 * a getter for the cluster.
 */
function clusterHooks<C extends { stop(): Promise<void> }>(
  engine: string,
  availability: () => ClusterAvailability,
  get: () => Promise<C>,
  { shared }: { shared: boolean },
): () => C {
  let cluster: C | undefined
  before(async function () {
    this.timeout(START_TIMEOUT_MS)
    skipUnavailable(this, engine, availability())
    cluster = await get()
  })
  if (!shared) {
    after(async function () {
      this.timeout(STOP_TIMEOUT_MS)
      const current = cluster
      cluster = undefined
      await current?.stop()
    })
  }
  return () => {
    if (cluster === undefined) {
      throw new Error(
        `the ${shared ? 'shared ' : ''}${engine} cluster is not running (use it inside tests and hooks only)`,
      )
    }
    return cluster
  }
}

/**
 * Call at the top of a `describe`: starts a MariaDB cluster of its own in `before` (60 s timeout)
 * and stops it in `after`. Returns a getter for the cluster, valid in the suite's tests and hooks.
 */
export function useMariadbCluster(options: MariadbClusterOptions = {}): () => MariadbCluster {
  return clusterHooks('MariaDB', mariadbAvailability, () => startMariadbCluster(options), {
    shared: false,
  })
}

/**
 * Call at the top of a `describe`: starts a PostgreSQL cluster of its own in `before` (60 s
 * timeout) and stops it in `after`. Returns a getter for the cluster.
 */
export function usePostgresCluster(options: PostgresClusterOptions = {}): () => PostgresCluster {
  return clusterHooks('PostgreSQL', postgresAvailability, () => startPostgresCluster(options), {
    shared: false,
  })
}

let sharedMariadb: Promise<MariadbCluster> | undefined
let sharedPostgres: Promise<PostgresCluster> | undefined

/**
 * The process-wide MariaDB cluster (2 replicas), started on first use and stopped by a root `after`
 * hook (and killed on exit at the latest). For tests that neither kill, restart nor delay nodes.
 * A failed start is remembered, so later suites fail fast with the same error.
 */
export function getSharedMariadbCluster(): Promise<MariadbCluster> {
  sharedMariadb ??= startMariadbCluster()
  return sharedMariadb
}

/** The process-wide PostgreSQL cluster (2 standbys); see {@link getSharedMariadbCluster}. */
export function getSharedPostgresCluster(): Promise<PostgresCluster> {
  sharedPostgres ??= startPostgresCluster()
  return sharedPostgres
}

/**
 * Call at the top of a `describe`: makes sure the shared MariaDB cluster runs (`before`, 60 s
 * timeout) and returns a getter for it. Do not kill, restart, delay or stop it.
 */
export function sharedMariadbCluster(): () => MariadbCluster {
  return clusterHooks('MariaDB', mariadbAvailability, getSharedMariadbCluster, { shared: true })
}

/** Like {@link sharedMariadbCluster}, for the shared PostgreSQL cluster. */
export function sharedPostgresCluster(): () => PostgresCluster {
  return clusterHooks('PostgreSQL', postgresAvailability, getSharedPostgresCluster, {
    shared: true,
  })
}

/** Stops the shared clusters (if started); they start again on next use. */
export async function stopSharedClusters(): Promise<void> {
  const clusters = [sharedMariadb, sharedPostgres]
  sharedMariadb = undefined
  sharedPostgres = undefined
  await Promise.all(
    clusters.map((pending) => pending?.then((cluster) => cluster.stop()).catch(() => {})),
  )
}

// Evaluated while mocha loads the first test file that imports this module, when the current suite
// is the root suite: this registers a root `after` hook. Outside mocha, `after` throws; the
// tracked processes are then killed on exit anyway.
try {
  after(async function () {
    this.timeout(STOP_TIMEOUT_MS)
    await stopSharedClusters()
  })
} catch {
  // not running under mocha
}
