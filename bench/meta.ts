/**
 * What a benchmark result was measured on: machine, runtime and package versions. Shared by the
 * micro and cluster benchmarks and shown by the report.
 */
import { execFileSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { fileURLToPath } from 'node:url'

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
export const RESULTS_DIR = path.join(ROOT, 'bench', 'results')
/** Where results of short development runs go (`--quick`): git ignores it, the report never reads it. */
export const SCRATCH_RESULTS_DIR = path.join(ROOT, '.tmp', 'bench-results')

export interface BenchMeta {
  readonly date: string
  readonly node: string
  readonly v8: string
  readonly platform: string
  readonly cpuModel: string
  readonly cpus: number
  readonly memoryGiB: number
  /** `os.loadavg()` (1, 5, 15 min) when the run started: other work on the machine skews results. */
  readonly loadAverage: readonly number[]
  readonly commit: string | undefined
  readonly dirty: boolean | undefined
  readonly packages: Readonly<Record<string, string>>
}

/** The installed version of a package, read from its package.json (`'-'` when absent). */
export function packageVersion(name: string): string {
  try {
    const file = path.join(ROOT, 'node_modules', name, 'package.json')
    return String(JSON.parse(fs.readFileSync(file, 'utf8')).version)
  } catch {
    return '-'
  }
}

function git(args: string[]): string | undefined {
  try {
    return execFileSync('git', args, {
      cwd: ROOT,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim()
  } catch {
    return undefined
  }
}

export function collectMeta(extraPackages: readonly string[] = []): BenchMeta {
  const cpus = os.cpus()
  const packages: Record<string, string> = {}
  for (const name of [
    'kysely',
    'mysql2',
    'pg',
    'kysely-replication',
    'mitata',
    'hdr-histogram-js',
    ...extraPackages,
  ]) {
    packages[name] = packageVersion(name)
  }
  packages['kysely-replicated'] = readOwnVersion()
  const status = git(['status', '--porcelain', '--', 'src'])
  return {
    date: new Date().toISOString(),
    node: process.version,
    v8: process.versions.v8,
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    cpus: cpus.length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    loadAverage: os.loadavg().map((x) => Math.round(x * 100) / 100),
    commit: git(['rev-parse', '--short', 'HEAD']),
    dirty: status === undefined ? undefined : status !== '',
    packages,
  }
}

function readOwnVersion(): string {
  try {
    return String(JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version)
  } catch {
    return '-'
  }
}

/** Writes `data` as pretty JSON to `<dir>/<name>` (default `bench/results/`; through a temp file). */
export function writeResult(name: string, data: unknown, dir = RESULTS_DIR): string {
  fs.mkdirSync(dir, { recursive: true })
  const file = path.join(dir, name)
  const tmp = file.replace(/\.json$/, '.tmp.json')
  fs.writeFileSync(tmp, `${JSON.stringify(data, null, 2)}\n`)
  fs.renameSync(tmp, file)
  return file
}

/** Progress on stderr, so stdout stays clean for tables. */
export function progress(line: string): void {
  process.stderr.write(`${line}\n`)
}

/** The median of `values` (sorted copy); NaN when empty. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}
