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
  FailoverOptions,
  ReplicatedTestCluster,
  RoleChange,
  StartClusterOptions,
} from './cluster.js'
import {
  APP_DATABASE,
  APP_PASSWORD,
  APP_USER,
  ClusterBase,
  type ClusterInit,
  connectExternalCluster,
  defaultHarnessLog,
  type EngineTraits,
  externalUrls,
  type NodeState,
  type RoleChangeNodes,
  startLocalCluster,
  templateOnce,
} from './cluster-base.js'
import {
  copyTree,
  findExecutable,
  formatSeconds,
  isRoot,
  pollUntil,
  runCommand,
  StopPolling,
  spawnServer,
  type TrackedProcess,
  tailFile,
} from './ports.js'

/**
 * A MariaDB primary and GTID replicas (`MASTER_USE_GTID=slave_pos`, replicas `read_only=ON`, every
 * node `log_slave_updates=ON` and `gtid_strict_mode=ON`, so any node can become the primary).
 */
export interface MariadbCluster extends ReplicatedTestCluster {
  readonly engine: 'mariadb'
  /**
   * `STOP SLAVE; CHANGE MASTER TO MASTER_DELAY=seconds; START SLAVE` on a replica. `MASTER_DELAY` is
   * whole seconds (no sub-second delay: pause the SQL thread with `stopReplicaSqlThread` for that),
   * and MariaDB compares whole-second event timestamps, so the effective delay is between
   * `seconds - 1` and `seconds`: use at least 2 to be sure the replica is stale for a while; 0
   * removes the delay.
   */
  setReplicaDelay(replica: string, seconds: number): Promise<void>
  /**
   * A planned switchover that loses nothing. On the old primary `SET GLOBAL read_only=1` (from now
   * on the application user's writes fail with errno 1290 and do not execute); on `newPrimary`
   * (its delay or pause lifted first) `MASTER_GTID_WAIT(<old @@gtid_binlog_pos>, 5)`, then
   * `STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only=0`; the other running replicas
   * `CHANGE MASTER TO` the new primary with `MASTER_USE_GTID=slave_pos` (keeping their delay or
   * pause); the old primary, still `read_only`, `SET GLOBAL gtid_slave_pos = @@gtid_binlog_pos`
   * (else it would replay its own binlog), `CHANGE MASTER TO` the new primary and `START SLAVE`.
   * Resolves once every re-pointed node's replication runs.
   *
   * @example
   * ```ts
   * await cluster.switchover('replica-1')
   * cluster.primaryName() // 'replica-1'; the node named 'primary' is now a read-only replica
   * ```
   */
  switchover(newPrimary: string): Promise<RoleChange>
  /**
   * SIGKILLs the primary; `delayMs` later, every running replica applies what it already received
   * (up to 5 s, plus its delay), and when another running replica has applied more than
   * `newPrimary`, `newPrimary` first replicates the rest from it (`MASTER_GTID_WAIT`, 5 s): it is
   * promoted only once it has everything any running replica has (`RoleChange.caughtUpFrom` names
   * the sources). A paused replica counts with what it applied. Then `STOP SLAVE; RESET SLAVE ALL;
   * SET GLOBAL read_only=0` on it and the others are re-pointed. Transactions that only the old
   * primary had are lost, as in a real failover; `rejoin()` of the old primary then fails with
   * replication error 1236 (it has GTIDs the new primary lacks).
   */
  failover(newPrimary: string, options?: FailoverOptions): Promise<RoleChange>
  /**
   * Starts the node (`--read-only=ON`) if it is down, then `STOP SLAVE; SET GLOBAL gtid_slave_pos =
   * @@gtid_binlog_pos; CHANGE MASTER TO <current primary> ... MASTER_USE_GTID=slave_pos; START
   * SLAVE`.
   */
  rejoin(node: string): Promise<void>
}

/** Options of {@link startMariadbCluster}. */
export type MariadbClusterOptions = StartClusterOptions

