/**
 * What the MariaDB and PostgreSQL test clusters share: node bookkeeping (kill, restart, stop, pids,
 * pause and delay flags), the start-up and replication waiting loops, a local cluster's start in a
 * fresh temp directory, and the handle on an existing cluster from environment variables. The engine
 * files (`mariadb-cluster.ts`, `postgres-cluster.ts`) keep only what differs: binaries, commands,
 * SQL and flags. See `cluster.ts`.
 */
import * as path from 'node:path'
import type {
  ClusterNode,
  ConnectionOverrides,
  FailoverOptions,
  NodeConnectionOptions,
  ReplicatedTestCluster,
  RoleChange,
} from './cluster.js'
import {
  externalClusterError,
  findFreePort,
  findFreePorts,
  formatSeconds,
  makeTempDir,
  type ParsedDatabaseUrl,
  parseDatabaseUrls,
  pollUntil,
  removeTempDir,
  StopPolling,
  sleep,
  type TrackedProcess,
  tailFile,
  trackTempDir,
} from './ports.js'
import { FaultProxy } from './tcp-proxy.js'

/** The application database of a harness-started cluster. */
export const APP_DATABASE = 'app'
/** The least-privilege application user of a harness-started cluster, and its password. */
export const APP_USER = 'app'
export const APP_PASSWORD = 'app'
/** How long a node may take to accept connections after its server process started. */
const START_TIMEOUT_MS = 30_000
/** How long `stop()` waits for a server to exit gracefully before killing it. */
const STOP_TIMEOUT_MS = 3_000
/** How long `restart()` waits for a running server to exit gracefully before killing it. */
const RESTART_STOP_TIMEOUT_MS = 10_000

/** A node and what the harness knows and did to it. */
export interface NodeState {
  node: ClusterNode
  /** Absent for an external cluster. */
  dataDir?: string
  process?: TrackedProcess
  /** Applying changes stopped through the harness (MariaDB SQL thread, PostgreSQL WAL replay). */
  paused: boolean
  /** Apply delay set through the harness (MariaDB MASTER_DELAY in s, PostgreSQL recovery_min_apply_delay in ms). */
  delay: number
  /**
   * A role change happened while this node was down (a failover's old primary, or a replica that
   * did not run): it must be configured to replicate from the current primary when it starts again.
   */
  needsRejoin?: boolean
  /** `denyLogin()` made the application user's logins fail on this node. */
  loginDenied?: boolean
  /** External cluster: the admin URL of this node. */
  adminUrl?: ParsedDatabaseUrl
}

/** What an engine's cluster is made of (the engine's own extras are added by its constructor). */
export interface ClusterInit {
  /** The primary first, then the replicas. */
  states: NodeState[]
  database: string
  user: string
  password: string
  external: boolean
  directory?: string
  log?: (line: string) => void
}

/** The words and settings by which the engines' shared bookkeeping differs. */
export interface EngineTraits {
  /** The server's name in error messages: `'MariaDB'`, `'PostgreSQL'`. */
  displayName: string
  /** The environment variable that points the harness at an existing cluster. */
  urlsVariable: string
  /** The signal that shuts a server down gracefully (`stop()`, `restart()`, switchovers). */
  stopSignal: NodeJS.Signals
  /** How often to try to connect while a server starts. */
  acceptIntervalMs: number
  /** The unit of `setReplicaDelay`, as its argument is named: `'seconds'`, `'ms'`. */
  delayUnit: string
  /** Stops applying changes on a replica (`stopReplicaSqlThread`). */
  pauseSql: string
  /** Resumes applying changes on a replica (`startReplica`). */
  resumeSql: string
  /** What runs on a replica that replicates: errors say it `did not start`. */
  replication: string
  /** Logged when a restarted replica's replication does not run yet. */
  replicationNotYet: string
  /** Whether new lines of a server's log say that its port was taken. */
  portConflict: RegExp
}

/** The nodes of a switchover or failover. */
export interface RoleChangeNodes {
  /** The primary until now. */
  old: NodeState
  /** The replica that becomes the primary. */
  target: NodeState
  /** The other replicas that run and are not frozen: re-pointed at the new primary. */
  live: NodeState[]
  /** The other replicas, down or frozen: marked to rejoin when they (re)start, once it is done. */
  away: NodeState[]
}

