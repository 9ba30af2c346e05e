/**
 * A PostgreSQL primary with streaming hot standbys as local processes (or an existing cluster from
 * `KYSELY_REPLICATED_PG_URLS`). See `cluster.ts`.
 */
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as fsp from 'node:fs/promises'
import * as path from 'node:path'
import pg from 'pg'
import type {
  ClusterAvailability,
  ClusterNode,
  NodeConnectionOptions,
  ReplicatedTestCluster,
  StartClusterOptions,
} from './cluster.js'
import {
  copyTree,
  envWithout,
  externalClusterError,
  findExecutable,
  findFreePort,
  findFreePorts,
  formatSeconds,
  isRoot,
  lookupUser,
  makeTempDir,
  type ParsedDatabaseUrl,
  parseDatabaseUrls,
  pollUntil,
  removeTempDir,
  runCommand,
  StopPolling,
  spawnServer,
  type TrackedProcess,
  tailFile,
  trackTempDir,
} from './ports.js'

/** A PostgreSQL primary and streaming hot standbys made with `pg_basebackup -R -X stream`. */
export interface PostgresCluster extends ReplicatedTestCluster {
  readonly engine: 'postgres'
  /**
   * `ALTER SYSTEM SET recovery_min_apply_delay = 'ms'` + `pg_reload_conf()` on a standby (waits
   * until the new value is in effect); 0 removes the delay.
   */
  setReplicaDelay(replica: string, ms: number): Promise<void>
}

/** Options of {@link startPostgresCluster}. */
export type PostgresClusterOptions = StartClusterOptions

const URLS_VARIABLE = 'KYSELY_REPLICATED_PG_URLS'
const ADMIN_URLS_VARIABLE = 'KYSELY_REPLICATED_PG_ADMIN_URLS'
const BINDIR_VARIABLE = 'KYSELY_REPLICATED_PG_BINDIR'
const DATABASE = 'app'
const APP_USER = 'app'
const APP_PASSWORD = 'app'
const SUPERUSER = 'postgres'
const START_TIMEOUT_MS = 30_000
const STOP_TIMEOUT_MS = 3_000
const REQUIRED = ['initdb', 'postgres', 'pg_basebackup']

/** Settings of every node (the standbys inherit postgresql.conf through pg_basebackup). */
const SETTINGS: Record<string, string> = {
  listen_addresses: "'127.0.0.1'",
  fsync: 'off',
  full_page_writes: 'off',
  synchronous_commit: 'on',
  wal_level: 'replica',
  max_wal_senders: '10',
  wal_keep_size: "'128MB'",
  hot_standby: 'on',
  wal_retrieve_retry_interval: "'100ms'",
  shared_buffers: "'32MB'",
  max_connections: '200',
  ssl: 'off',
  logging_collector: 'off',
  log_line_prefix: "'%m [%p] %q%a '",
}

/** Run once on the template: the application role owns the application database. */
const SETUP_SQL = [
  `CREATE ROLE ${APP_USER} LOGIN PASSWORD '${APP_PASSWORD}'`,
  `CREATE DATABASE ${DATABASE} OWNER ${APP_USER}`,
  // read access to monitoring views and functions (pg_stat_replication, …); bypasses nothing
  `GRANT pg_monitor TO ${APP_USER}`,
]

const PG_HBA = `# written by the kysely-replicated test harness
local all all trust
host all ${SUPERUSER} 127.0.0.1/32 trust
host replication ${SUPERUSER} 127.0.0.1/32 trust
host all all 127.0.0.1/32 scram-sha-256
`

function hasBinaries(dir: string): boolean {
  return REQUIRED.every((name) => findExecutable(name, [dir]) === path.join(dir, name))
}

function compareVersionsDescending(a: string, b: string): number {
  const va = Number.parseFloat(path.basename(path.dirname(a)))
  const vb = Number.parseFloat(path.basename(path.dirname(b)))
  return (Number.isNaN(vb) ? -1 : vb) - (Number.isNaN(va) ? -1 : va)
}

