/**
 * Turns `bench/results/micro.json` and `bench/results/cluster.json` (and `cluster-postgres.json`)
 * into `docs/benchmarks.md`
 * and its charts (`docs/img/*.svg`, hand-written SVG). Run by both benchmarks after they write
 * their results, or alone with `npm run bench:report`.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import { pathToFileURL } from 'node:url'
import type {
  ClusterResults,
  ConsistencyRunResult,
  LoadRunResult,
  RunFigures,
  ScenarioResult,
} from './cluster-results.js'
import type { BenchMeta } from './meta.js'
import { median, RESULTS_DIR, ROOT } from './meta.js'
import type { MicroResults } from './micro.js'

const DOCS = path.join(ROOT, 'docs')
const IMG = path.join(DOCS, 'img')

function readJson<T>(name: string): T | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(RESULTS_DIR, name), 'utf8')) as T
  } catch {
    return undefined
  }
}

// ---- formatting --------------------------------------------------------------------------------

function ns(value: number): string {
  if (value < 1000) return `${value.toFixed(value < 100 ? 1 : 0)} ns`
  return `${(value / 1000).toFixed(2)} µs`
}

function ms(value: number): string {
  return value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2)
}

function signedUs(us: number): string {
  return `${us >= 0 ? '+' : ''}${us.toFixed(2)}`
}

function pct(part: number, whole: number): string {
  return whole > 0 ? `${((100 * part) / whole).toFixed(1)} %` : '–'
}

function table(header: string[], rows: string[][], align?: Array<'l' | 'r'>): string {
  const a = align ?? header.map((_, i) => (i === 0 ? 'l' : 'r'))
  const sep = a.map((x) => (x === 'r' ? '---:' : ':---'))
  return [header, sep, ...rows].map((r) => `| ${r.join(' | ')} |`).join('\n')
}

function esc(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
}

function mark(ok: boolean | undefined): string {
  return ok === undefined ? '–' : ok ? 'met' : '**missed**'
}

// ---- SVG charts --------------------------------------------------------------------------------

const PALETTE = [
  '#1f77b4',
  '#ff7f0e',
  '#2ca02c',
  '#d62728',
  '#9467bd',
  '#8c564b',
  '#e377c2',
  '#7f7f7f',
  '#17becf',
]
const NODE_COLORS: Record<string, string> = {
  'replica-1': '#1f77b4',
  'replica-2': '#ff7f0e',
  primary: '#7f7f7f',
  failed: '#d62728',
}
const FONT = 'font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif"'

function svgDoc(width: number, height: number, body: string[]): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ${FONT} font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    ...body,
    '</svg>',
    '',
  ].join('\n')
}

/** "Nice" ticks for a log axis between lo and hi (1, 2, 5 × 10^k). */
function logTicks(lo: number, hi: number): number[] {
  const ticks: number[] = []
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** e
      if (v >= lo * 0.999 && v <= hi * 1.001) ticks.push(v)
    }
  }
  return ticks
}