/** The engine-independent part of a test cluster; an engine supplies its driver, commands and SQL. */
export abstract class ClusterBase implements ReplicatedTestCluster {
  abstract readonly engine: 'mariadb' | 'postgres'
  readonly nodes: ClusterNode[]
  readonly database: string
  readonly user: string
  readonly password: string
  readonly external: boolean
  readonly directory: string | undefined
  protected readonly states: Map<string, NodeState>
  protected readonly log: ((line: string) => void) | undefined
  private stopping: Promise<void> | undefined
  private readonly proxies = new Map<string, Promise<FaultProxy>>()
  /** The proxies whose port is known, for the synchronous `connectionOptions`. */
  private readonly startedProxies = new Map<string, FaultProxy>()

  constructor(
    protected readonly traits: EngineTraits,
    init: ClusterInit,
  ) {
    this.states = new Map(init.states.map((state) => [state.node.name, state]))
    this.nodes = init.states.map((state) => state.node)
    this.database = init.database
    this.user = init.user
    this.password = init.password
    this.external = init.external
    this.directory = init.directory
    this.log = init.log
  }

  abstract admin(node: ClusterNode | string, sql: string, params?: unknown[]): Promise<any[]>
  abstract logFile(node: ClusterNode | string): string | undefined
  /** Waits until every one of `targets` has applied what the primary has committed so far. */
  protected abstract waitForReplicas(targets: NodeState[], timeoutMs: number): Promise<void>
  /** A one-line summary of a replica's replication state; may throw. */
  protected abstract readReplicaState(replica: string): Promise<string>
  /** Makes a (validated, internal-cluster) replica apply changes `amount` late. */
  protected abstract applyReplicaDelay(state: NodeState, amount: number): Promise<void>
  /** Starts a node's server process (it is then waited for by `startNode`). */
  protected abstract spawnNode(state: NodeState): TrackedProcess
  /** Connects once to a starting node as the superuser; throws while it does not accept connections. */
  protected abstract probe(state: NodeState): Promise<void>
  /** `true` once a replica's replication runs; may throw `StopPolling` on a fatal error when `strict`. */
  protected abstract replicationRunning(
    state: NodeState,
    strict: boolean,
  ): Promise<true | undefined>
  /** Called on a replica restarted by `restart()`, before its replication is waited for. */
  protected async afterReplicaRestart(_state: NodeState): Promise<void> {}
  /** Makes the application user's logins to one node fail (`allowed` false) or work again. */
  protected abstract applyLoginAllowed(state: NodeState, allowed: boolean): Promise<void>
  /**
   * A planned switchover from the running primary `old` to the running replica `target`; calls
   * {@link assignPrimary} once `target` is the primary.
   */
  protected abstract performSwitchover(nodes: RoleChangeNodes): Promise<Partial<RoleChange>>
  /**
   * The rest of a failover once the old primary is dead and `delayMs` passed: brings `target` up
   * to date, promotes it (calling {@link assignPrimary}) and re-points the `live` replicas.
   */
  protected abstract performFailover(nodes: RoleChangeNodes): Promise<Partial<RoleChange>>
  /** Starts a stopped node as a replica of the current primary (`rejoin()`). */
  protected abstract performRejoin(state: NodeState): Promise<void>

  /** The current primary (after a switchover or failover, not necessarily the node named so). */
  get primary(): ClusterNode {
    const primary = this.nodes.find((node) => node.role === 'primary')
    if (primary === undefined) throw new Error('the cluster has no primary')
    return primary
  }

  /** The nodes whose role is `replica`, in start order (whether they run or not). */
  get replicas(): ClusterNode[] {
    return this.nodes.filter((node) => node.role === 'replica')
  }

  primaryName(): string {
    return this.primary.name
  }

  protected state(node: ClusterNode | string): NodeState {
    const name = typeof node === 'string' ? node : node.name
    const state = this.states.get(name)
    if (state === undefined) {
      throw new Error(
        `unknown cluster node ${JSON.stringify(name)} (nodes: ${[...this.states.keys()].join(', ')})`,
      )
    }
    return state
  }

