/**
 * Low-level helpers of the test cluster harness: free ports, tracked child processes that never
 * outlive the test process, polling, temp directories and log tails. Engine-neutral; the MariaDB and
 * PostgreSQL clusters are built on top of it.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as fsp from 'node:fs/promises'
import * as net from 'node:net'
import * as os from 'node:os'
import * as path from 'node:path'

/**
 * Finds `count` distinct free TCP ports on 127.0.0.1 by listening on port 0 (all listeners are open
 * at the same time, so the ports differ), then releases them.
 */
export async function findFreePorts(count: number): Promise<number[]> {
  const servers: net.Server[] = []
  try {
    const ports: number[] = []
    for (let i = 0; i < count; i++) {
      const server = net.createServer()
      servers.push(server)
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject)
        server.listen(0, '127.0.0.1', () => resolve())
      })
      const address = server.address()
      if (address === null || typeof address === 'string') throw new Error('no TCP address')
      ports.push(address.port)
    }
    return ports
  } finally {
    await Promise.all(
      servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))),
    )
  }
}

/** Finds one free TCP port on 127.0.0.1. */
export async function findFreePort(): Promise<number> {
  const [port] = await findFreePorts(1)
  return port!
}

/**
 * Resolves after `ms` milliseconds. The timer keeps the process alive on purpose: the server
 * processes are unref'd, so an awaited poll must hold the event loop open by itself.
 */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/**
 * Calls `attempt` every `intervalMs` until it returns a value other than `undefined`, and returns
 * that value. Throws the error made by `onTimeout` (given the last error thrown by `attempt`, if
 * any) once `timeoutMs` has passed. `attempt` may throw to mean "not yet".
 */
export async function pollUntil<T>(
  attempt: () => Promise<T | undefined>,
  options: { timeoutMs: number; intervalMs?: number; onTimeout: (lastError: unknown) => Error },
): Promise<T> {
  const deadline = Date.now() + options.timeoutMs
  const interval = options.intervalMs ?? 10
  let lastError: unknown
  for (;;) {
    try {
      const value = await attempt()
      if (value !== undefined) return value
    } catch (error) {
      if (error instanceof StopPolling) throw error.cause
      lastError = error
    }
    if (Date.now() >= deadline) throw options.onTimeout(lastError)
    await sleep(interval)
  }
}

/**
 * Awaits `promise` while holding the event loop open: the server processes are unref'd, so
 * awaiting only their exit would let a script's event loop run empty (and Node exit with code 13
 * on an unsettled top-level await).
 */
export async function keepingAlive<T>(promise: Promise<T>): Promise<T> {
  const timer = setInterval(() => {}, 1000)
  try {
    return await promise
  } finally {
    clearInterval(timer)
  }
}

/** Thrown inside a {@link pollUntil} attempt to stop polling at once with `cause`. */
export class StopPolling extends Error {
  constructor(override readonly cause: unknown) {
    super('stop polling')
  }
}

/** The last `lines` lines of a (log) file, or a note that it could not be read. */
export function tailFile(file: string, lines = 25): string {
  try {
    const text = fs.readFileSync(file, 'utf8')
    const all = text.trimEnd().split('\n')
    return all.slice(-lines).join('\n')
  } catch (error) {
    return `(cannot read ${file}: ${(error as Error).message})`
  }
}

/**
 * The directory the harness makes its temp directories in: `KYSELY_REPLICATED_TMPDIR` if set (e.g.
 * `/dev/shm`: a tmpfs makes copying data directories much faster than a slow disk), else
 * `os.tmpdir()`.
 */
export function tempRoot(): string {
  return process.env.KYSELY_REPLICATED_TMPDIR || os.tmpdir()
}

/** Creates a fresh directory `tempRoot()/kysely-replicated-XXXXXX`. */
export function makeTempDir(prefix = 'kysely-replicated-'): Promise<string> {
  return fsp.mkdtemp(path.join(tempRoot(), prefix))
}

/** Whether the current process runs as root (uid 0). */
export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0
}

/** uid and gid of a system user (via `id`), or `undefined` when there is no such user. */
export function lookupUser(name: string): { uid: number; gid: number } | undefined {
  const uid = spawnSync('id', ['-u', name], { encoding: 'utf8' })
  const gid = spawnSync('id', ['-g', name], { encoding: 'utf8' })
  if (uid.status !== 0 || gid.status !== 0) return undefined
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) }
}