const URLS_VARIABLE = 'KYSELY_REPLICATED_MYSQL_URLS'
const ADMIN_URLS_VARIABLE = 'KYSELY_REPLICATED_MYSQL_ADMIN_URLS'
const REPL_USER = 'repl'
/** Per process: the template data directory (with these passwords) lives as long as the process. */
const ROOT_PASSWORD = `root-${Math.random().toString(36).slice(2, 12)}`
const REPL_PASSWORD = `repl-${Math.random().toString(36).slice(2, 12)}`
const LOG_FILE_SIZE = '16M'

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
  if (externalUrls(URLS_VARIABLE)) return { ok: true }
  if (findMariadbBinaries() !== undefined) return { ok: true }
  return {
    ok: false,
    message:
      'MariaDB server binaries (mariadbd, mariadb-install-db) not found: install them with ' +
      `\`apt-get install mariadb-server\`, or set ${URLS_VARIABLE}="mysql://user:pass@host:port/db,…" ` +
      '(primary first, then the replicas)',
  }
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
    `CREATE DATABASE \`${APP_DATABASE}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci`,
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
      `GRANT ${appPrivileges} ON \`${APP_DATABASE}\`.* TO '${APP_USER}'@'${host}'`,
      `GRANT SLAVE MONITOR, BINLOG MONITOR ON *.* TO '${APP_USER}'@'${host}'`,
    ]),
    `CREATE USER '${REPL_USER}'@'127.0.0.1' IDENTIFIED BY ${quote(REPL_PASSWORD)}`,
    `GRANT REPLICATION SLAVE ON *.* TO '${REPL_USER}'@'127.0.0.1'`,
  ]
  return statements.map((statement) => `${statement};\n`).join('')
}

/**
 * The data directory every node starts from, made once per process (by {@link createTemplate}).
 * Each node gets a copy, so all nodes start identical with an empty binlog and an empty GTID state,
 * and replicas can replicate from an empty `gtid_slave_pos`.
 */
const mariadbTemplate = templateOnce('kysely-replicated-mariadb-template-')

/**
 * `mariadb-install-db`, then the database and users created in `--bootstrap` mode (not binlogged).
 */
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

const TRAITS: EngineTraits = {
  displayName: 'MariaDB',
  urlsVariable: URLS_VARIABLE,
  stopSignal: 'SIGTERM',
  acceptIntervalMs: 15,
  delayUnit: 'seconds',
  pauseSql: 'STOP SLAVE SQL_THREAD',
  resumeSql: 'START SLAVE',
  replication: 'replication',
  replicationNotYet: 'replication not running yet',
  portConflict:
    /Address already in use|Bind on TCP\/IP port|Do you already have another .*server running/i,
}

class MariadbClusterImpl extends ClusterBase implements MariadbCluster {
  readonly engine = 'mariadb' as const
  private readonly binaries: MariadbBinaries | undefined

  constructor(init: ClusterInit & { binaries?: MariadbBinaries }) {
    super(TRAITS, init)
    this.binaries = init.binaries
  }