  protected replicaState(replica: string): NodeState {
    const state = this.state(replica)
    if (state.node.role !== 'replica') throw new Error(`${replica} is not a replica`)
    return state
  }

  connectionOptions(
    node: ClusterNode | string,
    overrides: ConnectionOverrides = {},
  ): NodeConnectionOptions {
    const { node: target } = this.state(node)
    let port = target.port
    if (overrides.viaProxy) {
      const started = this.startedProxies.get(target.name)
      if (started === undefined) {
        throw new Error(
          `connectionOptions(${JSON.stringify(target.name)}, { viaProxy: true }): no proxy started ` +
            'for this node: start the cluster with { proxies: true } or await cluster.proxyFor(node) first',
        )
      }
      port = started.port
    }
    return {
      host: target.host,
      port,
      user: overrides.user ?? this.user,
      password: overrides.password ?? this.password,
      database: overrides.database ?? this.database,
    }
  }

  proxyFor(node: ClusterNode | string): Promise<FaultProxy> {
    if (this.stopping !== undefined)
      return Promise.reject(new Error('proxyFor: the cluster was stopped'))
    const { node: target } = this.state(node)
    let pending = this.proxies.get(target.name)
    if (pending === undefined) {
      const proxy = new FaultProxy({ target: () => ({ host: target.host, port: target.port }) })
      pending = proxy.start().then(() => {
        this.startedProxies.set(target.name, proxy)
        return proxy
      })
      pending.catch(() => this.proxies.delete(target.name))
      this.proxies.set(target.name, pending)
    }
    return pending
  }

  /** Starts a proxy for every node (`proxies: true`). */
  async startProxies(): Promise<void> {
    await Promise.all(this.nodes.map((node) => this.proxyFor(node)))
  }

  /** External cluster: a node's admin URL, or the application user's options without one. */
  protected externalAdminOptions(state: NodeState): NodeConnectionOptions {
    const admin = state.adminUrl
    return admin !== undefined
      ? { ...admin, database: admin.database || this.database }
      : this.connectionOptions(state.node)
  }

  async waitForReplication(timeoutMs = 10_000, replicas?: string[]): Promise<void> {
    const targets =
      replicas !== undefined
        ? replicas.map((name) => this.replicaState(name))
        : [...this.states.values()].filter(
            (state) =>
              state.node.role === 'replica' &&
              this.isRunning(state.node) &&
              !state.process?.frozen &&
              !state.paused &&
              state.delay === 0,
          )
    if (targets.length === 0) return
    await this.waitForReplicas(targets, timeoutMs)
  }

  /** A one-line summary of a replica's replication state, for error messages. */
  async describeReplica(replica: string): Promise<string> {
    try {
      return await this.readReplicaState(replica)
    } catch (error) {
      return `(cannot read its state: ${(error as Error).message})`
    }
  }

  async setReplicaDelay(replica: string, amount: number): Promise<void> {
    if (this.external) throw externalClusterError('setReplicaDelay', this.traits.urlsVariable)
    if (!Number.isInteger(amount) || amount < 0) {
      const unit = this.traits.delayUnit
      throw new Error(`setReplicaDelay: ${unit} must be a non-negative integer, got ${amount}`)
    }
    const state = this.replicaState(replica)
    await this.applyReplicaDelay(state, amount)
    state.delay = amount
  }

  async stopReplicaSqlThread(replica: string): Promise<void> {
    const state = this.replicaState(replica)
    await this.admin(replica, this.traits.pauseSql)
    state.paused = true
  }

  async startReplica(replica: string): Promise<void> {
    const state = this.replicaState(replica)
    await this.admin(replica, this.traits.resumeSql)
    state.paused = false
  }

  async freeze(node: string): Promise<void> {
    if (this.external) throw externalClusterError('freeze', this.traits.urlsVariable)
    const state = this.state(node)
    if (state.process === undefined || !state.process.running) {
      throw new Error(`freeze: ${node} does not run`)
    }
    state.process.freeze()
    this.log?.(`${this.engine}: froze ${node}`)
  }

  async thaw(node: string): Promise<void> {
    if (this.external) throw externalClusterError('thaw', this.traits.urlsVariable)
    const state = this.state(node)
    if (state.process?.frozen) this.log?.(`${this.engine}: thawed ${node}`)
    state.process?.thaw()
  }