function niceMax(value: number): number {
  if (value <= 0) return 1
  const e = 10 ** Math.floor(Math.log10(value))
  for (const m of [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * e >= value) return m * e
  return 10 * e
}

function tickLabel(v: number): string {
  return v >= 1 ? String(Number(v.toPrecision(3))) : String(Number(v.toPrecision(2)))
}

/** Latency percentiles (log y) of every contender in one scenario. */
function latencyChart(scenario: ScenarioResult): string {
  const width = 720
  const height = 380
  const m = { left: 64, right: 190, top: 40, bottom: 48 }
  const pw = width - m.left - m.right
  const ph = height - m.top - m.bottom
  const keys: Array<[keyof LoadRunResult['latencyMs'], string]> = [
    ['p50', 'p50'],
    ['p90', 'p90'],
    ['p99', 'p99'],
    ['p999', 'p99.9'],
  ]
  const values = scenario.runs
    .flatMap((r) => keys.map(([k]) => r.latencyMs[k]))
    .filter((v) => v > 0)
  const lo = 10 ** Math.floor(Math.log10(Math.max(0.01, Math.min(...values))))
  const hi = 10 ** Math.ceil(Math.log10(Math.max(...values)))
  const y = (v: number) =>
    m.top +
    ph -
    ((Math.log10(Math.max(v, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * ph
  const x = (i: number) => m.left + (pw * (i + 0.5)) / keys.length
  const body: string[] = [
    `<text x="${m.left}" y="22" font-size="15" font-weight="600">${esc(scenario.title)}: read latency percentiles (ms, log scale)</text>`,
  ]
  for (const t of logTicks(lo, hi)) {
    body.push(
      `<line x1="${m.left}" x2="${m.left + pw}" y1="${y(t).toFixed(1)}" y2="${y(t).toFixed(1)}" stroke="#e5e5e5"/>`,
    )
    body.push(
      `<text x="${m.left - 6}" y="${(y(t) + 4).toFixed(1)}" text-anchor="end" fill="#444">${tickLabel(t)}</text>`,
    )
  }
  body.push(`<line x1="${m.left}" x2="${m.left}" y1="${m.top}" y2="${m.top + ph}" stroke="#999"/>`)
  body.push(
    `<line x1="${m.left}" x2="${m.left + pw}" y1="${m.top + ph}" y2="${m.top + ph}" stroke="#999"/>`,
  )
  keys.forEach(([, label], i) => {
    body.push(
      `<text x="${x(i).toFixed(1)}" y="${m.top + ph + 20}" text-anchor="middle" fill="#444">${label}</text>`,
    )
  })
  body.push(
    `<text x="${m.left + pw / 2}" y="${height - 8}" text-anchor="middle" fill="#444">percentile</text>`,
  )
  scenario.runs.forEach((run, ri) => {
    const color = PALETTE[ri % PALETTE.length]!
    const dash =
      run.label === 'oracle'
        ? ' stroke-dasharray="5 3"'
        : run.label === 'kysely-replication'
          ? ' stroke-dasharray="2 2"'
          : ''
    const points = keys.map(([k], i) => `${x(i).toFixed(1)},${y(run.latencyMs[k]).toFixed(1)}`)
    body.push(
      `<polyline points="${points.join(' ')}" fill="none" stroke="${color}" stroke-width="2"${dash}/>`,
    )
    for (const p of points) {
      const [px, py] = p.split(',')
      body.push(`<circle cx="${px}" cy="${py}" r="3" fill="${color}"/>`)
    }
    const ly = m.top + 8 + ri * 20
    body.push(
      `<line x1="${m.left + pw + 16}" x2="${m.left + pw + 40}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="2"${dash}/>`,
    )
    body.push(`<text x="${m.left + pw + 46}" y="${ly + 4}">${esc(run.label)}</text>`)
  })
  return svgDoc(width, height, body)
}

/** The scenario steps that open and close a shaded range of the timeline, per scenario. */
const SHADED: Record<string, { open: string; close: string; legend: string }> = {
  spike: { open: 'spike on', close: 'spike off', legend: 'replica-1 slow' },
  kill: { open: 'kill -9', close: 'accepting', legend: 'replica-2 down' },
  hang: { open: 'freeze', close: 'thaw', legend: 'replica-2 frozen' },
  blackhole: { open: 'blackhole', close: 'pass', legend: 'replica-2 blackholed' },
}

/** The dialect's events drawn as vertical lines on the timeline. */
const MARKERS: Record<string, { color: string; legend: string }> = {
  'node-down': { color: '#8b0000', legend: 'node-down event' },
  'node-up': { color: '#2ca02c', legend: 'node-up event' },
}

/** Shaded time ranges of a run (spikes, the fault), in s. */
function eventRanges(
  scenario: string,
  run: LoadRunResult,
  durationS: number,
): Array<{ from: number; to: number }> {
  const shaded = SHADED[scenario]
  if (shaded === undefined) return []
  const ranges: Array<{ from: number; to: number }> = []
  let open: number | undefined
  for (const e of run.events) {
    if (e.node !== undefined) continue
    if (e.label === shaded.open) open = e.atMs / 1000
    else if (e.label === shaded.close && open !== undefined) {
      ranges.push({ from: open, to: e.atMs / 1000 })
      open = undefined
    }
  }
  if (open !== undefined) ranges.push({ from: open, to: durationS })
  return ranges
}

/** The node the scenario's fault hits (its events are the markers), if any. */
function faultNode(scenario: ScenarioResult): string | undefined {
  return scenario.runs.find((r) => r.fault !== undefined)?.fault?.node
}

/** Reads per node per second, one small panel per contender. */
function timelineChart(scenario: ScenarioResult, durationS: number): string {
  const cols = 2
  const panelW = 360
  const panelH = 170
  const m = { left: 52, right: 14, top: 30, bottom: 30 }
  const rows = Math.ceil(scenario.runs.length / cols)
  const width = cols * panelW + 20
  const victim = faultNode(scenario)
  const markerOf = (run: LoadRunResult) =>
    run.events.filter((e) => e.node !== undefined && e.node === victim && MARKERS[e.label])
  const markers = [...new Set(scenario.runs.flatMap((r) => markerOf(r).map((e) => e.label)))]
  const legendH = markers.length > 0 ? 52 : 30
  const height = 36 + legendH + rows * panelH
  const nodes = new Set<string>()
  for (const run of scenario.runs)
    for (const b of run.timeline) for (const n of Object.keys(b.reads)) nodes.add(n)
  const series = [...[...nodes].sort(), 'failed']
  const yMax = niceMax(
    Math.max(
      1,
      ...scenario.runs.flatMap((r) =>
        r.timeline.flatMap((b) => [...Object.values(b.reads), b.failed]),
      ),
    ),
  )
  const body: string[] = [
    `<text x="10" y="22" font-size="15" font-weight="600">${esc(scenario.title)}: reads per second on each node (1 s buckets)</text>`,
  ]
  series.forEach((s, i) => {
    const lx = 14 + i * 130
    const color = NODE_COLORS[s] ?? PALETTE[(i + 4) % PALETTE.length]!
    body.push(
      `<line x1="${lx}" x2="${lx + 22}" y1="48" y2="48" stroke="${color}" stroke-width="2.5"${s === 'failed' ? ' stroke-dasharray="3 2"' : ''}/>`,
    )
    body.push(`<text x="${lx + 28}" y="52">${esc(s === 'failed' ? 'failed reads' : s)}</text>`)
  })
  body.push(`<rect x="${14 + series.length * 130}" y="42" width="18" height="12" fill="#f3c6c6"/>`)
  body.push(
    `<text x="${14 + series.length * 130 + 24}" y="52">${esc(SHADED[scenario.name]?.legend ?? '')}</text>`,
  )
  markers.forEach((label, i) => {
    const lx = 14 + i * 260
    body.push(
      `<line x1="${lx + 11}" x2="${lx + 11}" y1="64" y2="78" stroke="${MARKERS[label]!.color}" stroke-width="1.5" stroke-dasharray="3 2"/>`,
    )
    body.push(
      `<text x="${lx + 28}" y="75">${esc(`${MARKERS[label]!.legend} for ${victim}`)}</text>`,
    )
  })
  scenario.runs.forEach((run, i) => {
    const ox = 10 + (i % cols) * panelW
    const oy = 36 + legendH + Math.floor(i / cols) * panelH
    const pw = panelW - m.left - m.right
    const ph = panelH - m.top - m.bottom
    const x = (t: number) => ox + m.left + (pw * t) / durationS
    const y = (v: number) => oy + m.top + ph - (ph * v) / yMax
    const shown =
      run.repetitions !== undefined && run.shownRepetition !== undefined
        ? ` (run ${run.shownRepetition + 1} of ${run.repetitions.length}: median p99)`
        : ''
    body.push(
      shown === ''
        ? `<text x="${ox + m.left}" y="${oy + 18}" font-weight="600">${esc(run.label)}</text>`
        : `<text x="${ox + m.left}" y="${oy + 18}"><tspan font-weight="600">${esc(run.label)}</tspan>${esc(shown)}</text>`,
    )
    for (const r of eventRanges(scenario.name, run, durationS)) {
      body.push(
        `<rect x="${x(r.from).toFixed(1)}" y="${oy + m.top}" width="${Math.max(1, x(r.to) - x(r.from)).toFixed(1)}" height="${ph}" fill="#f3c6c6" opacity="0.7"/>`,
      )
    }
    for (const t of [0, 0.5, 1]) {
      const v = yMax * t
      body.push(
        `<line x1="${ox + m.left}" x2="${ox + m.left + pw}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#e5e5e5"/>`,
      )
      body.push(
        `<text x="${ox + m.left - 5}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end" fill="#444" font-size="10">${tickLabel(v)}</text>`,
      )
    }
    for (let s = 0; s <= durationS; s += durationS > 12 ? 5 : 2) {
      body.push(
        `<text x="${x(s).toFixed(1)}" y="${oy + m.top + ph + 14}" text-anchor="middle" fill="#444" font-size="10">${s} s</text>`,
      )
    }
    body.push(
      `<line x1="${ox + m.left}" x2="${ox + m.left + pw}" y1="${oy + m.top + ph}" y2="${oy + m.top + ph}" stroke="#999"/>`,
    )
    series.forEach((s, si) => {
      const color = NODE_COLORS[s] ?? PALETTE[(si + 4) % PALETTE.length]!
      const pts = run.timeline.map((b) => {
        const v = s === 'failed' ? b.failed : (b.reads[s] ?? 0)
        return `${x(b.t + 0.5).toFixed(1)},${y(v).toFixed(1)}`
      })
      if (s === 'failed' && run.timeline.every((b) => b.failed === 0)) return
      if (s === 'primary' && run.timeline.every((b) => (b.reads[s] ?? 0) === 0)) return
      body.push(
        `<polyline points="${pts.join(' ')}" fill="none" stroke="${color}" stroke-width="2"${s === 'failed' ? ' stroke-dasharray="3 2"' : ''}/>`,
      )
    })
    for (const e of markerOf(run)) {
      const mx = x(e.atMs / 1000).toFixed(1)
      body.push(
        `<line x1="${mx}" x2="${mx}" y1="${oy + m.top}" y2="${oy + m.top + ph}" stroke="${MARKERS[e.label]!.color}" stroke-width="1.5" stroke-dasharray="3 2"/>`,
      )
    }
  })
  return svgDoc(width, height, body)
}

/** Bars of p50 and p99 per contender for every scenario side by side (overview). */
function p99Overview(scenarios: ScenarioResult[]): string {
  const labels = [...new Set(scenarios.flatMap((s) => s.runs.map((r) => r.label)))]
  const width = 760
  const height = 90 + scenarios.length * (labels.length * 16 + 30)
  const m = { left: 190, right: 80, top: 50 }
  const pw = width - m.left - m.right
  const max = Math.max(...scenarios.flatMap((s) => s.runs.map((r) => r.latencyMs.p99)))
  const hi = 10 ** Math.ceil(Math.log10(max))
  const lo =
    10 **
    Math.floor(
      Math.log10(
        Math.max(0.01, Math.min(...scenarios.flatMap((s) => s.runs.map((r) => r.latencyMs.p50)))),
      ),
    )
  const x = (v: number) =>
    m.left +
    ((Math.log10(Math.max(v, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * pw
  const body: string[] = [
    `<text x="10" y="22" font-size="15" font-weight="600">p50 (dark) and p99 (light) read latency per scenario (ms, log scale)</text>`,
  ]
  let oy = m.top
  for (const t of logTicks(lo, hi)) {
    body.push(
      `<line x1="${x(t).toFixed(1)}" x2="${x(t).toFixed(1)}" y1="${m.top - 8}" y2="${height - 20}" stroke="#eee"/>`,
    )
    body.push(
      `<text x="${x(t).toFixed(1)}" y="${m.top - 12}" text-anchor="middle" fill="#444" font-size="10">${tickLabel(t)}</text>`,
    )
  }
  for (const s of scenarios) {
    body.push(`<text x="10" y="${oy + 14}" font-weight="600">${esc(s.title)}</text>`)
    oy += 22
    s.runs.forEach((r, i) => {
      const color = PALETTE[labels.indexOf(r.label) % PALETTE.length]!
      body.push(`<text x="${m.left - 8}" y="${oy + 11}" text-anchor="end">${esc(r.label)}</text>`)
      body.push(
        `<rect x="${m.left}" y="${oy + 2}" width="${Math.max(1, x(r.latencyMs.p99) - m.left).toFixed(1)}" height="11" fill="${color}" opacity="0.35"/>`,
      )
      body.push(
        `<rect x="${m.left}" y="${oy + 2}" width="${Math.max(1, x(r.latencyMs.p50) - m.left).toFixed(1)}" height="11" fill="${color}"/>`,
      )
      body.push(
        `<text x="${(x(r.latencyMs.p99) + 4).toFixed(1)}" y="${oy + 11}" font-size="10" fill="#444">${ms(r.latencyMs.p99)}</text>`,
      )
      oy += 16
      void i
    })
    oy += 8
  }
  return svgDoc(width, height, body)
}

// ---- the document ------------------------------------------------------------------------------

function machineSection(micro: MicroResults | undefined, clusters: ClusterRun[]): string {
  const rows: string[][] = []
  const add = (label: string, meta: BenchMeta | undefined, extra?: string) => {
    if (meta === undefined) return
    const p = meta.packages
    rows.push([
      label,
      meta.date.slice(0, 16).replace('T', ' '),
      `${meta.cpuModel} × ${meta.cpus}, ${meta.memoryGiB} GiB`,
      `${meta.node} (V8 ${meta.v8})`,
      `kysely ${p.kysely}, mysql2 ${p.mysql2}, kysely-replication ${p['kysely-replication']}`,
      extra ?? '–',
      meta.loadAverage === undefined ? '–' : meta.loadAverage.map((x) => x.toFixed(2)).join(' / '),
      `${meta.commit ?? '?'}${meta.dirty ? ' (+ uncommitted src changes)' : ''}`,
    ])
  }
  add('micro', micro?.meta)
  for (const { results } of clusters) {
    add(
      `cluster (${results.engine.name})`,
      results.meta,
      `${results.engine.serverVersion} (${results.engine.driver})`,
    )
  }
  if (rows.length === 0) return '_No results yet._'
  return table(
    [
      'run',
      'date (UTC)',
      'CPU',
      'Node.js',
      'packages',
      'server',
      'load avg at start (1/5/15 min)',
      'commit',
    ],
    rows,
    ['l', 'l', 'l', 'l', 'l', 'l', 'l', 'l'],
  )
}

interface Target {
  readonly target: string
  readonly measured: string
  readonly ok: boolean | undefined
}

function targets(micro: MicroResults | undefined, clusters: ClusterRun[]): Target[] {
  const out: Target[] = []
  // Issue #14: cached classification and selection of a point select, a cached 1 KB statement.
  const point = micro?.classification?.find((c) => c.name === 'cached: point select')
  if (point !== undefined) {
    out.push({
      target: 'classification (cached) + selection ≤ 1 µs median, point select',
      measured: ns(point.classifyAndSelect.p50),
      ok: point.classifyAndSelect.p50 <= 1000,
    })
  }
  const raw = micro?.classification?.find((c) => c.name.startsWith('cached:') && c.sqlLength > 900)
  if (raw !== undefined) {
    out.push({
      target: 'classification (cached) ≤ 2 µs median, 1 KB raw statement',
      measured: `${ns(raw.classify.p50)} (${raw.sqlLength} B)`,
      ok: raw.classify.p50 <= 2000,
    })
  }
  // Whole-query overhead over MysqlDialect: eventual ≤ ×1.10, causal ≤ ×1.15, and below
  // kysely-replication's ratio in the same context.
  const variants = micro?.overhead?.variants ?? []
  for (const v of variants) {
    if (!v.name.startsWith('ReplicatedMysqlDialect')) continue
    const causal = v.name.includes('causal')
    const limit = causal ? 1.15 : 1.1
    const context = v.context ?? 'none'
    const rival = variants.find(
      (x) =>
        x.name.startsWith('kysely-replication') &&
        (x.context ?? 'none') === (context === 'none' ? 'none' : 'request'),
    )
    out.push({
      target: `whole-query overhead over MysqlDialect ≤ ×${limit.toFixed(2)}${rival === undefined ? '' : ' and below kysely-replication'}: ${v.name}`,
      measured: `×${v.medianRatio.toFixed(3)} (${signedUs(v.medianAddedUs)} µs/query)${rival === undefined ? '' : `; kysely-replication ×${rival.medianRatio.toFixed(3)}`}${context !== 'none' ? ', against MysqlDialect in a per-request AsyncLocalStorage' : ''}`,
      ok: v.medianRatio <= limit && (rival === undefined || v.medianRatio < rival.medianRatio),
    })
  }
  for (const { results: cluster } of clusters) {
    out.push(...clusterTargets(cluster, clusters.length > 1 ? `${cluster.engine.server}: ` : ''))
  }
  return out
}

function clusterTargets(cluster: ClusterResults, prefix: string): Target[] {
  const out: Target[] = []
  // Medians over the runs where a scenario was repeated.
  const p99 = (r: LoadRunResult) => med(r, (f) => f.latencyMs.p99)
  const mean = (r: LoadRunResult) => med(r, (f) => f.latencyMs.mean)
  const throughput = (r: LoadRunResult) => med(r, (f) => f.throughput)
  for (const name of ['slow', 'spike']) {
    const s = cluster.scenarios.find((x) => x.name === name)
    const p2c = s?.runs.find((r) => r.label === 'p2c-ewma')
    const rr = s?.runs.find((r) => r.label === 'round-robin')
    const oracle = s?.runs.find((r) => r.label === 'oracle')
    if (s === undefined || p2c === undefined || rr === undefined) continue
    out.push({
      target: `${prefix}${s.title}: p2c-ewma p99 ≤ 0.3 × round-robin's`,
      // The oracle's own ratio says what this machine allows: on a saturated box, queueing for
      // the CPU dominates every latency and no selector reaches 0.3 of round-robin's p99.
      measured: `${ms(p99(p2c))} ms vs ${ms(p99(rr))} ms (×${(p99(p2c) / p99(rr)).toFixed(2)})${oracle === undefined ? '' : `; the oracle itself ×${(p99(oracle) / p99(rr)).toFixed(2)}`}`,
      ok: p99(p2c) <= 0.3 * p99(rr),
    })
    out.push({
      target: `${prefix}${s.title}: p2c-ewma throughput ≥ round-robin's`,
      measured: `${throughput(p2c)} vs ${throughput(rr)} reads/s`,
      ok: throughput(p2c) >= throughput(rr),
    })
    if (oracle !== undefined) {
      out.push({
        target: `${prefix}${s.title}: p2c-ewma mean ≤ 1.2 × oracle's`,
        measured: `${ms(mean(p2c))} ms vs ${ms(mean(oracle))} ms (×${(mean(p2c) / mean(oracle)).toFixed(2)})`,
        ok: mean(p2c) <= 1.2 * mean(oracle),
      })
    }
  }
  // Issue #14, spike scenario with library defaults: ≤ 3 % of the reads started in spike windows
  // on the spiking replica; p99 within 1.5 × the oracle's with hedging on.
  const spike = cluster.scenarios.find((x) => x.name === 'spike')
  const spikeP2c = spike?.runs.find((r) => r.label === 'p2c-ewma')
  if (spikeP2c !== undefined) {
    const share = (f: RunFigures) =>
      f.spike === undefined || f.spike.inWindows.reads === 0
        ? Number.NaN
        : (100 * f.spike.inWindows.onNode) / f.spike.inWindows.reads
    const s = spread(spikeP2c, share)
    out.push({
      target: `${prefix}spikes, library defaults: ≤ 3 % of the reads started in spike windows on the spiking replica`,
      measured:
        s.median === null
          ? '–'
          : `${s.median.toFixed(1)} %${s.runs > 1 ? ` (median of ${s.runs} runs, ${s.min!.toFixed(1)}–${s.max!.toFixed(1)} %)` : ''}`,
      ok: s.median === null ? undefined : s.max! <= 3,
    })
  }
  const hedged = spike?.runs.find((r) => r.label === 'p2c-ewma+hedge')
  const spikeOracle = spike?.runs.find((r) => r.label === 'oracle')
  if (hedged !== undefined && spikeOracle !== undefined) {
    const p99 = (r: LoadRunResult) => med(r, (f) => f.latencyMs.p99)
    out.push({
      target: `${prefix}spikes, hedging on: p99 ≤ 1.5 × the oracle's`,
      measured: `${ms(p99(hedged))} ms vs ${ms(p99(spikeOracle))} ms (×${(p99(hedged) / p99(spikeOracle)).toFixed(2)})`,
      ok: p99(hedged) <= 1.5 * p99(spikeOracle),
    })
  }
  const kill = cluster.scenarios.find((x) => x.name === 'kill')
  if (kill !== undefined) {
    const healthAware = kill.runs.filter((r) => r.label !== 'kysely-replication')
    const failed = (r: LoadRunResult) => spread(r, (f) => f.failed)
    out.push({
      target: `${prefix}0 failed reads with a killed replica (every selector of this library${kill.repeat !== undefined && kill.repeat > 1 ? ', every run' : ''})`,
      measured: healthAware.map((r) => `${r.label}: ${showSpread(failed(r), count)}`).join(', '),
      ok: healthAware.every((r) => failed(r).max === 0),
    })
  }
  return out
}

function microSection(micro: MicroResults | undefined): string {
  if (micro === undefined) return '_Not run yet: `npm run bench`._'
  const parts: string[] = [
    `Library under test: ${String(micro.settings.library ?? 'src')} — not \`src/\` through tsx, whose \`keepNames\` transform wraps every closure created at run time in a \`__name()\` call (Kysely and \`kysely-replication\` ship plain JavaScript and would not pay it). Mitata with manual GC; each time is the best of three measurements of ${(Number(micro.settings.minCpuTimeMs) / 3).toFixed(0)} ms of samples (the one with the lowest median: other work on the machine only ever adds time).`,
    '',
  ]
  if (micro.selectors !== undefined) {
    const counts = [...new Set(micro.selectors.map((s) => s.replicas))].sort((a, b) => a - b)
    const names = [...new Set(micro.selectors.map((s) => s.selector))]
    const rows = names.map((name) => {
      const cells = counts.map((n) => {
        const r = micro.selectors!.find((s) => s.selector === name && s.replicas === n)
        return r === undefined ? '–' : `${ns(r.time.p50)} · ${r.bytesPerPick} B`
      })
      const first = micro.selectors!.find((s) => s.selector === name && s.replicas === counts[0])
      const last = micro.selectors!.find((s) => s.selector === name && s.replicas === counts.at(-1))
      const growth = first && last ? `×${(last.time.p50 / first.time.p50).toFixed(2)}` : '–'
      return [name, ...cells, growth]
    })
    parts.push(
      '### Replica selection: time and heap allocated per pick',
      '',
      `Median time per pick and median heap growth per pick (GC before each batch of 5 000 picks, empty-loop baseline subtracted). Candidates carry latency history and a few queries in flight. The last column is the growth of the median from ${counts[0]} to ${counts.at(-1)} replicas: a small constant factor (up to about ×2, from the candidates no longer fitting in the CPU caches) means O(1), a factor near 512 would mean O(n). \`least-latency (TTL expired)\` forces its comparison on every pick, which happens once per TTL (1 s) in real use: that is its O(n) part.`,
      '',
      table(
        ['selector', ...counts.map((n) => `${n} replicas`), `${counts[0]} → ${counts.at(-1)}`],
        rows,
      ),
    )
  }
  if (micro.classification !== undefined) {
    const rows = micro.classification.map((c) => [
      c.name,
      String(c.sqlLength),
      c.decision,
      ns(c.classify.p50),
      ns(c.classify.p99),
      ns(c.classifyAndSelect.p50),
      `${c.bytesPerClassify} B`,
    ])
    parts.push(
      '',
      '### Classification, and classification + selection',
      '',
      `\`classifyNode(compiled.query, compiled.sql, options)\` for builder queries, \`classifyRawSql(sql, options)\` for raw text; "+ selection" adds a ${micro.settings.classifyAndSelectSelector} pick when the statement is a read.`,
      '',
      table(
        [
          'statement',
          'SQL bytes',
          'decision',
          'classify p50',
          'classify p99',
          '+ selection p50',
          'heap / call',
        ],
        rows,
        ['l', 'r', 'l', 'r', 'r', 'r', 'r'],
      ),
    )
  }
  const o = micro.overhead
  if (o !== undefined) {
    const contexts = new Set(o.variants.map((v) => v.context ?? 'none'))
    const inContexts = contexts.size > 1 || !contexts.has('none')
    const contextLabel = {
      none: 'none',
      request: 'AsyncLocalStorage.run',
      scope: 'consistencyScope',
      'request+scope': 'consistencyScope in AsyncLocalStorage.run',
    }
    const rows = o.variants.map((v) => [
      v.name,
      ...(inContexts ? [contextLabel[v.context ?? 'none']] : []),
      v.medianUsPerQuery.toFixed(2),
      `×${v.medianRatio.toFixed(3)}`,
      signedUs(v.medianAddedUs),
      ...(inContexts
        ? [
            v.toPlainBaseline === undefined
              ? '–'
              : `×${v.toPlainBaseline.medianRatio.toFixed(3)} (${signedUs(v.toPlainBaseline.medianAddedUs)} µs)`,
          ]
        : []),
      `${Math.min(...v.usPerQuery).toFixed(2)} – ${Math.max(...v.usPerQuery).toFixed(2)}`,
    ])
    const contextText = inContexts
      ? ` Each query also runs as a request of its own would: outside any context, inside a plain per-request \`AsyncLocalStorage.run()\` (what a web framework or tracer opens; Kysely's dialect, \`kysely-replication\` and the replicated dialect in eventual mode there), or inside a per-request \`consistencyScope()\` (how web apps use the replicated dialects). Variants in a context are compared with Kysely's dialect in a plain per-request context, measured in the same rounds; the last comparison column is with Kysely's dialect outside any context. On Node.js ${micro.meta.node}, the first \`run()\` of any \`AsyncLocalStorage\` turns promise hooks on for the whole process${o.storagesTurnedOff ? ", and where storages rely on them (Node.js 20 and 22) every promise then propagates the context of each storage turned on. So every storage is turned off again before each variant runs (`bench/async-context.ts`): a variant outside a context runs as in a process that never opened one, and one inside a context with that context's storage alone" : ''}.`
      : ''
    parts.push(
      '',
      '### Whole-query overhead on fake pools',
      '',
      `${o.rounds} rounds × ${o.queriesPerRound} queries per dialect, the dialects alternating within each round; ${o.workload}. The fake mysql2 pools (\`bench/fake-pool.ts\`) answer on the next tick, so these are client-side costs only: against a real server, a point select on loopback costs about 70–150 µs more per query. Ratio and added time are medians over rounds of the comparison with the baseline measured in the same round. The replicated dialects run with two replicas and \`health: { probeIntervalMs: 0 }\`.${contextText}`,
      '',
      table(
        [
          'dialect',
          ...(inContexts ? ['each query in'] : []),
          'µs / query (median)',
          'ratio to baseline',
          'µs added / query',
          ...(inContexts ? ['vs Kysely outside any context'] : []),
          'range over rounds (µs)',
        ],
        rows,
        inContexts ? ['l', 'l', 'r', 'r', 'r', 'r', 'r'] : undefined,
      ),
    )
  }
  return parts.join('\n')
}

/** A figure of a contender over its runs: the median, the range, and the runs that had none. */
interface Spread {
  readonly median: number | null
  readonly min: number | null
  readonly max: number | null
  readonly runs: number
  readonly missing: number
}

function spread(run: LoadRunResult, get: (f: RunFigures) => number | null | undefined): Spread {
  const all = (run.repetitions ?? [run]).map(get)
  const values = all.filter((v): v is number => typeof v === 'number' && Number.isFinite(v))
  return {
    median: values.length > 0 ? median(values) : null,
    min: values.length > 0 ? Math.min(...values) : null,
    max: values.length > 0 ? Math.max(...values) : null,
    runs: all.length,
    missing: all.length - values.length,
  }
}

/**
 * `median unit (min–max)` over several runs, the value alone for one (or when all runs show the
 * same); `none` where a run had none.
 */
function showSpread(s: Spread, format: (v: number) => string, none = '–', unit = ''): string {
  if (s.median === null) return none
  const [lo, hi] = [format(s.min!), format(s.max!)]
  const range = s.runs > 1 && lo !== hi ? ` (${lo}–${hi})` : ''
  const missing = s.missing > 0 ? `; ${none} in ${s.missing} of ${s.runs}` : ''
  return `${format(s.median)}${unit}${range}${missing}`
}

/** The median of a figure over a contender's runs (the figure itself for one run). */
function med(run: LoadRunResult, get: (f: RunFigures) => number): number {
  return spread(run, get).median ?? get(run)
}

function count(v: number): string {
  return Number.isInteger(v) ? String(v) : v.toFixed(1)
}

function share(part: number, whole: number): number | null {
  return whole > 0 ? (100 * part) / whole : null
}

/** A percentage without its unit: `showSpread(s, percent, '–', ' %')`. */
function percent(v: number): string {
  return v.toFixed(1)
}

function seconds(msValue: number): string {
  return (msValue / 1000).toFixed(2)
}

function scenarioTable(s: ScenarioResult): string {
  const nodes = [...new Set(s.runs.flatMap((r) => Object.keys(r.readsPerNode)))].sort()
  const rows = s.runs.map((r) => [
    r.label,
    showSpread(
      spread(r, (f) => f.throughput),
      (v) => v.toFixed(0),
    ),
    ms(med(r, (f) => f.latencyMs.mean)),
    showSpread(
      spread(r, (f) => f.latencyMs.p50),
      ms,
    ),
    ms(med(r, (f) => f.latencyMs.p90)),
    showSpread(
      spread(r, (f) => f.latencyMs.p99),
      ms,
    ),
    ms(med(r, (f) => f.latencyMs.p999)),
    showSpread(
      spread(r, (f) => f.failed),
      count,
    ),
    ...nodes.map((n) =>
      showSpread(
        spread(r, (f) => share(f.readsPerNode[n] ?? 0, f.reads)),
        percent,
        '–',
        ' %',
      ),
    ),
  ])
  return table(
    [
      'selector',
      'reads/s',
      'mean',
      'p50',
      'p90',
      'p99',
      'p99.9',
      'failed',
      ...nodes.map((n) => `on ${n}`),
    ],
    rows,
  )
}

/** `spike`: where the reads started during and between the spikes went. */
function spikeTable(s: ScenarioResult): string | undefined {
  const runs = s.runs.filter((r) => r.spike !== undefined)
  if (runs.length === 0) return undefined
  const replica = runs[0]!.spike!.replica
  const rows = runs.map((r) => [
    r.label,
    showSpread(
      spread(r, (f) => f.latencyMs.p99),
      ms,
    ),
    showSpread(
      spread(r, (f) => f.spike?.inWindows.reads),
      count,
    ),
    showSpread(
      spread(r, (f) => f.spike && share(f.spike.inWindows.onNode, f.spike.inWindows.reads)),
      percent,
      '–',
      ' %',
    ),
    showSpread(
      spread(r, (f) => f.spike && share(f.spike.outside.onNode, f.spike.outside.reads)),
      percent,
      '–',
      ' %',
    ),
    showSpread(
      spread(r, (f) => f.spike?.inWindows.p99Ms),
      ms,
    ),
    showSpread(
      spread(r, (f) => f.spike?.outside.p99Ms),
      ms,
    ),
    r.hedges === undefined
      ? '–'
      : `${r.hedges.sent} (${percent(share(r.hedges.sent, r.reads) ?? 0)} %) / ${r.hedges.won}`,
  ])
  return [
    `Where the reads went, by the time each read started: inside the spike windows (from the step that turned the delay on to the one that turned it off) or between them. The oracle sends none to ${replica} during a spike; round-robin half.`,
    '',
    table(
      [
        'selector',
        'p99, all reads',
        'reads started in spikes',
        `on ${replica} in spikes`,
        `on ${replica} between spikes`,
        'p99 of reads started in spikes',
        'p99 between spikes',
        'hedges sent (share of reads) / won',
      ],
      rows,
    ),
  ].join('\n')
}

/** `kill`, `hang`, `blackhole`: what the fault did to the reads (see {@link FAULT_COLUMNS}). */
function faultTable(s: ScenarioResult, windowS: number | undefined): string | undefined {
  const runs = s.runs.filter((r) => r.fault !== undefined)
  if (runs.length === 0) return undefined
  const { node } = runs[0]!.fault!
  const windowMs = (windowS ?? 5) * 1000
  // A run that ended sooner after the fault counted over a shorter window: say so.
  const clipped = (x: NonNullable<RunFigures['fault']>) =>
    x.after.windowMs < windowMs - 50 ? x.after.windowMs : undefined
  const rows = runs.map((r) => {
    const f = (get: (x: NonNullable<RunFigures['fault']>) => number | null | undefined) =>
      spread(r, (x) => (x.fault === undefined ? undefined : get(x.fault)))
    const events = r.fault!.detectionMs !== undefined
    return [
      r.label,
      showSpread(
        spread(r, (x) => x.failed),
        count,
      ),
      `${showSpread(
        f((x) => x.inFlight.p99Ms),
        ms,
      )} / ${showSpread(
        f((x) => x.inFlight.maxMs),
        ms,
      )}`,
      `${showSpread(
        f((x) => x.startedBefore),
        count,
      )} → ${showSpread(
        f((x) => x.startedDuring),
        count,
      )}`,
      events
        ? showSpread(
            f((x) => x.detectionMs),
            seconds,
            'none',
          )
        : 'n/a',
      events
        ? showSpread(
            f((x) => x.nodeUpMs),
            seconds,
            'none',
          )
        : 'n/a',
      showSpread(
        f((x) => x.backInUseMs),
        seconds,
        'none',
      ),
      `${showSpread(
        f((x) => share(x.after.onNode, x.after.reads)),
        percent,
        '–',
        ' %',
      )}${
        spread(r, (x) => (x.fault === undefined ? undefined : clipped(x.fault))).median !== null
          ? ` (over ${showSpread(
              f((x) => x.after.windowMs),
              seconds,
            )} s: the run ended)`
          : ''
      }`,
    ]
  })
  return table(
    [
      'selector',
      'failed reads',
      'in flight during the fault: p99 / max (ms)',
      'reads started: before → during the fault',
      `node-down for ${node} after (s)`,
      'node-up after the end (s)',
      `${node} answers again after (s)`,
      `on ${node} in the ${windowMs / 1000} s after`,
    ],
    rows,
  )
}

/** What the columns of the fault tables mean. */
const FAULT_COLUMNS =
  "How the fault tables are measured, per run, from a log of every read (start, end, the node that answered, as the server said) and the dialect's own `onEvent` events: the fault runs from the step that made it (`kill -9`, `freeze`, `blackhole`) to the one that ended it (`accepting`, `thaw`, `pass`). *In flight during the fault*: every read running at some moment of it, successful or failed: how long callers waited. *Reads started*: in the span of the fault's length just before it, and during it (what a stalled replica does to the throughput of a closed loop). *node-down after*: from the start of the fault to the dialect's first `node-down` event for the node (n/a: `kysely-replication` has no events; none: no such event). *node-up after the end*: from the end of the fault to the first `node-up` after the `node-down` (negative: before the scenario's step that ends the fault returned, as when a restarted server accepts before the harness's check does). *Answers again after*: from the end of the fault to the start of the first read started after it that the node itself answered. Last column: the share of the successful reads started in the window after the fault that the node answered (about 50 % once it is fully back)."

function consistencyTable(
  rows: ConsistencyRunResult[],
  pairs: { concurrency: number; durationS: number },
): string {
  const workers = (r: ConsistencyRunResult) => {
    const pairWorkers = `${r.pairWorkers ?? pairs.concurrency} pair workers`
    if (!r.extraWriters) return pairWorkers
    const rate =
      r.extraWrites === undefined
        ? ''
        : ` (${(r.extraWrites / pairs.durationS).toFixed(0)} writes/s)`
    return `${pairWorkers} + ${r.extraWriters} writers${rate}`
  }
  const withWriters = rows.some((r) => (r.extraWriters ?? 0) > 0)
  return table(
    [
      'mode',
      ...(withWriters ? ['workers'] : []),
      'replica delay',
      'pairs',
      'stale reads',
      'reads on replicas',
      'pair p50 (ms)',
      'pair p99 (ms)',
      'pair mean (ms)',
      'causal waits',
      'failed',
    ],
    rows.map((r) => [
      r.mode,
      ...(withWriters ? [workers(r)] : []),
      r.replicaDelayMs === 0 ? 'none' : `${r.replicaDelayMs} ms`,
      String(r.pairs),
      `${r.stale} (${pct(r.stale, r.pairs)})`,
      pct(r.readsOnReplicas, r.pairs),
      ms(r.pairMs.p50),
      ms(r.pairMs.p99),
      ms(r.pairMs.mean),
      r.routing === undefined ? '–' : String(r.routing.causalWaits),
      String(r.failed),
    ]),
    ['l', ...(withWriters ? (['l'] as const) : []), 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
  )
}

function clusterSection(run: ClusterRun, written: string[]): string {
  const { results: cluster, prefix } = run
  const mysql = cluster.engine.name === 'mysql'
  const s = cluster.settings as {
    durationS: number
    warmupS: number
    concurrency: number
    readQuery: string
    health: string
    calibration?: Record<string, number>
    pairs?: { durationS: number; concurrency: number; replicaDelayMs: number; selector: string }
    wallClockS?: number
    slices?: number
    sliceWarmupS?: number
    repeat?: number
    faults?: { node: string; stallS: number; recoveryWindowS: number }
  }
  const c = s.calibration ?? {}
  const clockDriven = cluster.scenarios
    .filter((x) => x.name !== 'equal' && x.name !== 'slow')
    .map((x) => x.name)
  const runsOfClock =
    s.repeat === undefined
      ? `spike and kill run each selector once for the whole ${s.durationS} s.`
      : `the scenarios driven by the clock (${clockDriven.join(', ')}) run each selector for the whole run, once or more in an order rotated by one each time (\`--repeat\`; see each scenario): where a scenario ran several times, its tables show the median over the runs with the range in parentheses, its charts the run with the median p99.`
  const slicing =
    s.slices !== undefined && s.slices > 1
      ? ` Scenarios without a time-driven pattern (equal, slow) run as ${s.slices} rounds in which every selector runs ${s.durationS / s.slices} s in turn (after ${s.sliceWarmupS} s of warm-up on a fresh Kysely), so other work on the machine hits all selectors alike; ${runsOfClock}`
      : ''
  const parts: string[] = [
    `${cluster.engine.serverVersion}: a primary and two ${mysql ? 'GTID replicas' : 'streaming hot standbys'} as local processes (\`test/support/cluster.ts\`), each replica behind a latency-injecting TCP proxy (\`bench/latency-proxy.ts\`, in a child process). Every run: a fresh Kysely, ${s.concurrency} closed-loop workers, ${s.warmupS} s warm-up, then ${s.durationS} s measured; \`${s.readQuery}\`; \`consistency: 'eventual'\`; ${s.health}. Reads per node come from the server itself (\`${mysql ? '@@server_id' : 'inet_server_port()'}\` in every read). Latencies in ms, of successful reads. Total wall-clock time of the last run: ${s.wallClockS ?? '?'} s.${slicing}`,
    '',
    `Proxy calibration (median \`select 1\` round trip on one idle connection, before the runs): direct ${c.directP50Ms} ms; through the proxy ${c.replyDelay0msP50Ms} ms with no delay, ${c.replyDelay2msP50Ms} ms with replies held 2 ms, ${c.replyDelay20msP50Ms} ms with replies held 20 ms (Node's millisecond timers make each hold last a little longer than asked).`,
    '',
    "The oracle is a selector that is told the injected delays and which replica is down, and picks the least-busy of the truly fastest replicas: the yardstick. `kysely-replication` runs its `RoundRobinReplicaStrategy` over Kysely's own dialect on the same pools and proxies (it has no health checks or retries).",
  ]
  if (cluster.scenarios.some((x) => x.runs.some((r) => r.fault !== undefined))) {
    parts.push('', FAULT_COLUMNS)
  }
  if (cluster.scenarios.length > 0) {
    parts.push('', `![p50 and p99 per scenario](img/${prefix}latency-overview.svg)`)
  }
  for (const scenario of cluster.scenarios) {
    const repeat = scenario.repeat ?? 1
    const length =
      scenario.durationS !== undefined && scenario.name !== 'equal' && scenario.name !== 'slow'
        ? ` ${scenario.durationS} s measured per run${repeat > 1 ? `, ${repeat} runs per selector` : ''}.`
        : ''
    parts.push(
      '',
      `### ${scenario.title}`,
      '',
      `${scenario.description}${length}`,
      '',
      scenarioTable(scenario),
    )
    for (const extra of [spikeTable(scenario), faultTable(scenario, s.faults?.recoveryWindowS)]) {
      if (extra !== undefined) parts.push('', extra)
    }
    const latency = `${prefix}latency-${scenario.name}.svg`
    if (written.includes(latency))
      parts.push('', `![${scenario.title}: latency percentiles](img/${latency})`)
    const timeline = `${prefix}timeline-${scenario.name}.svg`
    if (written.includes(timeline))
      parts.push('', `![${scenario.title}: reads per node over time](img/${timeline})`)
    const errors = scenario.runs.filter((r) => Object.keys(r.errors).length > 0)
    if (errors.length > 0) {
      const over = repeat > 1 ? ` (over the ${repeat} runs per selector)` : ''
      parts.push('', `Errors seen by the application${over}:`, '')
      for (const r of errors) {
        parts.push(
          `- ${r.label}: ${Object.entries(r.errors)
            .map(([k, v]) => `${v} × \`${k}\``)
            .join('; ')}`,
        )
      }
    }
  }
  if (cluster.consistency !== undefined && s.pairs !== undefined) {
    parts.push(
      '',
      '### Consistency: write → read-back pairs',
      '',
      `${s.pairs.concurrency} workers, ${s.pairs.durationS} s per mode, each pair in its own \`consistencyScope\`: an update of one row (each worker owns its rows), then a select of it; stale = the read did not see the write.${cluster.consistency.some((r) => (r.extraWriters ?? 0) > 0) ? ' In the last rows, fewer pair workers run beside workers that only write (an update of a row of another table, each in its own scope), so the replicas apply a stream of other writes while the pairs wait for theirs.' : ''} Selector ${s.pairs.selector}; "replica delay" is ${mysql ? '`MASTER_DELAY` on both replicas (MariaDB compares whole seconds, so 1 s means an effective delay between 0 and 1 s)' : '`recovery_min_apply_delay` on both standbys'}.`,
      '',
      consistencyTable(cluster.consistency, s.pairs),
    )
  }
  return parts.join('\n')
}

interface ClusterRun {
  readonly results: ClusterResults
  /** Chart file name prefix: '' for MariaDB, 'postgres-' for PostgreSQL. */
  readonly prefix: string
}

/** Regenerates `docs/benchmarks.md` and `docs/img/*.svg`; returns the files written. */
export function generateReport(): string[] {
  const micro = readJson<MicroResults>('micro.json')
  const clusters: ClusterRun[] = []
  for (const [file, prefix] of [
    ['cluster.json', ''],
    ['cluster-postgres.json', 'postgres-'],
  ] as const) {
    const results = readJson<ClusterResults>(file)
    if (results !== undefined) clusters.push({ results, prefix })
  }
  fs.mkdirSync(IMG, { recursive: true })
  const written: string[] = []
  const writeSvg = (name: string, svg: string) => {
    fs.writeFileSync(path.join(IMG, name), svg)
    written.push(name)
  }
  for (const { results, prefix } of clusters) {
    const defaultS = Number((results.settings as { durationS?: number }).durationS ?? 10)
    if (results.scenarios.length > 0) {
      writeSvg(`${prefix}latency-overview.svg`, p99Overview(results.scenarios))
    }
    for (const scenario of results.scenarios) {
      writeSvg(`${prefix}latency-${scenario.name}.svg`, latencyChart(scenario))
      if (SHADED[scenario.name] !== undefined) {
        writeSvg(
          `${prefix}timeline-${scenario.name}.svg`,
          timelineChart(scenario, scenario.durationS ?? defaultS),
        )
      }
    }
  }
  const t = targets(micro, clusters)
  const clusterParts =
    clusters.length === 0
      ? [
          '## Cluster benchmarks (`bench/cluster.ts`)',
          '',
          '_Not run yet: `npm run bench:cluster`._',
          '',
        ]
      : clusters.flatMap((run) => [
          `## Cluster benchmarks: ${run.results.engine.server} (\`bench/cluster.ts --dialect ${run.results.engine.name}\`)`,
          '',
          clusterSection(run, written),
          '',
        ])
  const doc = [
    '# Benchmarks',
    '',
    '<!-- Generated by bench/report.ts from bench/results/*.json: edit the generator, not this file. -->',
    '',
    'Numbers measured on one machine, to compare alternatives and to see where time goes: nothing in `npm test` asserts a duration. Regenerate with:',
    '',
    '```sh',
    'npm run bench            # micro-benchmarks, no database (about 1 minute; --help for the options)',
    'npm run bench:cluster    # real MariaDB primary + 2 replicas (about 12 minutes; --dialect, --scenario, --selectors, --repeat, --help)',
    'npm run bench:cluster -- --quick   # every scenario in about 2 minutes, for development (results in .tmp/bench-results/, docs untouched)',
    'npm run bench:report     # docs/benchmarks.md and docs/img/*.svg from bench/results/*.json',
    '```',
    '',
    '## Machine and versions',
    '',
    machineSection(micro, clusters),
    '',
    'A 2-core machine runs the load generator, three database servers and the proxies at once: in the cluster runs every process competes for the same two cores, so absolute latencies are mostly queueing for CPU. The machine is also shared with other work (see the load average when each run started): in the micro-benchmarks, rounds alternate the dialects and the tables show medians over rounds to damp that, but single numbers move by tens of percent between runs. Compare rows within a table rather than across runs or machines.',
    '',
    '## Targets',
    '',
    t.length > 0
      ? table(
          ['target', 'measured', ''],
          t.map((x) => [x.target, x.measured, mark(x.ok)]),
          ['l', 'l', 'l'],
        )
      : '_No results yet._',
    '',
    '## Micro-benchmarks (`bench/micro.ts`)',
    '',
    microSection(micro),
    '',
    ...clusterParts,
  ].join('\n')
  fs.mkdirSync(DOCS, { recursive: true })
  fs.writeFileSync(path.join(DOCS, 'benchmarks.md'), doc)
  return ['docs/benchmarks.md', ...written.map((w) => `docs/img/${w}`)]
}

const isMain =
  process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href
if (isMain) {
  for (const file of generateReport()) process.stderr.write(`wrote ${file}\n`)
}
