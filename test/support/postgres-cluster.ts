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
  envWithout,
  findExecutable,
  formatSeconds,
  isRoot,
  lookupUser,
  pollUntil,
  runCommand,
  spawnServer,
  type TrackedProcess,
} from './ports.js'

/** A PostgreSQL primary and streaming hot standbys made with `pg_basebackup -R -X stream`. */
export interface PostgresCluster extends ReplicatedTestCluster {
  readonly engine: 'postgres'
  /**
   * `ALTER SYSTEM SET recovery_min_apply_delay = 'ms'` + `pg_reload_conf()` on a standby (waits
   * until the new value is in effect); any whole number of milliseconds, sub-second ones included
   * (a standby applies a commit `ms` after the primary's commit timestamp); 0 removes the delay.
   */
  setReplicaDelay(replica: string, ms: number): Promise<void>
  /**
   * A planned switchover that loses nothing. Fences the old primary (`ALTER SYSTEM SET
   * default_transaction_read_only = on; SELECT pg_reload_conf()`, waited for: writes then fail with
   * 25006 and do not execute), stops it with a fast shutdown (SIGINT to the postmaster, as
   * `pg_ctl stop -m fast`), waits (5 s at most) until `newPrimary` (its delay or pause lifted) has
   * replayed the old primary's shutdown checkpoint, `SELECT pg_promote()` there, re-points the other
   * running standbys (`ALTER SYSTEM SET primary_conninfo = '…'` + `pg_reload_conf()`; they follow
   * the new timeline), and restarts the old primary as a standby of the new one (see `rejoin`).
   * Resolves once every re-pointed node streams from the new primary, except standbys paused or
   * delayed through the harness: a paused standby streams again after `startReplica()` (its
   * startup process, which restarts the WAL receiver, is paused too), a delayed one once it has
   * replayed what it received.
   *
   * @example
   * ```ts
   * await cluster.switchover('replica-1')
   * cluster.primaryName() // 'replica-1'; the node named 'primary' is now a hot standby
   * ```
   */
  switchover(newPrimary: string): Promise<RoleChange>
  /**
   * Freezes the primary's whole process tree, then SIGKILLs it (so that no backend confirms a
   * commit that no standby has). `delayMs` later, when another running standby has received more
   * WAL than `newPrimary`, `newPrimary` first streams the rest from that standby (cascading
   * replication, 5 s at most; `RoleChange.caughtUpFrom`); then `pg_promote()`, and the other
   * running standbys are re-pointed at it (paused or delayed ones stream later: see `switchover`).
   * WAL that only the old primary had is lost, as in a real failover.
   */
  failover(newPrimary: string, options?: FailoverOptions): Promise<RoleChange>
  /**
   * Starts a node that is not the primary as a standby of the current primary. A former primary
   * that was shut down cleanly (a switchover) and whose shutdown checkpoint precedes the point where
   * the current primary's timeline forked off restarts on its own data directory (`standby.signal`,
   * `primary_conninfo` and the fence removed from `postgresql.auto.conf`); anything else (a killed
   * primary, whose WAL may go past the fork; a standby that missed a role change) is made again with
   * `pg_basebackup` from the current primary. pg_rewind is not used (it needs `wal_log_hints` or
   * data checksums, and `full_page_writes`, which the harness turns off for speed).
   */
  rejoin(node: string): Promise<void>
}

/** Options of {@link startPostgresCluster}. */
export type PostgresClusterOptions = StartClusterOptions

const URLS_VARIABLE = 'KYSELY_REPLICATED_PG_URLS'
const ADMIN_URLS_VARIABLE = 'KYSELY_REPLICATED_PG_ADMIN_URLS'
const BINDIR_VARIABLE = 'KYSELY_REPLICATED_PG_BINDIR'
const SUPERUSER = 'postgres'
const REQUIRED = ['initdb', 'postgres', 'pg_basebackup', 'pg_controldata']

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
  `CREATE DATABASE ${APP_DATABASE} OWNER ${APP_USER}`,
  // read access to monitoring views and functions (pg_stat_replication, …); bypasses nothing
  `GRANT pg_monitor TO ${APP_USER}`,
]