/** The directory holding initdb, postgres and pg_basebackup, or undefined. */
function findPostgresBinDir(): string | undefined {
  const override = process.env[BINDIR_VARIABLE]
  if (override) return hasBinaries(override) ? override : undefined
  const candidates: string[] = []
  for (const root of ['/usr/lib/postgresql', '/usr/local/lib/postgresql']) {
    try {
      for (const version of fs.readdirSync(root)) candidates.push(path.join(root, version, 'bin'))
    } catch {
      // not there
    }
  }
  candidates.sort(compareVersionsDescending)
  for (const dir of candidates) if (hasBinaries(dir)) return dir
  const pgConfig = findExecutable('pg_config')
  if (pgConfig !== undefined) {
    try {
      const result = spawnSync(pgConfig, ['--bindir'], { encoding: 'utf8' })
      const dir = String(result.stdout ?? '').trim()
      if (result.status === 0 && dir && hasBinaries(dir)) return dir
    } catch {
      // ignore
    }
  }
  const initdb = findExecutable('initdb', ['/usr/local/pgsql/bin'])
  if (initdb !== undefined && hasBinaries(path.dirname(initdb))) return path.dirname(initdb)
  return undefined
}

/** When running as root, the user the servers run as (`postgres`); undefined otherwise. */
function serverUser(): { uid: number; gid: number } | undefined {
  return isRoot() ? lookupUser(SUPERUSER) : undefined
}

/**
 * Whether a PostgreSQL cluster can be used here: `KYSELY_REPLICATED_PG_URLS` is set, or the server
 * binaries (initdb, postgres, pg_basebackup) are installed (and, when running as root, the system
 * user `postgres` exists). Otherwise says what to install.
 */
export function postgresAvailability(): ClusterAvailability {
  if (process.env[URLS_VARIABLE]?.trim()) return { ok: true }
  if (findPostgresBinDir() === undefined) {
    return {
      ok: false,
      message:
        'PostgreSQL server binaries (initdb, postgres, pg_basebackup) not found in ' +
        `/usr/lib/postgresql/*/bin, \`pg_config --bindir\` or PATH: install them with ` +
        `\`apt-get install postgresql\` (or set ${BINDIR_VARIABLE}), or set ` +
        `${URLS_VARIABLE}="postgres://user:pass@host:port/db,…" (primary first, then the replicas)`,
    }
  }
  if (isRoot() && lookupUser(SUPERUSER) === undefined) {
    return {
      ok: false,
      message:
        'PostgreSQL refuses to run as root and there is no system user "postgres" to run it as: ' +
        `create one (\`useradd -r postgres\`), run the tests as another user, or set ${URLS_VARIABLE}`,
    }
  }
  return { ok: true }
}

function defaultLog(): ((line: string) => void) | undefined {
  return process.env.KYSELY_REPLICATED_HARNESS_LOG
    ? (line) => process.stderr.write(`[cluster] ${line}\n`)
    : undefined
}

async function chownTo(target: string, user: { uid: number; gid: number } | undefined) {
  if (user !== undefined) await fsp.chown(target, user.uid, user.gid)
}

let templatePromise: Promise<string> | undefined

/**
 * The primary's initial data directory, made once per process: `initdb`, the harness's
 * postgresql.conf settings and pg_hba.conf, and the application role and database (made in
 * single-user mode). Each cluster's primary starts from a copy.
 */
function postgresTemplate(binDir: string, log?: (line: string) => void): Promise<string> {
  templatePromise ??= (async () => {
    const dir = await makeTempDir('kysely-replicated-postgres-template-')
    trackTempDir(dir)
    try {
      return await createTemplate(dir, binDir, log)
    } catch (error) {
      templatePromise = undefined
      await removeTempDir(dir).catch(() => {})
      throw error
    }
  })()
  return templatePromise
}