  private adminOptions(state: NodeState) {
    if (this.external) return this.externalAdminOptions(state)
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
      await closeGracefully(connection)
    }
  }

  admin(node: ClusterNode | string, sql: string, params?: unknown[]): Promise<any[]> {
    return this.withAdmin(node, async (connection) => {
      const [rows] = await connection.query(sql, params)
      return Array.isArray(rows) ? (rows as any[]) : []
    })
  }

  protected async waitForReplicas(targets: NodeState[], timeoutMs: number): Promise<void> {
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

  protected async readReplicaState(replica: string): Promise<string> {
    const [status] = await this.admin(replica, 'SHOW SLAVE STATUS')
    const [position] = await this.admin(replica, 'SELECT @@GLOBAL.gtid_slave_pos AS pos')
    if (status === undefined) return `not a replica (gtid_slave_pos ${position?.pos})`
    return (
      `gtid_slave_pos=${position?.pos} Slave_IO_Running=${status.Slave_IO_Running} ` +
      `Slave_SQL_Running=${status.Slave_SQL_Running} SQL_Delay=${status.SQL_Delay} ` +
      `Seconds_Behind_Master=${status.Seconds_Behind_Master} ` +
      `Last_IO_Error=${JSON.stringify(status.Last_IO_Error)} Last_SQL_Error=${JSON.stringify(status.Last_SQL_Error)}`
    )
  }

  protected async applyReplicaDelay(state: NodeState, seconds: number): Promise<void> {
    await this.withAdmin(state.node, async (connection) => {
      await connection.query('STOP SLAVE')
      await connection.query(`CHANGE MASTER TO MASTER_DELAY=${seconds}`)
      await connection.query('START SLAVE')
    })
    state.paused = false
  }

  /**
   * master.info survives, so the slave threads start by themselves (no --skip-slave-start); START
   * SLAVE again in case they were stopped before the restart (a no-op otherwise).
   */
  protected override async afterReplicaRestart(state: NodeState): Promise<void> {
    await this.admin(state.node, 'START SLAVE')
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

  protected spawnNode(state: NodeState): TrackedProcess {
    return spawnServer(this.binaries!.server, this.serverArgs(state), {
      logFile: path.join(state.dataDir!, 'stdout.log'),
    })
  }

  protected async probe(state: NodeState): Promise<void> {
    const connection = await createConnection({
      ...this.adminOptions(state),
      database: undefined,
      connectTimeout: 1000,
    })
    await closeGracefully(connection)
  }

  /** Configures and starts replication on a fresh replica. */
  async setUpReplica(state: NodeState): Promise<void> {
    await this.withAdmin(state.node, async (connection) => {
      await connection.query("SET GLOBAL gtid_slave_pos=''")
      await changeMasterTo(connection, this.primary)
      await connection.query('START SLAVE')
    })
  }

  protected async applyLoginAllowed(state: NodeState, allowed: boolean): Promise<void> {
    const password = allowed ? this.password : `denied-${Math.random().toString(36).slice(2)}`
    await this.withAdmin(state.node, async (connection) => {
      // node-local: not binlogged, so it neither replicates nor makes a replica-local GTID
      await connection.query('SET SESSION sql_log_bin=0')
      for (const host of ['127.0.0.1', 'localhost']) {
        await connection.query('ALTER USER ?@? IDENTIFIED BY ?', [this.user, host, password])
      }
    })
    await pollUntil(
      async () => {
        try {
          const connection = await createConnection({
            ...this.connectionOptions(state.node),
            connectTimeout: 2000,
          })
          await closeGracefully(connection)
          return allowed ? true : undefined
        } catch (error) {
          if ((error as { errno?: number }).errno === 1045 && !allowed) return true
          throw error
        }
      },
      {
        timeoutMs: 5000,
        intervalMs: 10,
        onTimeout: (error) =>
          new Error(
            `${state.node.name}: the application user's login is still ${allowed ? 'refused' : 'accepted'} (${(error as Error)?.message})`,
          ),
      },
    )
  }

  /** Reads `SHOW SLAVE STATUS` (undefined on a node that is no replica). */
  private async slaveStatus(connection: Connection): Promise<Record<string, any> | undefined> {
    const [rows] = await connection.query('SHOW SLAVE STATUS')
    return (rows as Record<string, any>[])[0]
  }

  /** `MASTER_GTID_WAIT(position, seconds)` on a connection: whether it was reached. */
  private async gtidReached(connection: Connection, position: string, seconds: number) {
    if (position === '') return true
    const [rows] = await connection.query('SELECT MASTER_GTID_WAIT(?, ?) AS reached', [
      position,
      seconds,
    ])
    return Number((rows as any[])[0]?.reached) === 0
  }

  /** `STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only=0`: a replica becomes a primary. */
  private async promote(connection: Connection): Promise<void> {
    await connection.query('STOP SLAVE')
    await connection.query('RESET SLAVE ALL')
    await connection.query('SET GLOBAL read_only=0')
  }

  /**
   * Re-points a running replica at `source` by GTID; keeps its `MASTER_DELAY`, and a paused replica
   * only gets its IO thread started.
   */
  private async repoint(state: NodeState, source: ClusterNode): Promise<void> {
    await this.withAdmin(state.node, async (connection) => {
      await connection.query('STOP SLAVE')
      await changeMasterTo(connection, source)
      await connection.query(state.paused ? 'START SLAVE IO_THREAD' : 'START SLAVE')
    })
  }

  /**
   * Makes a replica apply every event it received while its source is dead: a harness pause is
   * lifted (SQL thread only), a delay waited out (5 s plus the delay at most).
   */
  private async drain(state: NodeState, connection: Connection): Promise<void> {
    if (state.paused) {
      await connection.query('START SLAVE SQL_THREAD')
      state.paused = false
    }
    const received = String((await this.slaveStatus(connection))?.Gtid_IO_Pos ?? '')
    if (!(await this.gtidReached(connection, received, 5 + state.delay))) {
      throw new Error(
        `failover: ${state.node.name} did not apply what it received (${received}) within ${5 + state.delay} s: ${await this.describeReplica(state.node.name)}`,
      )
    }
  }

  /**
   * Switchover (the source is alive): lifts a replica's harness-set delay or pause, so that it
   * applies at once. CHANGE MASTER discards the relay log; the live source sends it again.
   */
  private async liftDelayAndPause(state: NodeState, connection: Connection): Promise<void> {
    if (state.delay > 0) {
      await connection.query('STOP SLAVE')
      await connection.query('CHANGE MASTER TO MASTER_DELAY=0')
      state.delay = 0
    }
    await connection.query('START SLAVE')
    state.paused = false
  }

  protected async performSwitchover({
    old,
    target,
    live,
  }: RoleChangeNodes): Promise<Partial<RoleChange>> {
    // 1. fence: the application user's writes now fail (1290) without executing
    await this.admin(old.node, 'SET GLOBAL read_only=1')
    try {
      const [row] = await this.admin(old.node, 'SELECT @@GLOBAL.gtid_binlog_pos AS pos')
      const position = String(row?.pos ?? '')
      // 2. the new primary applies everything the old one wrote, then stops replicating
      await this.withAdmin(target.node, async (connection) => {
        await this.liftDelayAndPause(target, connection)
        if (!(await this.gtidReached(connection, position, 5))) {
          throw new Error(
            `switchover: ${target.node.name} did not reach the old primary's gtid_binlog_pos ${position} within 5 s: ${await this.describeReplica(target.node.name)}`,
          )
        }
        await this.promote(connection)
      })
    } catch (error) {
      await this.admin(old.node, 'SET GLOBAL read_only=0').catch(() => {})
      throw error
    }
    this.assignPrimary(old, target)
    // 3. the other replicas, then the old primary, replicate from the new primary
    await Promise.all(live.map((state) => this.repoint(state, target.node)))
    await this.withAdmin(old.node, async (connection) => {
      // without this the old primary would ask for its own binlog again
      await connection.query('SET GLOBAL gtid_slave_pos = @@GLOBAL.gtid_binlog_pos')
      await changeMasterTo(connection, target.node)
      await connection.query('START SLAVE')
    })
    await Promise.all([old, ...live].map((state) => this.waitForReplicationRunning(state, 5000)))
    return {}
  }

  protected async performFailover({
    old,
    target,
    live,
  }: RoleChangeNodes): Promise<Partial<RoleChange>> {
    // 1. the target applies all it received. Never STOP SLAVE (both threads) or CHANGE MASTER on a
    // replica whose received events are still needed: with GTIDs that discards its relay log, and
    // the primary that could send them again is dead.
    await this.withAdmin(target.node, (connection) => this.drain(target, connection))
    // 2. another replica that received more applies it too, and the target replicates the
    // difference from its binlog (log_slave_updates)
    const caughtUpFrom: string[] = []
    await this.withAdmin(target.node, async (connection) => {
      for (const other of live) {
        const has = await this.withAdmin(other.node, async (o) => [
          String((await this.slaveStatus(o))?.Gtid_IO_Pos ?? ''),
          await binlogPosition(o),
        ])
        let behind = false
        for (const position of has) behind ||= !(await this.gtidReached(connection, position, 0.01))
        if (!behind) continue
        const position = await this.withAdmin(other.node, async (o) => {
          await this.drain(other, o)
          return binlogPosition(o)
        })
        await connection.query('STOP SLAVE')
        await changeMasterTo(connection, other.node)
        await connection.query('START SLAVE')
        if (!(await this.gtidReached(connection, position, 5))) {
          throw new Error(
            `failover: ${target.node.name} did not catch up with ${other.node.name} (${position}) within 5 s: ${await this.describeReplica(target.node.name)}`,
          )
        }
        caughtUpFrom.push(other.node.name)
      }
      // 3. promotion
      await this.promote(connection)
    })
    this.assignPrimary(old, target)
    await Promise.all(live.map((state) => this.repoint(state, target.node)))
    await Promise.all(live.map((state) => this.waitForReplicationRunning(state, 5000)))
    return { caughtUpFrom }
  }

  protected async performRejoin(state: NodeState): Promise<void> {
    // role 'replica': the server starts with --read-only=ON
    await this.startNode(state, false)
    await this.withAdmin(state.node, async (connection) => {
      // a replica that missed a role change started its slave threads toward its old source
      await connection.query('STOP SLAVE')
      // log_slave_updates: its binlog holds everything it applied or wrote
      await connection.query('SET GLOBAL gtid_slave_pos = @@GLOBAL.gtid_binlog_pos')
      await changeMasterTo(connection, this.primary)
      await connection.query('START SLAVE')
    })
  }

  /**
   * Whether the replica's IO and SQL threads run (the IO thread connected to the primary); only the
   * IO thread for a replica paused through the harness.
   */
  protected async replicationRunning(state: NodeState, strict: boolean) {
    const [status] = await this.admin(state.node, 'SHOW SLAVE STATUS')
    if (status?.Last_IO_Errno && Number(status.Last_IO_Errno) !== 0 && strict) {
      // 2003 (cannot connect) is retried by the IO thread; anything else is fatal
      if (Number(status.Last_IO_Errno) !== 2003) {
        throw new StopPolling(
          new Error(`${state.node.name}: replication IO error: ${status.Last_IO_Error}`),
        )
      }
    }
    return status?.Slave_IO_Running === 'Yes' &&
      (state.paused || status?.Slave_SQL_Running === 'Yes')
      ? true
      : undefined
  }
}

/**
 * Ends a connection with COM_QUIT (a destroyed one is logged by the server as an aborted
 * connection, which floods the error log tails that harness errors quote); destroys it when that
 * fails or takes more than 200 ms (a frozen server).
 */
async function closeGracefully(connection: Connection): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  await Promise.race([
    connection.end().catch(() => {}),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, 200)
    }),
  ])
  clearTimeout(timer)
  connection.destroy()
}