  isFrozen(node: ClusterNode | string): boolean {
    return this.state(node).process?.frozen === true
  }

  async denyLogin(node: string): Promise<void> {
    if (this.external) throw externalClusterError('denyLogin', this.traits.urlsVariable)
    const state = this.state(node)
    await this.applyLoginAllowed(state, false)
    state.loginDenied = true
  }

  async allowLogin(node: string): Promise<void> {
    if (this.external) throw externalClusterError('allowLogin', this.traits.urlsVariable)
    const state = this.state(node)
    await this.applyLoginAllowed(state, true)
    state.loginDenied = false
  }

  async switchover(newPrimary: string): Promise<RoleChange> {
    if (this.external) throw externalClusterError('switchover', this.traits.urlsVariable)
    const nodes = this.roleChangeNodes('switchover', newPrimary)
    const { old } = nodes
    if (!this.isRunning(old.node) || old.process?.frozen) {
      throw new Error(
        `switchover: the primary ${old.node.name} must run and not be frozen (use failover())`,
      )
    }
    return this.timedRoleChange('switchover', nodes, () => this.performSwitchover(nodes))
  }

  async failover(newPrimary: string, options: FailoverOptions = {}): Promise<RoleChange> {
    if (this.external) throw externalClusterError('failover', this.traits.urlsVariable)
    const delayMs = options.delayMs ?? 0
    if (!Number.isFinite(delayMs) || delayMs < 0) {
      throw new Error(`failover: delayMs must be a non-negative number, got ${delayMs}`)
    }
    const nodes = this.roleChangeNodes('failover', newPrimary)
    const { old } = nodes
    return this.timedRoleChange('failover', nodes, async () => {
      if (old.process?.running) {
        // A frozen process tree dies without running another instruction: no PostgreSQL backend
        // confirms a commit that no standby has (MariaDB is one process: the same as a SIGKILL).
        old.process.freeze()
        await old.process.killHard()
        this.log?.(`${this.engine}: failover: froze and killed ${old.node.name}`)
      }
      old.needsRejoin = true
      await sleep(delayMs)
      return this.performFailover(nodes)
    })
  }

  async rejoin(node: string): Promise<void> {
    if (this.external) throw externalClusterError('rejoin', this.traits.urlsVariable)
    if (this.stopping !== undefined) throw new Error('rejoin: the cluster was stopped')
    const state = this.state(node)
    if (state.node.role === 'primary') throw new Error(`rejoin: ${node} is the primary`)
    if (!this.isRunning(this.primary)) {
      throw new Error(`rejoin: the primary ${this.primary.name} does not run`)
    }
    const started = Date.now()
    if (state.process?.running) {
      await state.process.terminate(this.traits.stopSignal, RESTART_STOP_TIMEOUT_MS)
    }
    await this.performRejoin(state)
    state.needsRejoin = false
    state.paused = false
    await this.waitForReplicationRunning(state, 10_000)
    this.log?.(
      `${this.engine}: ${node} rejoined as a replica of ${this.primary.name} (${formatSeconds(Date.now() - started)})`,
    )
  }

  /** Validates a role change to `newPrimary` and names the nodes. */
  private roleChangeNodes(operation: string, newPrimary: string): RoleChangeNodes {
    if (this.stopping !== undefined) throw new Error(`${operation}: the cluster was stopped`)
    const target = this.state(newPrimary)
    if (target.node.role !== 'replica')
      throw new Error(`${operation}: ${newPrimary} is not a replica`)
    if (!this.isRunning(target.node) || target.process?.frozen || target.needsRejoin) {
      throw new Error(
        `${operation}: ${newPrimary} must run, not be frozen and replicate from the current primary`,
      )
    }
    const old = this.state(this.primary)
    const live: NodeState[] = []
    const away: NodeState[] = []
    for (const state of this.states.values()) {
      if (state === target || state === old || state.node.role !== 'replica') continue
      if (state.process?.running && !state.process.frozen) live.push(state)
      else away.push(state)
    }
    return { old, target, live, away }
  }