/** Finds an executable by name in the given directories, then in `PATH`. */
export function findExecutable(name: string, extraDirs: string[] = []): string | undefined {
  const dirs = [...extraDirs, ...(process.env.PATH ?? '').split(path.delimiter)]
  for (const dir of dirs) {
    if (!dir) continue
    const candidate = path.join(dir, name)
    try {
      fs.accessSync(candidate, fs.constants.X_OK)
      if (fs.statSync(candidate).isFile()) return candidate
    } catch {
      // not here
    }
  }
  return undefined
}

/** Whether a process exists and is not a zombie. */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3)
    return state !== 'Z' && state !== 'X'
  } catch {
    return process.platform !== 'linux'
  }
}

/** The pids of the direct children of `pid` (Linux only; empty elsewhere). */
export function childPids(pid: number): number[] {
  if (process.platform !== 'linux') return []
  const result: number[] = []
  let entries: string[]
  try {
    entries = fs.readdirSync('/proc')
  } catch {
    return result
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8')
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      if (Number(fields[1]) === pid) result.push(Number(entry))
    } catch {
      // gone meanwhile
    }
  }
  return result
}

/**
 * The pids of every descendant of `pid`, children before grandchildren (Linux only; empty
 * elsewhere). A PostgreSQL postmaster's backends and auxiliary processes are its children.
 */
export function descendantPids(pid: number): number[] {
  const result: number[] = []
  const queue = [pid]
  while (queue.length > 0) {
    for (const child of childPids(queue.shift()!)) {
      if (result.includes(child)) continue
      result.push(child)
      queue.push(child)
    }
  }
  return result
}

/** A process's state letter from `/proc/PID/stat` (`'T'` when stopped), or undefined when gone. */
export function processState(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3)
  } catch {
    return undefined
  }
}

/** Waits (synchronously, briefly) until a process is stopped by a signal or gone. */
function awaitStoppedSync(pid: number, timeoutMs: number): boolean {
  if (process.platform !== 'linux') return true
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const state = processState(pid)
    if (state === undefined || state === 'T' || state === 't' || state === 'Z') return true
    if (Date.now() >= deadline) return false
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1)
  }
}

function killQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal)
  } catch {
    // already gone
  }
}

function processUsesDir(pid: number, dir: string): boolean {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(dir)
  } catch {
    return false
  }
}

/** Reads the postmaster pid from the first line of `DATADIR/postmaster.pid`. */
export function readPostmasterPid(dataDir: string): number | undefined {
  try {
    const pid = Number(fs.readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0])
    return Number.isInteger(pid) && pid > 0 ? pid : undefined
  } catch {
    return undefined
  }
}

/** A server process started by the harness and tracked until it exits. */
export interface TrackedProcess {
  readonly pid: number
  readonly child: ChildProcess
  /** Resolves when the process has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  /** Whether the process is still running. */
  readonly running: boolean
  /** The exit code or signal once it has exited. */
  readonly exitStatus: string | undefined
  /** Whether {@link freeze} stopped it (and it was not thawed or killed since). */
  readonly frozen: boolean
  /**
   * SIGSTOPs the process, waits until it is stopped, then SIGSTOPs every descendant (a PostgreSQL
   * postmaster's backends and auxiliary processes, which run in process groups of their own): the
   * stopped root forks no new child meanwhile. Linux lists descendants from /proc; elsewhere only the
   * root is stopped. Idempotent.
   */
  freeze(): void
  /** SIGCONTs every process {@link freeze} stopped (descendants first, then the root). Idempotent. */
  thaw(): void
  /** Kills it (and, for PostgreSQL, its children) with SIGKILL and waits until all are gone. */
  killHard(): Promise<void>
  /**
   * Thaws it if frozen, sends `signal`, waits up to `timeoutMs` for the exit, then kills it hard.
   */
  terminate(signal: NodeJS.Signals, timeoutMs: number): Promise<void>
}

