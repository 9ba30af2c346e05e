import { debuglog } from 'node:util'
import type { ReplicationEvent, RouteEvent } from '../core/contracts/events.js'

/** The `NODE_DEBUG` section: `NODE_DEBUG=kysely-replicated node app.js`. */
export const DEBUG_SECTION = 'kysely-replicated'

const log = debuglog(DEBUG_SECTION)

/**
 * Whether `NODE_DEBUG` names this library, read once when the module loads: callers test it
 * before building a line, so a disabled log costs one branch on a constant.
 */
export const debugEnabled: boolean = log.enabled

/** How much of a statement's SQL a route line shows. */
export const DEBUG_SQL_LENGTH = 80

/**
 * Prints one routing decision on stderr, one line:
 * `KYSELY-REPLICATED 4242: route node=primary role=primary reason=locking-read detail="for update" sql="select ..."`
 * (`detail` and `waitedMs` only when there are some; a value with spaces or quotes is
 * double-quoted, the SQL always). Call only when {@link debugEnabled}.
 */
export function debugRoute(event: RouteEvent): void {
  let line = `route node=${event.node} role=${event.role} reason=${event.reason}`
  if (event.detail !== undefined) line += ` detail=${format(event.detail)}`
  if (event.waitedMs !== undefined) line += ` waitedMs=${round(event.waitedMs)}`
  log('%s sql=%s', line, quote(shorten(event.sql)))
}

/**
 * Prints one `onEvent` event on stderr, one line: its type, then its fields as `key=value`
 * (an error as its message): `KYSELY-REPLICATED 4242: event node-down node=replica-1 error="connect ECONNREFUSED" retryInMs=1000`.
 * Call only when {@link debugEnabled}.
 */
export function debugEvent(event: ReplicationEvent): void {
  let line = `event ${event.type}`
  for (const [key, value] of Object.entries(event)) {
    if (key === 'type') continue
    line += ` ${key}=${format(value)}`
  }
  log('%s', line)
}

function format(value: unknown): string {
  if (value instanceof Error) return quote(value.message)
  if (typeof value === 'number') return String(round(value))
  if (typeof value === 'string') return /^[\w.:/-]+$/.test(value) ? value : quote(value)
  if (value === null || value === undefined) return String(value)
  return quote(String(value))
}

/** The first {@link DEBUG_SQL_LENGTH} characters, whitespace runs (newlines too) as one space. */
function shorten(sql: string): string {
  // Sliced first: a long statement is not scanned whole for a line that shows its start.
  const flat = sql
    .slice(0, DEBUG_SQL_LENGTH * 4)
    .replace(/\s+/g, ' ')
    .trim()
  return flat.length > DEBUG_SQL_LENGTH ? `${flat.slice(0, DEBUG_SQL_LENGTH)}…` : flat
}

/** A double-quoted value on one line (JSON string escapes). */
function quote(text: string): string {
  return JSON.stringify(text)
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100
}