/** pg_hba.conf; `deniedUser`'s TCP logins are rejected (`denyLogin`). */
function hbaConf(deniedUser?: string): string {
  const reject = deniedUser !== undefined ? `host all ${deniedUser} 127.0.0.1/32 reject\n` : ''
  return PG_HBA.replace('\n', `\n${reject}`)
}

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
  if (externalUrls(URLS_VARIABLE)) return { ok: true }
  if (findPostgresBinDir() === undefined) {
    return {
      ok: false,
      message:
        'PostgreSQL server binaries (initdb, postgres, pg_basebackup, pg_controldata) not found in ' +
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

async function chownTo(target: string, user: { uid: number; gid: number } | undefined) {
  if (user !== undefined) await fsp.chown(target, user.uid, user.gid)
}

/**
 * The primary's initial data directory, made once per process (by {@link createTemplate}). Each
 * cluster's primary starts from a copy.
 */
const postgresTemplate = templateOnce('kysely-replicated-postgres-template-')

/**
 * `initdb`, the harness's postgresql.conf settings and pg_hba.conf, and the application role and
 * database (made in single-user mode).
 */
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
  await fsp.writeFile(path.join(dataDir, 'pg_hba.conf'), hbaConf())
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

const TRAITS: EngineTraits = {
  displayName: 'PostgreSQL',
  urlsVariable: URLS_VARIABLE,
  // SIGINT: fast shutdown
  stopSignal: 'SIGINT',
  acceptIntervalMs: 10,
  delayUnit: 'ms',
  pauseSql: 'SELECT pg_wal_replay_pause()',
  resumeSql: 'SELECT pg_wal_replay_resume()',
  replication: 'WAL streaming',
  replicationNotYet: 'not streaming yet',
  portConflict: /could not bind|Address already in use|could not create any TCP\/IP sockets/i,
}

class PostgresClusterImpl extends ClusterBase implements PostgresCluster {
  readonly engine = 'postgres' as const
  private readonly binDir: string | undefined
  private readonly osUser: { uid: number; gid: number } | undefined

  constructor(init: ClusterInit & { binDir?: string; osUser?: { uid: number; gid: number } }) {
    super(TRAITS, init)
    this.binDir = init.binDir
    this.osUser = init.osUser
  }

  private adminOptions(state: NodeState, database?: string): pg.ClientConfig {
    if (this.external) {
      return { ...this.externalAdminOptions(state), ...(database ? { database } : {}) }
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

  protected async waitForReplicas(targets: NodeState[], timeoutMs: number): Promise<void> {
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

  protected async readReplicaState(replica: string): Promise<string> {
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
  }

  protected async applyReplicaDelay(state: NodeState, ms: number): Promise<void> {
    const replica = state.node.name
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
  }

  logFile(node: ClusterNode | string): string | undefined {
    const state = this.state(node)
    return this.directory !== undefined
      ? path.join(this.directory, `${state.node.name}.log`)
      : undefined
  }

  /** How the servers and pg_basebackup run: in the cluster directory, as `osUser`, no PG* variables. */
  private commandOptions() {
    return {
      env: envWithout(['PG'], { HOME: this.directory! }),
      cwd: this.directory!,
      ...(this.osUser ? { user: this.osUser } : {}),
    }
  }

  protected spawnNode(state: NodeState): TrackedProcess {
    return spawnServer(
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
        logFile: this.logFile(state.node)!,
        postgresDataDir: state.dataDir!,
        ...this.commandOptions(),
      },
    )
  }

  protected async probe(state: NodeState): Promise<void> {
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
      this.commandOptions(),
    )
  }

  /** Whether a standby's WAL receiver streams from the (current) primary. */
  protected async replicationRunning(state: NodeState) {
    const [row] = await this.admin(
      state.node,
      'SELECT status, sender_port FROM pg_stat_wal_receiver',
    )
    const fromPrimary = this.external || Number(row?.sender_port) === this.primary.port
    return row?.status === 'streaming' && fromPrimary ? true : undefined
  }

  protected async applyLoginAllowed(state: NodeState, allowed: boolean): Promise<void> {
    await this.writeHba(state, !allowed)
    await this.admin(state.node, 'SELECT pg_reload_conf()')
    // the postmaster re-reads pg_hba.conf asynchronously: wait until a login sees it
    await pollUntil(
      async () => {
        const client = new pg.Client({
          ...this.connectionOptions(state.node),
          connectionTimeoutMillis: 2000,
        })
        client.on('error', () => {})
        try {
          await client.connect()
          return allowed ? true : undefined
        } catch (error) {
          if ((error as { code?: string }).code === '28000' && !allowed) return true
          throw error
        } finally {
          await client.end().catch(() => {})
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

  private async writeHba(state: NodeState, denied: boolean): Promise<void> {
    await fsp.writeFile(
      path.join(state.dataDir!, 'pg_hba.conf'),
      hbaConf(denied ? this.user : undefined),
    )
  }

  /** `pg_controldata` of a stopped node, as a map of its labels to values. */
  private async controlData(state: NodeState): Promise<Map<string, string>> {
    const { output } = await runCommand(
      path.join(this.binDir!, 'pg_controldata'),
      ['-D', state.dataDir!],
      { ...this.commandOptions(), env: { ...this.commandOptions().env, LC_ALL: 'C' } },
    )
    const values = new Map<string, string>()
    for (const line of output.split('\n')) {
      const colon = line.indexOf(':')
      if (colon > 0) values.set(line.slice(0, colon).trim(), line.slice(colon + 1).trim())
    }
    return values
  }

  /** Whether `a < b` for two LSNs (`'0/3000028'`), compared by a running node. */
  private async lsnBefore(a: string, b: string, on: ClusterNode): Promise<boolean> {
    const [row] = await this.admin(on, 'SELECT $1::pg_lsn < $2::pg_lsn AS before', [a, b])
    return row?.before === true
  }

  /** A standby's furthest WAL position: received or replayed. */
  private async walPosition(node: ClusterNode): Promise<string> {
    const [row] = await this.admin(
      node,
      'SELECT GREATEST(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::text AS lsn',
    )
    return String(row?.lsn ?? '0/0')
  }

  /** Points a running standby at `source` (`primary_conninfo` + reload: PG 13+ needs no restart). */
  private async repoint(state: NodeState, source: ClusterNode): Promise<void> {
    await this.withAdmin(state.node, async (client) => {
      await client.query(`ALTER SYSTEM SET primary_conninfo = '${this.conninfo(source, state)}'`)
      await client.query('SELECT pg_reload_conf()')
    })
  }

  private conninfo(source: ClusterNode, state: NodeState): string {
    return `host=${source.host} port=${source.port} user=${SUPERUSER} application_name=${state.node.name}`
  }

  /** Lifts a standby's harness-set delay and replay pause, so that it replays what it has at once. */
  private async liftDelayAndPause(state: NodeState): Promise<void> {
    if (state.delay > 0) {
      await this.applyReplicaDelay(state, 0)
      state.delay = 0
    }
    if (state.paused) {
      await this.admin(state.node, 'SELECT pg_wal_replay_resume()')
      state.paused = false
    }
  }

  /** `pg_promote()` (waiting for its end), then drops the settings only a standby needs. */
  private async promote(state: NodeState): Promise<void> {
    await this.withAdmin(state.node, async (client) => {
      const result = await client.query('SELECT pg_promote(true, 10) AS promoted')
      if (result.rows[0]?.promoted !== true) {
        throw new Error(`${state.node.name}: pg_promote() did not complete within 10 s`)
      }
      await client.query('ALTER SYSTEM RESET primary_conninfo')
      await client.query('ALTER SYSTEM RESET recovery_min_apply_delay')
      await client.query('SELECT pg_reload_conf()')
    })
  }

  protected async performSwitchover({
    old,
    target,
    live,
    away,
  }: RoleChangeNodes): Promise<Partial<RoleChange>> {
    // 1. fence: new transactions are read-only (25006), then a fast shutdown
    await this.withAdmin(old.node, async (client) => {
      await client.query('ALTER SYSTEM SET default_transaction_read_only = on')
      await client.query('SELECT pg_reload_conf()')
    })
    await pollUntil(
      async () => {
        const [row] = await this.admin(old.node, 'SHOW default_transaction_read_only')
        return row?.default_transaction_read_only === 'on' ? true : undefined
      },
      {
        timeoutMs: 5000,
        intervalMs: 5,
        onTimeout: () => new Error('switchover: fence not in effect'),
      },
    )
    await this.liftDelayAndPause(target)
    // a fast shutdown waits until every walsender's standby confirmed the shutdown checkpoint: one
    // serving a frozen standby would wait for wal_sender_timeout (60 s). It rejoins when restarted.
    const frozen = away.filter((state) => state.process?.frozen).map((state) => state.node.name)
    if (frozen.length > 0) {
      await this.admin(
        old.node,
        'SELECT pg_terminate_backend(pid) FROM pg_stat_replication WHERE application_name = ANY($1)',
        [frozen],
      )
    }
    await old.process!.terminate(this.traits.stopSignal, 10_000)
    // 2. the new primary replays everything, the shutdown checkpoint included
    const checkpoint = (await this.controlData(old)).get('Latest checkpoint location')
    if (checkpoint === undefined) throw new Error(`switchover: no checkpoint in ${old.dataDir}`)
    try {
      await pollUntil(
        async () => {
          const [row] = await this.admin(
            target.node,
            'SELECT pg_last_wal_replay_lsn() > $1::pg_lsn AS replayed',
            [checkpoint],
          )
          return row?.replayed === true ? true : undefined
        },
        { timeoutMs: 5000, intervalMs: 2, onTimeout: (error) => new Error(String(error)) },
      )
    } catch {
      throw new Error(
        `switchover: ${target.node.name} did not replay the old primary's shutdown checkpoint ${checkpoint} within 5 s (the old primary stays stopped): ${await this.describeReplica(target.node.name)}`,
      )
    }
    // 3. promotion, then everybody else follows
    await this.promote(target)
    this.assignPrimary(old, target)
    await Promise.all(live.map((state) => this.repoint(state, target.node)))
    await this.performRejoin(old)
    await Promise.all(
      [old, ...streaming(live)].map((state) => this.waitForReplicationRunning(state, 10_000)),
    )
    return {}
  }

  protected async performFailover({
    old,
    target,
    live,
  }: RoleChangeNodes): Promise<Partial<RoleChange>> {
    await this.liftDelayAndPause(target)
    // 1. the target fetches the WAL it lacks from the standby that received the most
    const caughtUpFrom: string[] = []
    // one timeline: the standby that received the most has everything any other received
    let source = { state: target, lsn: await this.walPosition(target.node) }
    for (const state of live) {
      const lsn = await this.walPosition(state.node)
      if (await this.lsnBefore(source.lsn, lsn, target.node)) source = { state, lsn }
    }
    if (source.state !== target) {
      const { state: from, lsn } = source
      await this.repoint(target, from.node)
      await pollUntil(
        async () =>
          (await this.lsnBefore(await this.walPosition(target.node), lsn, target.node))
            ? undefined
            : true,
        {
          timeoutMs: 5000,
          intervalMs: 2,
          onTimeout: () =>
            new Error(
              `failover: ${target.node.name} did not receive ${lsn} from ${from.node.name} within 5 s`,
            ),
        },
      )
      caughtUpFrom.push(from.node.name)
    }
    // 2. promotion (it replays all it received first), then the others follow
    await this.promote(target)
    this.assignPrimary(old, target)
    await Promise.all(live.map((state) => this.repoint(state, target.node)))
    await Promise.all(streaming(live).map((state) => this.waitForReplicationRunning(state, 10_000)))
    return { caughtUpFrom }
  }

  protected async performRejoin(state: NodeState): Promise<void> {
    if (await this.canRestartAsStandby(state)) {
      const autoConf = path.join(state.dataDir!, 'postgresql.auto.conf')
      // the fence goes: as a primary again one day, the node must accept writes
      const kept = (await fsp.readFile(autoConf, 'utf8'))
        .split('\n')
        .filter((line) => line.trim() !== '')
        .filter((line) => !/^\s*(default_transaction_read_only|primary_conninfo)\s*=/.test(line))
      kept.push(`primary_conninfo = '${this.conninfo(this.primary, state)}'`)
      await fsp.writeFile(autoConf, `${kept.join('\n')}\n`)
      const signal = path.join(state.dataDir!, 'standby.signal')
      await fsp.writeFile(signal, '')
      await chownTo(signal, this.osUser)
      this.log?.(
        `${this.engine}: ${state.node.name} restarts as a standby on its own data directory`,
      )
    } else {
      await fsp.rm(state.dataDir!, { recursive: true, force: true })
      await this.baseBackup(state)
      await this.writeHba(state, state.loginDenied === true)
      this.log?.(`${this.engine}: ${state.node.name} made again with pg_basebackup`)
    }
    state.delay = 0
    await this.startNode(state, false)
  }

  /**
   * Whether a stopped node can restart as a standby of the current primary on its own data
   * directory: it was a primary shut down cleanly, and its shutdown checkpoint precedes the point
   * where the current primary's timeline history forked off its timeline.
   */
  private async canRestartAsStandby(state: NodeState): Promise<boolean> {
    const control = await this.controlData(state)
    if (control.get('Database cluster state') !== 'shut down') return false
    const checkpoint = control.get('Latest checkpoint location')
    const timeline = Number(control.get("Latest checkpoint's TimeLineID"))
    const [file] = await this.admin(
      this.primary,
      "SELECT name FROM pg_ls_waldir() WHERE name LIKE '%.history' ORDER BY name DESC LIMIT 1",
    )
    if (file === undefined || checkpoint === undefined) return false
    const [history] = await this.admin(this.primary, 'SELECT pg_read_file($1) AS text', [
      `pg_wal/${file.name}`,
    ])
    // lines: <parent timeline> <tab> <switch point> <tab> <reason>
    const fork = String(history?.text ?? '')
      .split('\n')
      .map((line) => line.trim().split(/\s+/))
      .find((fields) => Number(fields[0]) === timeline)?.[1]
    return fork !== undefined && (await this.lsnBefore(checkpoint, fork, this.primary))
  }
}

/**
 * The re-pointed standbys to wait for: a paused standby's startup process, which restarts the WAL
 * receiver, is paused too, so it streams from the new primary only after `startReplica()`; a
 * delayed one once it has replayed what it received.
 */
function streaming(states: NodeState[]): NodeState[] {
  return states.filter((state) => !state.paused && state.delay === 0)
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
  const log = options.log ?? defaultHarnessLog()
  const urls = externalUrls(URLS_VARIABLE)
  if (urls) return connectExternal(urls, log, options.proxies)

  const availability = postgresAvailability()
  if (!availability.ok) throw new Error(availability.message)
  const binDir = findPostgresBinDir()!
  const osUser = serverUser()
  return startLocalCluster({
    replicas: options.replicas ?? 2,
    log,
    proxies: options.proxies ?? false,
    serverIds: false,
    replicaNoun: 'standby(s)',
    prepareDirectory: (directory) => chownTo(directory, osUser),
    template: () => postgresTemplate((dir) => createTemplate(dir, binDir, log)),
    create: (init) => new PostgresClusterImpl({ ...init, binDir, ...(osUser ? { osUser } : {}) }),
    boot: async (cluster, states, template, phase) => {
      const primary = states[0]!
      await copyTree(template, primary.dataDir!)
      phase('copy')
      await cluster.startNode(primary, true)
      phase('primary')
      const replicas = states.slice(1)
      await Promise.all(replicas.map((state) => cluster.baseBackup(state)))
      phase('basebackup')
      await Promise.all(replicas.map((state) => cluster.startNode(state, true)))
      await Promise.all(replicas.map((state) => cluster.waitForReplicationRunning(state, 15_000)))
      phase('standbys')
    },
  })
}

function connectExternal(
  urls: string,
  log: ((line: string) => void) | undefined,
  proxies = false,
): Promise<PostgresCluster> {
  return connectExternalCluster(
    urls,
    {
      variable: URLS_VARIABLE,
      adminVariable: ADMIN_URLS_VARIABLE,
      port: 5432,
      protocols: ['postgres', 'postgresql'],
    },
    {
      log,
      proxies,
      create: (init) => new PostgresClusterImpl(init),
      checkNode: async (cluster, state) => {
        const [row] = await cluster.admin(state.node, 'SELECT pg_is_in_recovery() AS standby')
        const expected = state.node.role === 'replica'
        if (row?.standby !== expected) {
          throw new Error(
            `${URLS_VARIABLE}: ${state.node.name} (${state.node.host}:${state.node.port}) ` +
              `${expected ? 'is not a standby' : 'is a standby, but the first URL must be the primary'}`,
          )
        }
      },
    },
  )
}
