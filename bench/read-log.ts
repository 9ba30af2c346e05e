/**
 * Every read of one run, and the figures of the scenarios that look at spans of it: where the
 * reads started during latency spikes went, and what a fault on one node (kill, hang, blackhole)
 * did to the reads. Pure functions over the log and the run's events.
 */
import type { FaultStats, SpikeWindowStats, TimedEvent, WindowShare } from './cluster-results.js'
import { percentile, roundMs } from './latency.js'

/** A span of a run, in ms since the measurement started: `from` included, `to` excluded. */
export interface Span {
  readonly from: number
  readonly to: number
}

/** The node index of a failed read. */
const FAILED = -1

/**
 * When each read of a run started and ended (ms since the measurement started) and which node
 * answered it, as the server itself said. Columns of plain numbers: a few hundred thousand reads
 * per run cost a few MB.
 */
export class ReadLog {
  readonly #nodes: string[] = []
  readonly #indexes = new Map<string, number>()
  readonly #start: number[] = []
  readonly #end: number[] = []
  readonly #node: number[] = []

  /** A read that `node` answered, or that failed (`node` undefined). */
  add(startMs: number, endMs: number, node: string | undefined): void {
    this.#start.push(startMs)
    this.#end.push(endMs)
    this.#node.push(node === undefined ? FAILED : this.#indexOf(node))
  }

  get size(): number {
    return this.#start.length
  }

  #indexOf(node: string): number {
    let index = this.#indexes.get(node)
    if (index === undefined) {
      index = this.#nodes.length
      this.#nodes.push(node)
      this.#indexes.set(node, index)
    }
    return index
  }

  /** Calls `fn` for every read: its start, end, and answering node (undefined: it failed). */
  forEach(fn: (startMs: number, endMs: number, node: string | undefined) => void): void {
    for (let i = 0; i < this.#start.length; i++) {
      const n = this.#node[i]!
      fn(this.#start[i]!, this.#end[i]!, n === FAILED ? undefined : this.#nodes[n])
    }
  }
}

function inSpans(t: number, spans: readonly Span[]): boolean {
  for (const s of spans) if (t >= s.from && t < s.to) return true
  return false
}

/**
 * The spans between events labelled `open` and `close` (in order); an open span at the end of the
 * events lasts until `endMs`.
 */
export function spansBetween(
  events: readonly TimedEvent[],
  open: string,
  close: string,
  endMs: number,
): Span[] {
  const spans: Span[] = []
  let from: number | undefined
  for (const e of events) {
    if (e.node !== undefined) continue
    if (e.label === open && from === undefined) from = e.atMs
    else if (e.label === close && from !== undefined) {
      spans.push({ from, to: e.atMs })
      from = undefined
    }
  }
  if (from !== undefined) spans.push({ from, to: endMs })
  return spans
}

/** Where the successful reads started inside and outside `spikes` went. */
export function spikeWindowStats(
  log: ReadLog,
  spikes: readonly Span[],
  replica: string,
): SpikeWindowStats {
  const inside = { reads: 0, onNode: 0, latencies: [] as number[] }
  const outside = { reads: 0, onNode: 0, latencies: [] as number[] }
  log.forEach((start, end, node) => {
    if (node === undefined) return
    const bin = inSpans(start, spikes) ? inside : outside
    bin.reads++
    if (node === replica) bin.onNode++
    bin.latencies.push(end - start)
  })
  const share = (bin: typeof inside): WindowShare => ({
    reads: bin.reads,
    onNode: bin.onNode,
    p99Ms: percentile(bin.latencies, 99),
  })
  return { replica, inWindows: share(inside), outside: share(outside) }
}

/** What {@link faultStats} needs besides the log. */
export interface FaultWindow {
  /** The node the fault hit. */
  readonly node: string
  /** The fault window, in ms since the measurement started. */
  readonly span: Span
  /** How long after the fault the share of reads on the node is counted, in ms. */
  readonly afterMs: number
  /** The measured length of the run, in ms. */
  readonly runMs: number
  /** The run's events, or undefined for a contender that reports none (no detection figures). */
  readonly events: readonly TimedEvent[] | undefined
}

/** What a fault on one node did to the reads of a run: see {@link FaultStats}. */
export function faultStats(log: ReadLog, fault: FaultWindow): FaultStats {
  const { node, span, afterMs, runMs, events } = fault
  const length = span.to - span.from
  const beforeFrom = Math.max(0, span.from - length)
  const afterTo = Math.min(runMs, span.to + afterMs)
  const waited: number[] = []
  let inFlightFailed = 0
  let startedDuring = 0
  let startedBefore = 0
  let afterReads = 0
  let afterOnNode = 0
  let firstBack = Number.POSITIVE_INFINITY
  log.forEach((start, end, answered) => {
    if (start < span.to && end > span.from) {
      waited.push(end - start)
      if (answered === undefined) inFlightFailed++
    }
    if (start >= span.from && start < span.to) startedDuring++
    else if (start >= beforeFrom && start < span.from) startedBefore++
    if (answered === undefined || start < span.to) return
    if (answered === node && start < firstBack) firstBack = start
    if (start < afterTo) {
      afterReads++
      if (answered === node) afterOnNode++
    }
  })
  const p99Ms = percentile(waited, 99) // sorts `waited`
  const maxMs = waited.length === 0 ? null : roundMs(waited[waited.length - 1]!)
  const firstEvent = (label: string, from: number) =>
    events?.find((x) => x.label === label && x.node === node && x.atMs >= from)
  const down = firstEvent('node-down', span.from)
  // The first node-up after the node was seen down; it may come before the end of the fault as
  // the scenario saw it (a restarted server accepts before the harness's check returns).
  const up = firstEvent('node-up', down?.atMs ?? span.from)
  return {
    node,
    fromMs: span.from,
    toMs: span.to,
    inFlight: {
      reads: waited.length,
      failed: inFlightFailed,
      p99Ms,
      maxMs,
    },
    startedDuring,
    startedBefore,
    beforeSpanMs: span.from - beforeFrom,
    ...(events !== undefined
      ? {
          detectionMs: down === undefined ? null : down.atMs - span.from,
          nodeUpMs: up === undefined ? null : up.atMs - span.to,
        }
      : {}),
    backInUseMs: Number.isFinite(firstBack) ? Math.round(firstBack - span.to) : null,
    after: { windowMs: Math.round(afterTo - span.to), reads: afterReads, onNode: afterOnNode },
  }
}
