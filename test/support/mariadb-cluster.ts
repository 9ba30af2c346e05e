/**
 * A MariaDB primary with GTID replicas as local processes (or an existing cluster from
 * `KYSELY_REPLICATED_MYSQL_URLS`). See `cluster.ts`.
 */
import * as os from 'node:os'
import * as path from 'node:path'
import { type Connection, createConnection } from 'mysql2/promise'
import type {
  ClusterAvailability,
  ClusterNode,
  NodeConnectionOptions,
  ReplicatedTestCluster,
  StartClusterOptions,
} from './cluster.js'
import {
  copyTree,
  externalClusterError,
  findExecutable,
  findFreePort,
  findFreePorts,
  formatSeconds,
  isRoot,
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

/** A MariaDB primary and GTID replicas (`MASTER_USE_GTID=slave_pos`, replicas `read_only=ON`). */
export interface MariadbCluster extends ReplicatedTestCluster {
  readonly engine: 'mariadb'
  /**
   * `STOP SLAVE; CHANGE MASTER TO MASTER_DELAY=seconds; START SLAVE` on a replica. MariaDB compares
   * whole-second event timestamps, so the effective delay is between `seconds - 1` and `seconds`:
   * use at least 2 to be sure the replica is stale for a while; 0 removes the delay.
   */
  setReplicaDelay(replica: string, seconds: number): Promise<void>
}

/** Options of {@link startMariadbCluster}. */
export type MariadbClusterOptions = StartClusterOptions

const URLS_VARIABLE = 'KYSELY_REPLICATED_MYSQL_URLS'
const ADMIN_URLS_VARIABLE = 'KYSELY_REPLICATED_MYSQL_ADMIN_URLS'
const DATABASE = 'app'
const APP_USER = 'app'
const APP_PASSWORD = 'app'
const REPL_USER = 'repl'
/** Per process: the template data directory (with these passwords) lives as long as the process. */
const ROOT_PASSWORD = `root-${Math.random().toString(36).slice(2, 12)}`
const REPL_PASSWORD = `repl-${Math.random().toString(36).slice(2, 12)}`
const LOG_FILE_SIZE = '16M'
const START_TIMEOUT_MS = 30_000
const STOP_TIMEOUT_MS = 3_000

const SERVER_DIRS = ['/usr/sbin', '/usr/local/sbin', '/usr/libexec', '/usr/local/bin', '/usr/bin']
const INSTALL_DIRS = ['/usr/bin', '/usr/local/bin', '/usr/sbin', '/usr/local/sbin']

interface MariadbBinaries {
  server: string
  installDb: string
}

function findMariadbBinaries(): MariadbBinaries | undefined {
  const server = findExecutable('mariadbd', SERVER_DIRS)
  const installDb =
    findExecutable('mariadb-install-db', INSTALL_DIRS) ??
    findExecutable('mysql_install_db', INSTALL_DIRS)
  return server !== undefined && installDb !== undefined ? { server, installDb } : undefined
}

/**
 * Whether a MariaDB cluster can be used here: `KYSELY_REPLICATED_MYSQL_URLS` is set, or the MariaDB
 * server binaries (`mariadbd`, `mariadb-install-db`) are installed. Otherwise says what to install.
 */
export function mariadbAvailability(): ClusterAvailability {
  if (process.env[URLS_VARIABLE]?.trim()) return { ok: true }
  if (findMariadbBinaries() !== undefined) return { ok: true }
  return {
    ok: false,
    message:
      'MariaDB server binaries (mariadbd, mariadb-install-db) not found: install them with ' +
      `\`apt-get install mariadb-server\`, or set ${URLS_VARIABLE}="mysql://user:pass@host:port/db,…" ` +
      '(primary first, then the replicas)',
  }
}

function defaultLog(): ((line: string) => void) | undefined {
  return process.env.KYSELY_REPLICATED_HARNESS_LOG
    ? (line) => process.stderr.write(`[cluster] ${line}\n`)
    : undefined
}

/** Options common to the data directory template and every server. */
function commonServerArgs(): string[] {
  return [
    ...(isRoot() ? ['--user=root'] : []),
    `--innodb-log-file-size=${LOG_FILE_SIZE}`,
    '--innodb-buffer-pool-size=32M',
    '--character-set-server=utf8mb4',
    '--collation-server=utf8mb4_general_ci',
  ]
}

/** Options of the one-off template builds: nothing needs to be durable there. */
function templateArgs(): string[] {
  return [...commonServerArgs(), '--innodb-flush-log-at-trx-commit=0', '--innodb-doublewrite=0']
}

function bootstrapSql(): string {
  const quote = (value: string) => `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`
  const appPrivileges =
    'SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, INDEX, CREATE TEMPORARY TABLES, LOCK TABLES'
  const statements = [
    'USE mysql',
    `CREATE DATABASE \`${DATABASE}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci`,
    // install-db created password-less roots; give them a password and drop the one by host name
    ...['localhost', '127.0.0.1', '::1'].map(
      (host) => `ALTER USER IF EXISTS 'root'@'${host}' IDENTIFIED BY ${quote(ROOT_PASSWORD)}`,
    ),
    `DROP USER IF EXISTS 'root'@${quote(os.hostname())}`,
    // the sys schema is about half of the files every node copies, and nothing here uses it
    'DROP DATABASE IF EXISTS sys',
    // The application user: least privilege on app.* (never ALL: on 10.11 it includes READ ONLY
    // ADMIN, which writes through read_only=ON). SLAVE MONITOR lets it run SHOW SLAVE STATUS (on
    // 10.11 REPLICATION CLIENT is only an alias of BINLOG MONITOR, which does not); BINLOG MONITOR
    // lets it run SHOW MASTER STATUS / SHOW BINLOG STATUS. Neither bypasses read_only.
    ...['127.0.0.1', 'localhost'].flatMap((host) => [
      `CREATE USER '${APP_USER}'@'${host}' IDENTIFIED BY ${quote(APP_PASSWORD)}`,
      `GRANT ${appPrivileges} ON \`${DATABASE}\`.* TO '${APP_USER}'@'${host}'`,
      `GRANT SLAVE MONITOR, BINLOG MONITOR ON *.* TO '${APP_USER}'@'${host}'`,
    ]),
    `CREATE USER '${REPL_USER}'@'127.0.0.1' IDENTIFIED BY ${quote(REPL_PASSWORD)}`,
    `GRANT REPLICATION SLAVE ON *.* TO '${REPL_USER}'@'127.0.0.1'`,
  ]
  return statements.map((statement) => `${statement};\n`).join('')
}

let templatePromise: Promise<string> | undefined

/**
 * The data directory every node starts from, made once per process: `mariadb-install-db`, then the
 * database and users created in `--bootstrap` mode (not binlogged). Each node gets a copy, so all
 * nodes start identical with an empty binlog and an empty GTID state, and replicas can replicate
 * from an empty `gtid_slave_pos`.
 */
function mariadbTemplate(binaries: MariadbBinaries, log?: (line: string) => void): Promise<string> {
  templatePromise ??= (async () => {
    const dir = await makeTempDir('kysely-replicated-mariadb-template-')
    trackTempDir(dir)
    try {
      return await createTemplate(dir, binaries, log)
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
  binaries: MariadbBinaries,
  log?: (line: string) => void,
): Promise<string> {
  const started = Date.now()
  const dataDir = path.join(dir, 'data')
  await runCommand(binaries.installDb, [
    '--no-defaults',
    `--datadir=${dataDir}`,
    '--auth-root-authentication-method=normal',
    '--skip-test-db',
    ...templateArgs(),
  ])
  const bootstrapLog = path.join(dir, 'bootstrap.log')
  const result = await runCommand(
    binaries.server,
    [
      '--no-defaults',
      '--bootstrap',
      // bootstrap mode skips the grant tables by default, which refuses CREATE USER / GRANT
      '--skip-grant-tables=0',
      `--datadir=${dataDir}`,
      `--log-error=${bootstrapLog}`,
      ...templateArgs(),
    ],
    { input: bootstrapSql(), allowFailure: true },
  )
  if (result.code !== 0) {
    throw new Error(
      `mariadbd --bootstrap failed with exit code ${result.code}:\n${result.output}\n${tailFile(bootstrapLog)}`,
    )
  }
  log?.(`mariadb: data directory template ready (${formatSeconds(Date.now() - started)})`)
  return dataDir
}

interface NodeState {
  node: ClusterNode
  /** Absent for an external cluster. */
  dataDir?: string
  process?: TrackedProcess
  /** SQL thread stopped through the harness. */
  paused: boolean
  /** MASTER_DELAY set through the harness. */
  delay: number
  /** External cluster: the admin URL of this node. */
  adminUrl?: ParsedDatabaseUrl
}

function isPortConflict(logTail: string): boolean {
  return /Address already in use|Bind on TCP\/IP port|Do you already have another .*server running/i.test(
    logTail,
  )
}

class MariadbClusterImpl implements MariadbCluster {
  readonly engine = 'mariadb' as const
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
  private readonly binaries: MariadbBinaries | undefined
  private readonly log: ((line: string) => void) | undefined

  constructor(init: {
    states: NodeState[]
    database: string
    user: string
    password: string
    external: boolean
    directory?: string
    binaries?: MariadbBinaries
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
    this.binaries = init.binaries
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

  private adminOptions(state: NodeState) {
    if (this.external) {
      const admin = state.adminUrl
      return admin !== undefined
        ? { ...admin, database: admin.database || this.database }
        : this.connectionOptions(state.node)
    }
    return {
      host: state.node.host,
      port: state.node.port,
      user: 'root',
      password: ROOT_PASSWORD,
      database: this.database,
    }
  }

  /** Runs `fn` with a short-lived admin connection to a node. */
  async withAdmin<T>(node: ClusterNode | string, fn: (connection: Connection) => Promise<T>) {
    const state = this.state(node)
    const connection = await createConnection({ ...this.adminOptions(state), connectTimeout: 5000 })
    try {
      return await fn(connection)
    } finally {
      connection.destroy()
    }
  }

  admin(node: ClusterNode | string, sql: string, params?: unknown[]): Promise<any[]> {
    return this.withAdmin(node, async (connection) => {
      const [rows] = await connection.query(sql, params)
      return Array.isArray(rows) ? (rows as any[]) : []
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
    const [row] = await this.admin(this.primary, 'SELECT @@GLOBAL.gtid_binlog_pos AS pos')
    const position = String(row?.pos ?? '')
    if (position === '') return
    await Promise.all(
      targets.map(async (state) => {
        const [result] = await this.admin(state.node, 'SELECT MASTER_GTID_WAIT(?, ?) AS reached', [
          position,
          timeoutMs / 1000,
        ])
        if (Number(result?.reached) !== 0) {
          throw new Error(
            `${state.node.name} did not apply the primary's gtid_binlog_pos ${position} within ${timeoutMs} ms: ${await this.describeReplica(state.node.name)}`,
          )
        }
      }),
    )
  }

  /** A one-line summary of a replica's replication state, for error messages. */
  async describeReplica(replica: string): Promise<string> {
    try {
      const [status] = await this.admin(replica, 'SHOW SLAVE STATUS')
      const [position] = await this.admin(replica, 'SELECT @@GLOBAL.gtid_slave_pos AS pos')
      if (status === undefined) return `not a replica (gtid_slave_pos ${position?.pos})`
      return (
        `gtid_slave_pos=${position?.pos} Slave_IO_Running=${status.Slave_IO_Running} ` +
        `Slave_SQL_Running=${status.Slave_SQL_Running} SQL_Delay=${status.SQL_Delay} ` +
        `Seconds_Behind_Master=${status.Seconds_Behind_Master} ` +
        `Last_IO_Error=${JSON.stringify(status.Last_IO_Error)} Last_SQL_Error=${JSON.stringify(status.Last_SQL_Error)}`
      )
    } catch (error) {
      return `(cannot read its state: ${(error as Error).message})`
    }
  }

  async setReplicaDelay(replica: string, seconds: number): Promise<void> {
    if (this.external) throw externalClusterError('setReplicaDelay', URLS_VARIABLE)
    if (!Number.isInteger(seconds) || seconds < 0) {
      throw new Error(`setReplicaDelay: seconds must be a non-negative integer, got ${seconds}`)
    }
    const state = this.replicaState(replica)
    await this.withAdmin(replica, async (connection) => {
      await connection.query('STOP SLAVE')
      await connection.query(`CHANGE MASTER TO MASTER_DELAY=${seconds}`)
      await connection.query('START SLAVE')
    })
    state.delay = seconds
    state.paused = false
  }

  async stopReplicaSqlThread(replica: string): Promise<void> {
    const state = this.replicaState(replica)
    await this.admin(replica, 'STOP SLAVE SQL_THREAD')
    state.paused = true
  }

  async startReplica(replica: string): Promise<void> {
    const state = this.replicaState(replica)
    await this.admin(replica, 'START SLAVE')
    state.paused = false
  }

  async kill(node: string): Promise<void> {
    if (this.external) throw externalClusterError('kill', URLS_VARIABLE)
    const state = this.state(node)
    await state.process?.killHard()
    this.log?.(`mariadb: killed ${node}`)
  }

  async restart(node: string): Promise<void> {
    if (this.external) throw externalClusterError('restart', URLS_VARIABLE)
    if (this.stopping !== undefined) throw new Error('restart: the cluster was stopped')
    const state = this.state(node)
    const started = Date.now()
    if (state.process?.running) await state.process.terminate('SIGTERM', 10_000)
    await this.startNode(state, false)
    if (state.node.role === 'replica') {
      // master.info survives, so the slave threads start by themselves (no --skip-slave-start);
      // START SLAVE again in case they were stopped before the restart (a no-op otherwise).
      await this.admin(state.node, 'START SLAVE')
      state.paused = false
      if (this.isRunning(this.primary)) await this.waitForSlaveRunning(state, 5_000, false)
    }
    this.log?.(`mariadb: restarted ${node} (${formatSeconds(Date.now() - started)})`)
  }

  stop(): Promise<void> {
    this.stopping ??= this.stopNow()
    return this.stopping
  }

  private async stopNow(): Promise<void> {
    if (this.external) return
    const started = Date.now()
    await Promise.all(
      [...this.states.values()].map((state) =>
        state.process?.terminate('SIGTERM', STOP_TIMEOUT_MS),
      ),
    )
    if (this.directory !== undefined) await removeTempDir(this.directory)
    this.log?.(`mariadb: cluster stopped (${formatSeconds(Date.now() - started)})`)
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
    return state.dataDir !== undefined ? path.join(state.dataDir, 'error.log') : undefined
  }

  private serverArgs(state: NodeState): string[] {
    const dataDir = state.dataDir!
    const node = state.node
    return [
      '--no-defaults',
      ...commonServerArgs(),
      `--datadir=${dataDir}`,
      `--port=${node.port}`,
      '--bind-address=127.0.0.1',
      `--socket=${path.join(dataDir, 'mariadb.sock')}`,
      `--pid-file=${path.join(dataDir, 'mariadb.pid')}`,
      `--log-error=${path.join(dataDir, 'error.log')}`,
      `--tmpdir=${dataDir}`,
      `--server-id=${node.serverId}`,
      `--log-bin=${path.join(dataDir, 'binlog')}`,
      `--relay-log=${path.join(dataDir, 'relay')}`,
      '--log-slave-updates=ON',
      '--binlog-format=ROW',
      '--gtid-strict-mode=ON',
      '--skip-name-resolve',
      '--skip-performance-schema',
      // fast and light; a process crash (SIGKILL) still loses nothing, only an OS crash would
      '--innodb-flush-log-at-trx-commit=2',
      '--sync-binlog=0',
      '--innodb-doublewrite=0',
      '--innodb-buffer-pool-load-at-startup=OFF',
      '--innodb-buffer-pool-dump-at-shutdown=OFF',
      '--slave-net-timeout=10',
      ...(node.role === 'replica' ? ['--read-only=ON'] : []),
    ]
  }

  /** Starts a node's server and waits until it accepts connections. */
  async startNode(state: NodeState, retryOnPortConflict: boolean): Promise<void> {
    const binaries = this.binaries!
    for (let attempt = 1; ; attempt++) {
      const errorLog = path.join(state.dataDir!, 'error.log')
      const logLines = tailFile(errorLog, 100000).split('\n').length
      state.process = spawnServer(binaries.server, this.serverArgs(state), {
        logFile: path.join(state.dataDir!, 'stdout.log'),
      })
      try {
        await this.waitUntilAccepting(state, START_TIMEOUT_MS)
        return
      } catch (error) {
        await state.process.killHard()
        const newLines = tailFile(errorLog, 100000).split('\n').slice(logLines).join('\n')
        if (retryOnPortConflict && attempt < 4 && isPortConflict(newLines)) {
          state.node.port = await findFreePort()
          this.log?.(`mariadb: ${state.node.name}: port taken, retrying on ${state.node.port}`)
          continue
        }
        throw error
      }
    }
  }

  private async waitUntilAccepting(state: NodeState, timeoutMs: number): Promise<void> {
    const errorLog = path.join(state.dataDir!, 'error.log')
    const failure = (reason: string) =>
      new Error(
        `MariaDB ${state.node.name} (port ${state.node.port}) ${reason}; last lines of ${errorLog}:\n${tailFile(errorLog)}`,
      )
    await pollUntil(
      async () => {
        const server = state.process!
        if (!server.running) {
          throw new StopPolling(failure(`exited during start-up (${server.exitStatus})`))
        }
        const connection = await createConnection({
          ...this.adminOptions(state),
          database: undefined,
          connectTimeout: 1000,
        })
        connection.destroy()
        return true
      },
      {
        timeoutMs,
        intervalMs: 15,
        onTimeout: (lastError) =>
          failure(
            `did not accept connections within ${timeoutMs} ms (last error: ${(lastError as Error)?.message})`,
          ),
      },
    )
  }

  /** Configures and starts replication on a fresh replica. */
  async setUpReplica(state: NodeState): Promise<void> {
    await this.withAdmin(state.node, async (connection) => {
      await connection.query("SET GLOBAL gtid_slave_pos=''")
      await connection.query(
        'CHANGE MASTER TO MASTER_HOST=?, MASTER_PORT=?, MASTER_USER=?, MASTER_PASSWORD=?, ' +
          'MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1',
        [this.primary.host, this.primary.port, REPL_USER, REPL_PASSWORD],
      )
      await connection.query('START SLAVE')
    })
  }

  /** Waits until the replica's IO and SQL threads run (the IO thread connected to the primary). */
  async waitForSlaveRunning(state: NodeState, timeoutMs: number, strict = true): Promise<void> {
    try {
      await pollUntil(
        async () => {
          const [status] = await this.admin(state.node, 'SHOW SLAVE STATUS')
          if (status?.Last_IO_Errno && Number(status.Last_IO_Errno) !== 0 && strict) {
            // 2003 (cannot connect) is retried by the IO thread; anything else is fatal
            if (Number(status.Last_IO_Errno) !== 2003) {
              throw new StopPolling(
                new Error(`${state.node.name}: replication IO error: ${status.Last_IO_Error}`),
              )
            }
          }
          return status?.Slave_IO_Running === 'Yes' && status?.Slave_SQL_Running === 'Yes'
            ? true
            : undefined
        },
        {
          timeoutMs,
          intervalMs: 10,
          onTimeout: () => new Error(`${state.node.name}: replication did not start`),
        },
      )
    } catch (error) {
      if (strict) {
        throw new Error(
          `${(error as Error).message} within ${timeoutMs} ms: ${await this.describeReplica(state.node.name)}; ` +
            `last lines of ${this.logFile(state.node)}:\n${tailFile(this.logFile(state.node)!)}`,
        )
      }
      this.log?.(`mariadb: ${state.node.name}: replication not running yet`)
    }
  }
}

/**
 * Starts a MariaDB cluster: a primary (server_id 1) and `replicas` (default 2) read-only GTID
 * replicas (server_id 2, 3, …) on free ports in a fresh temp directory, with the database `app`, the
 * least-privilege user `app`/`app` and replication running. When `KYSELY_REPLICATED_MYSQL_URLS` is
 * set, returns a handle on that existing cluster instead (`external: true`). Throws with the
 * availability message when neither binaries nor URLs are there, and with the tail of a node's error
 * log when it fails to start.
 */
export async function startMariadbCluster(
  options: MariadbClusterOptions = {},
): Promise<MariadbCluster> {
  const log = options.log ?? defaultLog()
  const urls = process.env[URLS_VARIABLE]?.trim()
  if (urls) return connectExternal(urls, log)

  const binaries = findMariadbBinaries()
  if (binaries === undefined) {
    throw new Error((mariadbAvailability() as { message: string }).message)
  }
  const replicaCount = options.replicas ?? 2
  const started = Date.now()
  const directory = await makeTempDir()
  trackTempDir(directory)
  let cluster: MariadbClusterImpl | undefined
  try {
    const [template, ports] = await Promise.all([
      mariadbTemplate(binaries, log),
      findFreePorts(replicaCount + 1),
    ])
    const states: NodeState[] = ports.map((port, index) => {
      const name = index === 0 ? 'primary' : `replica-${index}`
      return {
        node: {
          name,
          role: index === 0 ? 'primary' : 'replica',
          host: '127.0.0.1',
          port,
          serverId: index + 1,
        },
        dataDir: path.join(directory, name),
        paused: false,
        delay: 0,
      }
    })
    cluster = new MariadbClusterImpl({
      states,
      database: DATABASE,
      user: APP_USER,
      password: APP_PASSWORD,
      external: false,
      directory,
      binaries,
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
    await Promise.all(states.map((state) => copyTree(template, state.dataDir!)))
    phase('copy')
    await Promise.all(states.map((state) => impl.startNode(state, true)))
    phase('start')
    const replicas = states.slice(1)
    await Promise.all(replicas.map((state) => impl.setUpReplica(state)))
    await Promise.all(replicas.map((state) => impl.waitForSlaveRunning(state, 15_000)))
    phase('replication')
    log?.(
      `mariadb: primary on 127.0.0.1:${states[0]!.node.port}, ${replicaCount} replica(s) on ` +
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
): Promise<MariadbCluster> {
  const protocols = ['mysql', 'mariadb']
  const parsed = parseDatabaseUrls(urls, URLS_VARIABLE, { port: 3306, protocols })
  const adminValue = process.env[ADMIN_URLS_VARIABLE]?.trim()
  const admins = adminValue
    ? parseDatabaseUrls(adminValue, ADMIN_URLS_VARIABLE, { port: 3306, protocols })
    : undefined
  if (admins !== undefined && admins.length !== parsed.length) {
    throw new Error(
      `${ADMIN_URLS_VARIABLE} lists ${admins.length} URL(s) but ${URLS_VARIABLE} lists ${parsed.length}`,
    )
  }
  if (parsed.length < 2) {
    log?.(`mariadb: ${URLS_VARIABLE} lists no replica`)
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
  const cluster = new MariadbClusterImpl({
    states,
    database: first.database || DATABASE,
    user: first.user,
    password: first.password,
    external: true,
    ...(log ? { log } : {}),
  })
  await Promise.all(
    states.map(async (state) => {
      const [row] = await cluster.admin(state.node, 'SELECT @@server_id AS id, @@read_only AS ro')
      state.node.serverId = Number(row?.id)
      if (state.node.role === 'replica' && Number(row?.ro) !== 1) {
        log?.(
          `mariadb: warning: ${state.node.name} (${state.node.host}:${state.node.port}) has read_only=OFF`,
        )
      }
    }),
  )
  log?.(`mariadb: using the existing cluster from ${URLS_VARIABLE} (${parsed.length} node(s))`)
  return cluster
}