async function createTemplate(
  dir: string,
  binDir: string,
  log?: (line: string) => void,
): Promise<string> {
  const started = Date.now()
  const user = serverUser()
  await chownTo(dir, user)
  const dataDir = path.join(dir, 'data')
  await runCommand(
    path.join(binDir, 'initdb'),
    [
      '-D',
      dataDir,
      '-U',
      SUPERUSER,
      '-A',
      'trust',
      '-E',
      'UTF8',
      '--locale=C',
      '--no-sync',
      '--no-instructions',
    ],
    { ...(user ? { user } : {}), cwd: dir, env: envWithout(['PG', 'LC_', 'LANG'], { HOME: dir }) },
  )
  const settings = Object.entries(SETTINGS)
    .map(([name, value]) => `${name} = ${value}`)
    .join('\n')
  await fsp.appendFile(
    path.join(dataDir, 'postgresql.conf'),
    `\n# kysely-replicated test harness\n${settings}\n`,
  )
  await fsp.writeFile(path.join(dataDir, 'pg_hba.conf'), PG_HBA)
  // The application role and database, in single-user mode (one statement per line)
  const single = await runCommand(
    path.join(binDir, 'postgres'),
    ['--single', '-D', dataDir, '-c', 'fsync=off', '-c', 'log_min_messages=warning', 'postgres'],
    {
      ...(user ? { user } : {}),
      cwd: dir,
      env: envWithout(['PG'], { HOME: dir }),
      input: `${SETUP_SQL.join('\n')}\n`,
      allowFailure: true,
    },
  )
  if (single.code !== 0 || /\b(ERROR|FATAL|PANIC):/.test(single.output)) {
    throw new Error(`postgres --single failed (exit code ${single.code}):\n${single.output}`)
  }
  log?.(`postgres: data directory template ready (${formatSeconds(Date.now() - started)})`)
  return dataDir
}

interface NodeState {
  node: ClusterNode
  /** Absent for an external cluster. */
  dataDir?: string
  process?: TrackedProcess
  /** WAL replay paused through the harness. */
  paused: boolean
  /** recovery_min_apply_delay (ms) set through the harness. */
  delay: number
  /** External cluster: the admin URL of this node. */
  adminUrl?: ParsedDatabaseUrl
}

function isPortConflict(logTail: string): boolean {
  return /could not bind|Address already in use|could not create any TCP\/IP sockets/i.test(logTail)
}

class PostgresClusterImpl implements PostgresCluster {
  readonly engine = 'postgres' as const
  readonly primary: ClusterNode
  readonly replicas: ClusterNode[]
  readonly nodes: ClusterNode[]
  readonly database: string
  readonly user: string
  readonly password: string
  readonly external: boolean
  readonly directory: string | undefined
  private readonly states: Map<string, NodeState>
  private stopping: Promise<void> | undefined
  private readonly binDir: string | undefined
  private readonly osUser: { uid: number; gid: number } | undefined
  private readonly log: ((line: string) => void) | undefined

  constructor(init: {
    states: NodeState[]
    database: string
    user: string
    password: string
    external: boolean
    directory?: string
    binDir?: string
    osUser?: { uid: number; gid: number }
    log?: (line: string) => void
  }) {
    this.states = new Map(init.states.map((state) => [state.node.name, state]))
    this.nodes = init.states.map((state) => state.node)
    this.primary = this.nodes[0]!
    this.replicas = this.nodes.slice(1)
    this.database = init.database
    this.user = init.user
    this.password = init.password
    this.external = init.external
    this.directory = init.directory
    this.binDir = init.binDir
    this.osUser = init.osUser
    this.log = init.log
  }

  private state(node: ClusterNode | string): NodeState {
    const name = typeof node === 'string' ? node : node.name
    const state = this.states.get(name)
    if (state === undefined) {
      throw new Error(
        `unknown cluster node ${JSON.stringify(name)} (nodes: ${[...this.states.keys()].join(', ')})`,
      )
    }
    return state
  }

  private replicaState(replica: string): NodeState {
    const state = this.state(replica)
    if (state.node.role !== 'replica') throw new Error(`${replica} is not a replica`)
    return state
  }

  connectionOptions(node: ClusterNode | string): NodeConnectionOptions {
    const { node: target } = this.state(node)
    return {
      host: target.host,
      port: target.port,
      user: this.user,
      password: this.password,
      database: this.database,
    }
  }