interface Registration {
  pid: number
  /** For PostgreSQL: the data directory whose postmaster.pid names the postmaster. */
  postgresDataDir?: string
  /** The pids SIGSTOPped by `freeze()` and not continued since: SIGCONT before any kill. */
  frozen?: number[]
}

const registry = new Map<number, Registration>()
const tempDirs = new Set<string>()
let handlersInstalled = false

function killRegistrationSync(registration: Registration): void {
  const pids = new Set<number>([registration.pid])
  if (registration.postgresDataDir !== undefined) {
    // The postmaster named in postmaster.pid (should it differ from the pid we spawned, e.g. when
    // started through a wrapper), provided it really runs on this data directory.
    const postmaster = readPostmasterPid(registration.postgresDataDir)
    if (postmaster !== undefined && processUsesDir(postmaster, registration.postgresDataDir))
      pids.add(postmaster)
    for (const pid of [...pids]) for (const child of childPids(pid)) pids.add(child)
  }
  // Never leave a stopped process behind: continue what freeze() stopped before killing.
  for (const pid of registration.frozen ?? []) killQuietly(pid, 'SIGCONT')
  for (const pid of pids) killQuietly(pid, 'SIGKILL')
}

/** Kills every tracked process at once with SIGKILL and removes registered temp dirs (synchronous). */
export function killAllSync(): void {
  for (const registration of registry.values()) killRegistrationSync(registration)
  registry.clear()
  for (const dir of tempDirs) {
    try {
      fs.rmSync(dir, { recursive: true, force: true })
    } catch {
      // best effort
    }
  }
  tempDirs.clear()
  uninstallHandlers()
}

const onExit = (): void => killAllSync()

/** The signals that kill the tracked processes before the process dies of them. */
const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP']

const onSignal = (signal: NodeJS.Signals): void => {
  killAllSync()
  // With no other handler, restore the default behaviour: die of the same signal.
  if (process.listenerCount(signal) === 0) process.kill(process.pid, signal)
}

/**
 * 'exit' also fires when the process dies of an uncaught error. No 'uncaughtException' listener on
 * purpose: mocha handles those and keeps running, and the clusters must survive a failing test.
 */
function installHandlers(): void {
  if (handlersInstalled) return
  handlersInstalled = true
  process.on('exit', onExit)
  for (const signal of SIGNALS) process.once(signal, onSignal)
}

function uninstallHandlers(): void {
  if (!handlersInstalled) return
  handlersInstalled = false
  process.removeListener('exit', onExit)
  for (const signal of SIGNALS) process.removeListener(signal, onSignal)
}

function maybeUninstallHandlers(): void {
  if (registry.size === 0 && tempDirs.size === 0) uninstallHandlers()
}

/** Registers a temp dir to delete (synchronously) if the process exits before it is removed. */
export function trackTempDir(dir: string): void {
  tempDirs.add(dir)
  installHandlers()
}

/** Removes a temp dir now and forgets it. */
export async function removeTempDir(dir: string): Promise<void> {
  await fsp.rm(dir, { recursive: true, force: true, maxRetries: 3, retryDelay: 50 })
  tempDirs.delete(dir)
  maybeUninstallHandlers()
}

/** Options of {@link spawnServer}. */
export interface SpawnServerOptions {
  /** File that receives stdout and stderr (appended). */
  logFile: string
  /** Run as this user (only when we are root). */
  user?: { uid: number; gid: number }
  env?: NodeJS.ProcessEnv
  /** PostgreSQL data directory: also kill the postmaster's children when killing. */
  postgresDataDir?: string
  cwd?: string
}

/**
 * Starts a long-running server process: detached into its own process group, stdio to a log file,
 * unref'd (it never keeps the node process alive), and tracked so that it is SIGKILLed when this
 * process exits, is interrupted or dies of an uncaught error.
 */
