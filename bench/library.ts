/**
 * The library under benchmark, compiled the way it ships.
 *
 * The benchmarks run under tsx, which compiles TypeScript with esbuild's `keepNames`: every
 * closure the code creates is wrapped in a `__name(fn, 'name')` call at run time. Kysely and
 * `kysely-replication` ship plain JavaScript and pay nothing of the kind, so measuring `src/`
 * through tsx would charge this library for the benchmark's tooling (it roughly doubled the
 * whole-query overhead on fake pools). {@link loadLibrary} therefore compiles `src/` with `tsc`
 * (the build's own settings) into `.tmp/bench-lib/` and imports that; `--source` imports `src/`
 * through tsx instead.
 */
import { execFileSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { pathToFileURL } from 'node:url'
import type * as Health from '../src/health/node-load.js'
import type * as Index from '../src/index.js'
import type * as ClassificationCache from '../src/routing/classification-cache.js'
import type * as ClassifyNode from '../src/routing/classify-node.js'
import type * as PrimaryFunctions from '../src/routing/primary-functions.js'
import type * as RawSql from '../src/routing/raw-sql.js'
import type * as CreateSelector from '../src/selection/create-selector.js'
import { progress, ROOT } from './meta.js'

export interface Library {
  /** Where it was loaded from: `src (tsx)` or `tsc output (.tmp/bench-lib)`. */
  readonly origin: string
  readonly index: typeof Index
  readonly classifyNode: typeof ClassifyNode.classifyNode
  readonly classifyRawSql: typeof RawSql.classifyRawSql
  readonly ClassificationCache: typeof ClassificationCache.ClassificationCache
  readonly primaryFunctionSet: typeof PrimaryFunctions.primaryFunctionSet
  readonly createSelector: typeof CreateSelector.createSelector
  readonly BUILT_IN_SELECTOR_NAMES: typeof CreateSelector.BUILT_IN_SELECTOR_NAMES
  readonly NodeLoad: typeof Health.NodeLoad
}

const OUT_DIR = path.join(ROOT, '.tmp', 'bench-lib')

/** Compiles `src/` with tsc into `.tmp/bench-lib/` (type errors are reported, not fatal). */
function compile(): void {
  const started = performance.now()
  fs.rmSync(OUT_DIR, { recursive: true, force: true })
  const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')
  try {
    execFileSync(
      process.execPath,
      [
        tsc,
        '-p',
        path.join(ROOT, 'tsconfig.build.json'),
        '--outDir',
        OUT_DIR,
        '--declaration',
        'false',
        '--sourceMap',
        'false',
        '--incremental',
        'false',
      ],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' },
    )
  } catch (error) {
    const output = String((error as { stdout?: unknown }).stdout ?? '').trim()
    if (!fs.existsSync(path.join(OUT_DIR, 'index.js'))) {
      throw new Error(`compiling src/ for the benchmark failed:\n${output}`)
    }
    progress(
      `  (tsc reported errors; benchmarking what it emitted)\n${output.split('\n').slice(0, 5).join('\n')}`,
    )
  }
  progress(
    `  compiled src/ with tsc into .tmp/bench-lib (${((performance.now() - started) / 1000).toFixed(1)} s)`,
  )
}

/** Loads the library: compiled by tsc (default), or from `src/` through tsx with `fromSource`. */
export async function loadLibrary(fromSource: boolean): Promise<Library> {
  let base: string
  let origin: string
  if (fromSource) {
    base = path.join(ROOT, 'src')
    origin = 'src (through tsx)'
  } else {
    compile()
    base = OUT_DIR
    origin = 'tsc output of src/ (.tmp/bench-lib)'
  }
  const load = async <T>(file: string): Promise<T> =>
    (await import(
      pathToFileURL(path.join(base, fromSource ? file.replace(/\.js$/, '.ts') : file)).href
    )) as T
  const [index, classifyNode, rawSql, cache, primaryFunctions, createSelector, health] =
    await Promise.all([
      load<typeof Index>('index.js'),
      load<typeof ClassifyNode>('routing/classify-node.js'),
      load<typeof RawSql>('routing/raw-sql.js'),
      load<typeof ClassificationCache>('routing/classification-cache.js'),
      load<typeof PrimaryFunctions>('routing/primary-functions.js'),
      load<typeof CreateSelector>('selection/create-selector.js'),
      load<typeof Health>('health/node-load.js'),
    ])
  return {
    origin,
    index,
    classifyNode: classifyNode.classifyNode,
    classifyRawSql: rawSql.classifyRawSql,
    ClassificationCache: cache.ClassificationCache,
    primaryFunctionSet: primaryFunctions.primaryFunctionSet,
    createSelector: createSelector.createSelector,
    BUILT_IN_SELECTOR_NAMES: createSelector.BUILT_IN_SELECTOR_NAMES,
    NodeLoad: health.NodeLoad,
  }
}