  private adminOptions(state: NodeState, database?: string): pg.ClientConfig {
    if (this.external) {
      const admin = state.adminUrl
      const options =
        admin !== undefined
          ? { ...admin, database: admin.database || this.database }
          : this.connectionOptions(state.node)
      return { ...options, ...(database ? { database } : {}) }
    }
    return {
      host: state.node.host,
      port: state.node.port,
      user: SUPERUSER,
      database: database ?? this.database,
    }
  }

  /** Runs `fn` with a short-lived superuser connection to a node. */
  async withAdmin<T>(
    node: ClusterNode | string,
    fn: (client: pg.Client) => Promise<T>,
    database?: string,
  ): Promise<T> {
    const state = this.state(node)
    const client = new pg.Client({
      ...this.adminOptions(state, database),
      connectionTimeoutMillis: 5000,
    })
    client.on('error', () => {})
    await client.connect()
    try {
      return await fn(client)
    } finally {
      await client.end().catch(() => {})
    }
  }

  admin(node: ClusterNode | string, sql: string, params?: unknown[]): Promise<any[]> {
    return this.withAdmin(node, async (client) => {
      const result: pg.QueryResult | pg.QueryResult[] = await client.query(sql, params as any[])
      const last = Array.isArray(result) ? result[result.length - 1] : result
      return last?.rows ?? []
    })
  }

  async waitForReplication(timeoutMs = 10_000, replicas?: string[]): Promise<void> {
    const targets =
      replicas !== undefined
        ? replicas.map((name) => this.replicaState(name))
        : [...this.states.values()].filter(
            (state) =>
              state.node.role === 'replica' &&
              this.isRunning(state.node) &&
              !state.paused &&
              state.delay === 0,
          )
    if (targets.length === 0) return
    const [row] = await this.admin(this.primary, 'SELECT pg_current_wal_lsn()::text AS lsn')
    const lsn = String(row?.lsn)
    await Promise.all(
      targets.map((state) =>
        this.withAdmin(state.node, async (client) => {
          try {
            await pollUntil(
              async () => {
                const result = await client.query(
                  'SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS reached',
                  [lsn],
                )
                return result.rows[0]?.reached === true ? true : undefined
              },
              { timeoutMs, intervalMs: 2, onTimeout: (error) => new Error(String(error)) },
            )
          } catch {
            throw new Error(
              `${state.node.name} did not replay the primary's WAL up to ${lsn} within ${timeoutMs} ms: ${await this.describeReplica(state.node.name)}`,
            )
          }
        }),
      ),
    )
  }

  /** A one-line summary of a standby's replication state, for error messages. */
  async describeReplica(replica: string): Promise<string> {
    try {
      const [row] = await this.admin(
        replica,
        `SELECT pg_is_in_recovery() AS in_recovery,
          pg_last_wal_receive_lsn()::text AS received, pg_last_wal_replay_lsn()::text AS replayed,
          pg_get_wal_replay_pause_state() AS pause_state,
          current_setting('recovery_min_apply_delay') AS apply_delay,
          (SELECT status FROM pg_stat_wal_receiver) AS receiver`,
      )
      return (
        `in_recovery=${row?.in_recovery} receiver=${row?.receiver ?? 'none'} received=${row?.received} ` +
        `replayed=${row?.replayed} pause_state=${row?.pause_state} recovery_min_apply_delay=${row?.apply_delay}`
      )
    } catch (error) {
      return `(cannot read its state: ${(error as Error).message})`
    }
  }