  private async timedRoleChange(
    operation: 'switchover' | 'failover',
    { old, target, away }: RoleChangeNodes,
    perform: () => Promise<Partial<RoleChange>>,
  ): Promise<RoleChange> {
    const started = performance.now()
    const details = await perform()
    if (target.node.role !== 'primary') throw new Error(`${operation}: the roles were not changed`)
    // they still replicate from the old primary: re-pointed when they start again
    for (const state of away) state.needsRejoin = true
    const change: RoleChange = {
      oldPrimary: old.node.name,
      newPrimary: target.node.name,
      durationMs: Math.round((performance.now() - started) * 10) / 10,
      caughtUpFrom: [],
      ...details,
    }
    this.log?.(
      `${this.engine}: ${operation} ${change.oldPrimary} -> ${change.newPrimary} in ${change.durationMs} ms` +
        (change.caughtUpFrom.length > 0
          ? ` (caught up from ${change.caughtUpFrom.join(', ')})`
          : ''),
    )
    return change
  }

  /**
   * Makes `target` the primary and `old` a replica in the harness's bookkeeping; `target` keeps no
   * delay or pause (promotion lifted them).
   */
  protected assignPrimary(old: NodeState, target: NodeState): void {
    old.node.role = 'replica'
    target.node.role = 'primary'
    target.delay = 0
    target.paused = false
    target.needsRejoin = false
  }

  async kill(node: string): Promise<void> {
    if (this.external) throw externalClusterError('kill', this.traits.urlsVariable)
    const state = this.state(node)
    await state.process?.killHard()
    this.log?.(`${this.engine}: killed ${node}`)
  }

  async restart(node: string): Promise<void> {
    if (this.external) throw externalClusterError('restart', this.traits.urlsVariable)
    if (this.stopping !== undefined) throw new Error('restart: the cluster was stopped')
    const state = this.state(node)
    if (state.needsRejoin) return this.rejoin(node)
    const started = Date.now()
    if (state.process?.running) {
      await state.process.terminate(this.traits.stopSignal, RESTART_STOP_TIMEOUT_MS)
    }
    await this.startNode(state, false)
    if (state.node.role === 'replica') {
      await this.afterReplicaRestart(state)
      // a PostgreSQL replay pause does not survive a restart; MariaDB ran START SLAVE again
      state.paused = false
      if (this.isRunning(this.primary)) await this.waitForReplicationRunning(state, 5_000, false)
    }
    this.log?.(`${this.engine}: restarted ${node} (${formatSeconds(Date.now() - started)})`)
  }

  stop(): Promise<void> {
    this.stopping ??= this.stopNow()
    return this.stopping
  }

  private async stopNow(): Promise<void> {
    const proxies = [...this.proxies.values()]
    this.proxies.clear()
    this.startedProxies.clear()
    await Promise.all(
      proxies.map((pending) =>
        pending.then(
          (proxy) => proxy.close(),
          () => {},
        ),
      ),
    )
    if (this.external) return
    const started = Date.now()
    await Promise.all(
      // terminate() thaws a frozen process before signalling it
      [...this.states.values()].map((state) =>
        state.process?.terminate(this.traits.stopSignal, STOP_TIMEOUT_MS),
      ),
    )
    if (this.directory !== undefined) await removeTempDir(this.directory)
    this.log?.(`${this.engine}: cluster stopped (${formatSeconds(Date.now() - started)})`)
  }

  pid(node: ClusterNode | string): number | undefined {
    const state = this.state(node)
    return state.process?.running ? state.process.pid : undefined
  }

  isRunning(node: ClusterNode | string): boolean {
    const state = this.state(node)
    return this.external || state.process?.running === true
  }