export function spawnServer(
  command: string,
  args: string[],
  options: SpawnServerOptions,
): TrackedProcess {
  const fd = fs.openSync(options.logFile, 'a')
  let child: ChildProcess
  try {
    child = spawn(command, args, {
      detached: true,
      stdio: ['ignore', fd, fd],
      env: options.env ?? process.env,
      ...(options.cwd !== undefined ? { cwd: options.cwd } : {}),
      ...(options.user ? { uid: options.user.uid, gid: options.user.gid } : {}),
    })
  } finally {
    fs.closeSync(fd)
  }
  const pid = child.pid
  if (pid === undefined) {
    // spawn failures (e.g. ENOENT) are also emitted as an 'error' event: swallow it
    child.once('error', () => {})
    throw new Error(`cannot start ${command}: spawn failed`)
  }
  child.unref()
  const registration: Registration = { pid }
  if (options.postgresDataDir !== undefined) registration.postgresDataDir = options.postgresDataDir
  registry.set(pid, registration)
  installHandlers()

  let running = true
  let exitStatus: string | undefined
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      running = false
      exitStatus = signal !== null ? `signal ${signal}` : `exit code ${code}`
      resolve({ code, signal })
    })
    child.once('error', (error) => {
      running = false
      exitStatus = `spawn error: ${error.message}`
      resolve({ code: null, signal: null })
    })
  })
  void exited.then(() => {
    // Children of an exited postmaster notice its death and exit by themselves.
    registry.delete(pid)
    maybeUninstallHandlers()
  })

  const freeze = (): void => {
    if (!running) throw new Error(`cannot freeze process ${pid}: it has exited (${exitStatus})`)
    if (registration.frozen !== undefined) return
    killQuietly(pid, 'SIGSTOP')
    registration.frozen = [pid]
    // Once the root is stopped it forks nothing more: its descendants are now a fixed set.
    if (!awaitStoppedSync(pid, 2000)) throw new Error(`process ${pid} did not stop on SIGSTOP`)
    for (const descendant of descendantPids(pid)) {
      killQuietly(descendant, 'SIGSTOP')
      registration.frozen.push(descendant)
    }
    for (const frozenPid of registration.frozen) awaitStoppedSync(frozenPid, 2000)
  }

  const thaw = (): void => {
    const frozen = registration.frozen
    if (frozen === undefined) return
    registration.frozen = undefined
    // While it runs, no pid of the set can have been reaped and reused (a stopped process does not
    // exit unless SIGKILLed, and killHard() clears the set).
    if (running) for (const frozenPid of [...frozen].reverse()) killQuietly(frozenPid, 'SIGCONT')
  }

  const killHard = async (): Promise<void> => {
    // Never signal the pid once the process has been reaped: it may belong to another process.
    if (running) {
      // A postmaster's children (backends, walsenders, …) are their own process group leaders:
      // kill them too, as a crash of the whole server would, so that a restart finds no survivor
      // attached to the old shared memory.
      const children = options.postgresDataDir !== undefined ? childPids(pid) : []
      // SIGKILL ends stopped processes too: a frozen tree dies at once, without running a
      // single instruction more (a failover kills a frozen PostgreSQL primary this way).
      killQuietly(pid, 'SIGKILL')
      for (const c of children) killQuietly(c, 'SIGKILL')
      for (const frozenPid of registration.frozen ?? []) killQuietly(frozenPid, 'SIGKILL')
      registration.frozen = undefined
      await keepingAlive(exited)
      const deadline = Date.now() + 5000
      while (children.some(isProcessAlive) && Date.now() < deadline) await sleep(5)
    }
    registry.delete(pid)
    maybeUninstallHandlers()
  }

  const tracked: TrackedProcess = {
    pid,
    child,
    exited,
    get running() {
      return running
    },
    get exitStatus() {
      return exitStatus
    },
    get frozen() {
      return registration.frozen !== undefined
    },
    freeze,
    thaw,
    killHard,
    async terminate(signal, timeoutMs) {
      if (running) {
        thaw()
        killQuietly(pid, signal)
        let timer: NodeJS.Timeout | undefined
        const timedOut = await Promise.race([
          exited.then(() => false),
          new Promise<boolean>((resolve) => {
            timer = setTimeout(() => resolve(true), timeoutMs)
          }),
        ])
        clearTimeout(timer)
        // a graceful exit (a postmaster waits for its children first)
        if (!timedOut) return
      }
      await killHard()
    },
  }
  return tracked
}

/** Result of {@link runCommand}. */
export interface CommandResult {
  code: number | null
  output: string
}

/**
 * Runs a short-lived command to completion (tracked like a server while it runs), collecting
 * stdout and stderr together. Throws with the output when it fails, unless `allowFailure`.
 */