  async setReplicaDelay(replica: string, ms: number): Promise<void> {
    if (this.external) throw externalClusterError('setReplicaDelay', URLS_VARIABLE)
    if (!Number.isInteger(ms) || ms < 0) {
      throw new Error(`setReplicaDelay: ms must be a non-negative integer, got ${ms}`)
    }
    const state = this.replicaState(replica)
    await this.withAdmin(replica, async (client) => {
      await client.query(`ALTER SYSTEM SET recovery_min_apply_delay = '${ms}ms'`)
      await client.query('SELECT pg_reload_conf()')
    })
    // New sessions see the value once the postmaster has re-read the configuration (the startup
    // process, signalled at the same time, re-reads it promptly too).
    await pollUntil(
      async () => {
        const [row] = await this.admin(
          replica,
          "SELECT setting FROM pg_settings WHERE name = 'recovery_min_apply_delay'",
        )
        return Number(row?.setting) === ms ? true : undefined
      },
      {
        timeoutMs: 5000,
        intervalMs: 5,
        onTimeout: () => new Error(`${replica}: recovery_min_apply_delay did not become ${ms}ms`),
      },
    )
    state.delay = ms
  }

  async stopReplicaSqlThread(replica: string): Promise<void> {
    const state = this.replicaState(replica)
    await this.admin(replica, 'SELECT pg_wal_replay_pause()')
    state.paused = true
  }

  async startReplica(replica: string): Promise<void> {
    const state = this.replicaState(replica)
    await this.admin(replica, 'SELECT pg_wal_replay_resume()')
    state.paused = false
  }

  async kill(node: string): Promise<void> {
    if (this.external) throw externalClusterError('kill', URLS_VARIABLE)
    const state = this.state(node)
    await state.process?.killHard()
    this.log?.(`postgres: killed ${node}`)
  }

  async restart(node: string): Promise<void> {
    if (this.external) throw externalClusterError('restart', URLS_VARIABLE)
    if (this.stopping !== undefined) throw new Error('restart: the cluster was stopped')
    const state = this.state(node)
    const started = Date.now()
    if (state.process?.running) await state.process.terminate('SIGINT', 10_000)
    await this.startNode(state, false)
    if (state.node.role === 'replica') {
      state.paused = false // a replay pause does not survive a restart
      if (this.isRunning(this.primary)) await this.waitForStreaming(state, 5_000, false)
    }
    this.log?.(`postgres: restarted ${node} (${formatSeconds(Date.now() - started)})`)
  }

  stop(): Promise<void> {
    this.stopping ??= this.stopNow()
    return this.stopping
  }

  private async stopNow(): Promise<void> {
    if (this.external) return
    const started = Date.now()
    // SIGINT: fast shutdown
    await Promise.all(
      [...this.states.values()].map((state) => state.process?.terminate('SIGINT', STOP_TIMEOUT_MS)),
    )
    if (this.directory !== undefined) await removeTempDir(this.directory)
    this.log?.(`postgres: cluster stopped (${formatSeconds(Date.now() - started)})`)
  }

  pid(node: ClusterNode | string): number | undefined {
    const state = this.state(node)
    return state.process?.running ? state.process.pid : undefined
  }

  isRunning(node: ClusterNode | string): boolean {
    const state = this.state(node)
    return this.external || state.process?.running === true
  }

  logFile(node: ClusterNode | string): string | undefined {
    const state = this.state(node)
    return this.directory !== undefined
      ? path.join(this.directory, `${state.node.name}.log`)
      : undefined
  }

  private serverEnv(): NodeJS.ProcessEnv {
    return envWithout(['PG'], { HOME: this.directory! })
  }

  /** Starts a node's postmaster and waits until it accepts connections. */
  async startNode(state: NodeState, retryOnPortConflict: boolean): Promise<void> {
    const logFile = this.logFile(state.node)!
    for (let attempt = 1; ; attempt++) {
      const logLines = tailFile(logFile, 100000).split('\n').length
      state.process = spawnServer(
        path.join(this.binDir!, 'postgres'),
        [
          '-D',
          state.dataDir!,
          '-p',
          String(state.node.port),
          '-k',
          this.directory!,
          '-c',
          `cluster_name=${state.node.name}`,
        ],
        {
          logFile,
          postgresDataDir: state.dataDir!,
          env: this.serverEnv(),
          cwd: this.directory!,
          ...(this.osUser ? { user: this.osUser } : {}),
        },
      )
      try {
        await this.waitUntilAccepting(state, START_TIMEOUT_MS)
        return
      } catch (error) {
        await state.process.killHard()
        const newLines = tailFile(logFile, 100000).split('\n').slice(logLines).join('\n')
        if (retryOnPortConflict && attempt < 4 && isPortConflict(newLines)) {
          state.node.port = await findFreePort()
          this.log?.(`postgres: ${state.node.name}: port taken, retrying on ${state.node.port}`)
          continue
        }
        throw error
      }
    }
  }