  /**
   * Starts a node's server and waits until it accepts connections. With `retryOnPortConflict`, a
   * server that fails because its port was taken meanwhile is started again on another free port
   * (up to 4 attempts).
   */
  async startNode(state: NodeState, retryOnPortConflict: boolean): Promise<void> {
    const logFile = this.logFile(state.node)!
    for (let attempt = 1; ; attempt++) {
      const logLines = tailFile(logFile, 100000).split('\n').length
      state.process = this.spawnNode(state)
      try {
        await this.waitUntilAccepting(state, START_TIMEOUT_MS)
        return
      } catch (error) {
        await state.process.killHard()
        const newLines = tailFile(logFile, 100000).split('\n').slice(logLines).join('\n')
        if (retryOnPortConflict && attempt < 4 && this.traits.portConflict.test(newLines)) {
          state.node.port = await findFreePort()
          this.log?.(
            `${this.engine}: ${state.node.name}: port taken, retrying on ${state.node.port}`,
          )
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
        `${this.traits.displayName} ${state.node.name} (port ${state.node.port}) ${reason}; last lines of ${logFile}:\n${tailFile(logFile)}`,
      )
    await pollUntil(
      async () => {
        const server = state.process!
        if (!server.running) {
          throw new StopPolling(failure(`exited during start-up (${server.exitStatus})`))
        }
        await this.probe(state)
        return true
      },
      {
        timeoutMs,
        intervalMs: this.traits.acceptIntervalMs,
        onTimeout: (lastError) =>
          failure(
            `did not accept connections within ${timeoutMs} ms (last error: ${(lastError as Error)?.message})`,
          ),
      },
    )
  }

  /**
   * Waits until a replica's replication runs. When `strict`, throws after `timeoutMs` with its
   * replication state and log tail; otherwise only logs that it does not run yet.
   */
  async waitForReplicationRunning(state: NodeState, timeoutMs: number, strict = true) {
    try {
      await pollUntil(() => this.replicationRunning(state, strict), {
        timeoutMs,
        intervalMs: 10,
        onTimeout: () => new Error(`${state.node.name}: ${this.traits.replication} did not start`),
      })
    } catch (error) {
      if (strict) {
        throw new Error(
          `${(error as Error).message} within ${timeoutMs} ms: ${await this.describeReplica(state.node.name)}; ` +
            `last lines of ${this.logFile(state.node)}:\n${tailFile(this.logFile(state.node)!)}`,
        )
      }
      this.log?.(`${this.engine}: ${state.node.name}: ${this.traits.replicationNotYet}`)
    }
  }
}

/** The progress log of `KYSELY_REPLICATED_HARNESS_LOG` (stderr), unless the caller gave one. */
export function defaultHarnessLog(): ((line: string) => void) | undefined {
  return process.env.KYSELY_REPLICATED_HARNESS_LOG
    ? (line) => process.stderr.write(`[cluster] ${line}\n`)
    : undefined
}

/** The URL list of an existing cluster from an environment variable, when set and not blank. */
export function externalUrls(variable: string): string | undefined {
  return process.env[variable]?.trim() || undefined
}

/**
 * A data directory template made at most once per process, in a temp dir of its own that lives as
 * long as the process. A failed build removes its directory and is forgotten, so the next call
 * tries again.
 */
export function templateOnce(
  prefix: string,
): (build: (dir: string) => Promise<string>) => Promise<string> {
  let pending: Promise<string> | undefined
  return (build) => {
    pending ??= (async () => {
      const dir = await makeTempDir(prefix)
      trackTempDir(dir)
      try {
        return await build(dir)
      } catch (error) {
        pending = undefined
        await removeTempDir(dir).catch(() => {})
        throw error
      }
    })()
    return pending
  }
}

/** What {@link startLocalCluster} needs from an engine. */
export interface LocalClusterSpec<C extends ClusterBase> {
  replicas: number
  log: ((line: string) => void) | undefined
  /** Starts a fault proxy per node once the cluster runs. */
  proxies?: boolean
  /** Numbers the nodes' `serverId` 1, 2, … (MariaDB). */
  serverIds: boolean
  /** What the ready line calls the replicas: `'replica(s)'`, `'standby(s)'`. */
  replicaNoun: string
  /** Runs first, on the fresh temp directory. */
  prepareDirectory?: (directory: string) => Promise<void>
  /** The data directory template (made once per process). */
  template: () => Promise<string>
  create: (init: ClusterInit) => C
  /**
   * Makes the nodes' data directories, starts the servers and replication; `phase(name)` records
   * the time since the previous phase for the ready line.
   */
  boot: (
    cluster: C,
    states: NodeState[],
    template: string,
    phase: (name: string) => void,
  ) => Promise<void>
}

/**
 * Starts a cluster of local processes on free ports in a fresh temp directory: the primary, named
 * `primary`, and `replicas` replicas `replica-1`, … each with a data directory of its name. On
 * failure, stops what was started and removes the directory before rethrowing.
 */
export async function startLocalCluster<C extends ClusterBase>(
  spec: LocalClusterSpec<C>,
): Promise<C> {
  const { log } = spec
  const started = Date.now()
  const directory = await makeTempDir()
  trackTempDir(directory)
  let cluster: C | undefined
  try {
    await spec.prepareDirectory?.(directory)
    const [template, ports] = await Promise.all([spec.template(), findFreePorts(spec.replicas + 1)])
    const states: NodeState[] = ports.map((port, index) => {
      const name = index === 0 ? 'primary' : `replica-${index}`
      return {
        node: {
          name,
          role: index === 0 ? 'primary' : 'replica',
          host: '127.0.0.1',
          port,
          ...(spec.serverIds ? { serverId: index + 1 } : {}),
        },
        dataDir: path.join(directory, name),
        paused: false,
        delay: 0,
      }
    })
    cluster = spec.create({
      states,
      database: APP_DATABASE,
      user: APP_USER,
      password: APP_PASSWORD,
      external: false,
      directory,
      ...(log ? { log } : {}),
    })
    const phases: string[] = []
    let phaseStart = started
    const phase = (name: string) => {
      const now = Date.now()
      phases.push(`${name} ${formatSeconds(now - phaseStart)}`)
      phaseStart = now
    }
    phase('template')
    await spec.boot(cluster, states, template, phase)
    if (spec.proxies) {
      await cluster.startProxies()
      phase('proxies')
    }
    const replicas = states.slice(1)
    log?.(
      `${cluster.engine}: primary on 127.0.0.1:${states[0]!.node.port}, ${spec.replicas} ${spec.replicaNoun} on ` +
        `${replicas.map((state) => state.node.port).join(', ')}; ready in ${formatSeconds(Date.now() - started)} ` +
        `(${phases.join(', ')}) in ${directory}`,
    )
    return cluster
  } catch (error) {
    if (cluster !== undefined) await cluster.stop().catch(() => {})
    else await removeTempDir(directory).catch(() => {})
    throw error
  }
}

/** Where an engine's existing cluster is configured, and how its URLs look. */
export interface ExternalUrlsSpec {
  /** The URLs of the application user, primary first (`KYSELY_REPLICATED_…_URLS`). */
  variable: string
  /** Optional admin URLs in the same order (`KYSELY_REPLICATED_…_ADMIN_URLS`). */
  adminVariable: string
  /** The default port. */
  port: number
  /** The accepted URL schemes. */
  protocols: string[]
}

/**
 * A handle on an existing cluster (`external: true`) from `urls` and the optional admin URLs:
 * `create` makes it, `checkNode` then checks (or completes) every node over an admin connection.
 */
export async function connectExternalCluster<C extends ClusterBase>(
  urls: string,
  spec: ExternalUrlsSpec,
  options: {
    log: ((line: string) => void) | undefined
    proxies?: boolean
    create: (init: ClusterInit) => C
    checkNode: (cluster: C, state: NodeState) => Promise<void>
  },
): Promise<C> {
  const { log } = options
  const parsed = parseDatabaseUrls(urls, spec.variable, spec)
  const adminValue = process.env[spec.adminVariable]?.trim()
  const admins = adminValue ? parseDatabaseUrls(adminValue, spec.adminVariable, spec) : undefined
  if (admins !== undefined && admins.length !== parsed.length) {
    throw new Error(
      `${spec.adminVariable} lists ${admins.length} URL(s) but ${spec.variable} lists ${parsed.length}`,
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
  const cluster = options.create({
    states,
    database: first.database || APP_DATABASE,
    user: first.user,
    password: first.password,
    external: true,
    ...(log ? { log } : {}),
  })
  await Promise.all(states.map((state) => options.checkNode(cluster, state)))
  if (options.proxies) await cluster.startProxies()
  log?.(
    `${cluster.engine}: using the existing cluster from ${spec.variable} (${parsed.length} node(s))`,
  )
  return cluster
}