/** A node's `@@gtid_binlog_pos`: everything it wrote or applied (log_slave_updates). */
async function binlogPosition(connection: Connection): Promise<string> {
  const [rows] = await connection.query('SELECT @@GLOBAL.gtid_binlog_pos AS pos')
  return String((rows as any[])[0]?.pos ?? '')
}

/** `CHANGE MASTER TO` a source node, by GTID from `gtid_slave_pos`, retrying every second. */
async function changeMasterTo(connection: Connection, source: ClusterNode): Promise<void> {
  await connection.query(
    'CHANGE MASTER TO MASTER_HOST=?, MASTER_PORT=?, MASTER_USER=?, MASTER_PASSWORD=?, ' +
      'MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1',
    [source.host, source.port, REPL_USER, REPL_PASSWORD],
  )
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
  const log = options.log ?? defaultHarnessLog()
  const urls = externalUrls(URLS_VARIABLE)
  if (urls) return connectExternal(urls, log, options.proxies)

  const binaries = findMariadbBinaries()
  if (binaries === undefined) {
    throw new Error((mariadbAvailability() as { message: string }).message)
  }
  return startLocalCluster({
    replicas: options.replicas ?? 2,
    log,
    proxies: options.proxies ?? false,
    serverIds: true,
    replicaNoun: 'replica(s)',
    template: () => mariadbTemplate((dir) => createTemplate(dir, binaries, log)),
    create: (init) => new MariadbClusterImpl({ ...init, binaries }),
    boot: async (cluster, states, template, phase) => {
      await Promise.all(states.map((state) => copyTree(template, state.dataDir!)))
      phase('copy')
      await Promise.all(states.map((state) => cluster.startNode(state, true)))
      phase('start')
      const replicas = states.slice(1)
      await Promise.all(replicas.map((state) => cluster.setUpReplica(state)))
      await Promise.all(replicas.map((state) => cluster.waitForReplicationRunning(state, 15_000)))
      phase('replication')
    },
  })
}

function connectExternal(
  urls: string,
  log: ((line: string) => void) | undefined,
  proxies = false,
): Promise<MariadbCluster> {
  return connectExternalCluster(
    urls,
    {
      variable: URLS_VARIABLE,
      adminVariable: ADMIN_URLS_VARIABLE,
      port: 3306,
      protocols: ['mysql', 'mariadb'],
    },
    {
      log,
      proxies,
      create: (init) => {
        if (init.states.length < 2) log?.(`mariadb: ${URLS_VARIABLE} lists no replica`)
        return new MariadbClusterImpl(init)
      },
      checkNode: async (cluster, state) => {
        const [row] = await cluster.admin(state.node, 'SELECT @@server_id AS id, @@read_only AS ro')
        state.node.serverId = Number(row?.id)
        if (state.node.role === 'replica' && Number(row?.ro) !== 1) {
          log?.(
            `mariadb: warning: ${state.node.name} (${state.node.host}:${state.node.port}) has read_only=OFF`,
          )
        }
      },
    },
  )
}