  private async waitUntilAccepting(state: NodeState, timeoutMs: number): Promise<void> {
    const logFile = this.logFile(state.node)!
    const failure = (reason: string) =>
      new Error(
        `PostgreSQL ${state.node.name} (port ${state.node.port}) ${reason}; last lines of ${logFile}:\n${tailFile(logFile)}`,
      )
    await pollUntil(
      async () => {
        const server = state.process!
        if (!server.running) {
          throw new StopPolling(failure(`exited during start-up (${server.exitStatus})`))
        }
        const client = new pg.Client({
          ...this.adminOptions(state, 'postgres'),
          connectionTimeoutMillis: 1000,
        })
        client.on('error', () => {})
        try {
          await client.connect()
        } finally {
          await client.end().catch(() => {})
        }
        return true
      },
      {
        timeoutMs,
        intervalMs: 10,
        onTimeout: (lastError) =>
          failure(
            `did not accept connections within ${timeoutMs} ms (last error: ${(lastError as Error)?.message})`,
          ),
      },
    )
  }

  /** Takes a base backup of the primary for a new standby (`-R` writes standby.signal + conninfo). */
  async baseBackup(state: NodeState): Promise<void> {
    await runCommand(
      path.join(this.binDir!, 'pg_basebackup'),
      [
        '-d',
        `host=${this.primary.host} port=${this.primary.port} user=${SUPERUSER} application_name=${state.node.name}`,
        '-D',
        state.dataDir!,
        '-R',
        '-X',
        'stream',
        '-c',
        'fast',
        '--no-sync',
        '--no-manifest',
      ],
      {
        env: this.serverEnv(),
        cwd: this.directory!,
        ...(this.osUser ? { user: this.osUser } : {}),
      },
    )
  }

  /** Waits until a standby's WAL receiver streams from the primary. */
  async waitForStreaming(state: NodeState, timeoutMs: number, strict = true): Promise<void> {
    try {
      await pollUntil(
        async () => {
          const [row] = await this.admin(
            state.node,
            'SELECT status FROM pg_stat_wal_receiver',
            undefined,
          )
          return row?.status === 'streaming' ? true : undefined
        },
        {
          timeoutMs,
          intervalMs: 10,
          onTimeout: () => new Error(`${state.node.name}: WAL streaming did not start`),
        },
      )
    } catch (error) {
      if (strict) {
        throw new Error(
          `${(error as Error).message} within ${timeoutMs} ms: ${await this.describeReplica(state.node.name)}; ` +
            `last lines of ${this.logFile(state.node)}:\n${tailFile(this.logFile(state.node)!)}`,
        )
      }
      this.log?.(`postgres: ${state.node.name}: not streaming yet`)
    }
  }
}

/**
 * Starts a PostgreSQL cluster: a primary and `replicas` (default 2) streaming hot standbys on free
 * ports in a fresh temp directory, with the database `app` owned by the non-superuser login role
 * `app` (password `app`). When `KYSELY_REPLICATED_PG_URLS` is set, returns a handle on that existing
 * cluster instead (`external: true`). Throws with the availability message when neither binaries nor
 * URLs are there, and with the tail of a node's log when it fails to start.
 */