export async function runCommand(
  command: string,
  args: string[],
  options: {
    user?: { uid: number; gid: number }
    env?: NodeJS.ProcessEnv
    input?: string
    cwd?: string
    allowFailure?: boolean
    timeoutMs?: number
  } = {},
): Promise<CommandResult> {
  const child = spawn(command, args, {
    stdio: [options.input !== undefined ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    env: options.env ?? process.env,
    ...(options.cwd !== undefined ? { cwd: options.cwd } : {}),
    ...(options.user ? { uid: options.user.uid, gid: options.user.gid } : {}),
  })
  const pid = child.pid
  if (pid !== undefined) {
    registry.set(pid, { pid })
    installHandlers()
  }
  const chunks: Buffer[] = []
  child.stdout?.on('data', (chunk: Buffer) => chunks.push(chunk))
  child.stderr?.on('data', (chunk: Buffer) => chunks.push(chunk))
  if (options.input !== undefined) {
    child.stdin?.on('error', () => {})
    child.stdin?.end(options.input)
  }
  const timeoutMs = options.timeoutMs ?? 60_000
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
  timer.unref()
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject)
    child.once('close', (exitCode) => resolve(exitCode))
  }).finally(() => {
    clearTimeout(timer)
    if (pid !== undefined) {
      registry.delete(pid)
      maybeUninstallHandlers()
    }
  })
  const output = Buffer.concat(chunks).toString('utf8')
  if (code !== 0 && !options.allowFailure) {
    throw new Error(
      `${path.basename(command)} ${args.join(' ')} failed with exit code ${code}:\n${output.trimEnd().split('\n').slice(-25).join('\n')}`,
    )
  }
  return { code, output }
}

/** The number of processes the harness currently tracks (for tests of the harness). */
export function trackedProcessCount(): number {
  return registry.size
}

/** One server of an external cluster, parsed from a connection URL. */
export interface ParsedDatabaseUrl {
  host: string
  port: number
  user: string
  password: string
  database: string
}

/**
 * Parses a comma-separated list of URLs such as `mysql://user:pass@host:port/db` (the first is the
 * primary). `variable` names the environment variable, for error messages.
 */
export function parseDatabaseUrls(
  value: string,
  variable: string,
  defaults: { port: number; protocols: string[] },
): ParsedDatabaseUrl[] {
  const parts = value
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part !== '')
  if (parts.length === 0) throw new Error(`${variable} is set but lists no URL`)
  return parts.map((part) => {
    let url: URL
    try {
      url = new URL(part)
    } catch {
      throw new Error(`${variable}: cannot parse ${JSON.stringify(part)} as a URL`)
    }
    if (!defaults.protocols.includes(url.protocol.replace(/:$/, ''))) {
      throw new Error(
        `${variable}: ${JSON.stringify(url.protocol)} is not one of ${defaults.protocols.map((p) => `${p}://`).join(', ')}`,
      )
    }
    return {
      host: url.hostname.replace(/^\[(.*)\]$/, '$1') || '127.0.0.1',
      port: url.port ? Number(url.port) : defaults.port,
      user: decodeURIComponent(url.username),
      password: decodeURIComponent(url.password),
      database: decodeURIComponent(url.pathname.replace(/^\//, '')),
    }
  })
}

/** The error thrown by operations that need a cluster the harness started itself. */
export function externalClusterError(operation: string, variable: string): Error {
  return new Error(
    `${operation}() needs a cluster started by the test harness; this cluster comes from ${variable} ` +
      '(check `cluster.external` to skip such tests)',
  )
}

/** Formats elapsed milliseconds as seconds, e.g. `1.23 s`. */
export function formatSeconds(ms: number): string {
  return `${(ms / 1000).toFixed(2)} s`
}

/** Copies a directory tree preserving owners and modes (`cp -a`). */
export async function copyTree(from: string, to: string): Promise<void> {
  await runCommand('cp', ['-a', from, to])
}

/** A copy of `process.env` without variables starting with one of `prefixes` (e.g. `PG`). */
export function envWithout(prefixes: string[], extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (!prefixes.some((prefix) => key.startsWith(prefix))) env[key] = value
  }
  return { ...env, ...extra }
}