export async function startPostgresCluster(
  options: PostgresClusterOptions = {},
): Promise<PostgresCluster> {
  const log = options.log ?? defaultLog()
  const urls = process.env[URLS_VARIABLE]?.trim()
  if (urls) return connectExternal(urls, log)

  const availability = postgresAvailability()
  if (!availability.ok) throw new Error(availability.message)
  const binDir = findPostgresBinDir()!
  const osUser = serverUser()
  const replicaCount = options.replicas ?? 2
  const started = Date.now()
  const directory = await makeTempDir()
  trackTempDir(directory)
  let cluster: PostgresClusterImpl | undefined
  try {
    await chownTo(directory, osUser)
    const [template, ports] = await Promise.all([
      postgresTemplate(binDir, log),
      findFreePorts(replicaCount + 1),
    ])
    const states: NodeState[] = ports.map((port, index) => {
      const name = index === 0 ? 'primary' : `replica-${index}`
      return {
        node: { name, role: index === 0 ? 'primary' : 'replica', host: '127.0.0.1', port },
        dataDir: path.join(directory, name),
        paused: false,
        delay: 0,
      }
    })
    cluster = new PostgresClusterImpl({
      states,
      database: DATABASE,
      user: APP_USER,
      password: APP_PASSWORD,
      external: false,
      directory,
      binDir,
      ...(osUser ? { osUser } : {}),
      ...(log ? { log } : {}),
    })
    const impl = cluster
    const phases: string[] = []
    let phaseStart = started
    const phase = (name: string) => {
      const now = Date.now()
      phases.push(`${name} ${formatSeconds(now - phaseStart)}`)
      phaseStart = now
    }
    phase('template')
    const primary = states[0]!
    await copyTree(template, primary.dataDir!)
    phase('copy')
    await impl.startNode(primary, true)
    phase('primary')
    const replicas = states.slice(1)
    await Promise.all(replicas.map((state) => impl.baseBackup(state)))
    phase('basebackup')
    await Promise.all(replicas.map((state) => impl.startNode(state, true)))
    await Promise.all(replicas.map((state) => impl.waitForStreaming(state, 15_000)))
    phase('standbys')
    log?.(
      `postgres: primary on 127.0.0.1:${primary.node.port}, ${replicaCount} standby(s) on ` +
        `${replicas.map((state) => state.node.port).join(', ')}; ready in ${formatSeconds(Date.now() - started)} ` +
        `(${phases.join(', ')}) in ${directory}`,
    )
    return impl
  } catch (error) {
    if (cluster !== undefined) await cluster.stop().catch(() => {})
    else await removeTempDir(directory).catch(() => {})
    throw error
  }
}

async function connectExternal(
  urls: string,
  log?: (line: string) => void,
): Promise<PostgresCluster> {
  const protocols = ['postgres', 'postgresql']
  const parsed = parseDatabaseUrls(urls, URLS_VARIABLE, { port: 5432, protocols })
  const adminValue = process.env[ADMIN_URLS_VARIABLE]?.trim()
  const admins = adminValue
    ? parseDatabaseUrls(adminValue, ADMIN_URLS_VARIABLE, { port: 5432, protocols })
    : undefined
  if (admins !== undefined && admins.length !== parsed.length) {
    throw new Error(
      `${ADMIN_URLS_VARIABLE} lists ${admins.length} URL(s) but ${URLS_VARIABLE} lists ${parsed.length}`,
    )
  }
  const first = parsed[0]!
  const states: NodeState[] = parsed.map((url, index) => ({
    node: {
      name: index === 0 ? 'primary' : `replica-${index}`,
      role: index === 0 ? 'primary' : 'replica',
      host: url.host,
      port: url.port,
    },
    paused: false,
    delay: 0,
    ...(admins ? { adminUrl: admins[index]! } : {}),
  }))
  const cluster = new PostgresClusterImpl({
    states,
    database: first.database || DATABASE,
    user: first.user,
    password: first.password,
    external: true,
    ...(log ? { log } : {}),
  })
  await Promise.all(
    states.map(async (state) => {
      const [row] = await cluster.admin(state.node, 'SELECT pg_is_in_recovery() AS standby')
      const expected = state.node.role === 'replica'
      if (row?.standby !== expected) {
        throw new Error(
          `${URLS_VARIABLE}: ${state.node.name} (${state.node.host}:${state.node.port}) ` +
            `${expected ? 'is not a standby' : 'is a standby, but the first URL must be the primary'}`,
        )
      }
    }),
  )
  log?.(`postgres: using the existing cluster from ${URLS_VARIABLE} (${parsed.length} node(s))`)
  return cluster
}
