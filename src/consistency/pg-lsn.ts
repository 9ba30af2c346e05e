/**
 * PostgreSQL WAL positions (`pg_lsn`, printed `X/Y` with X and Y the high and low 32 bits in
 * hexadecimal). Pure code, no I/O.
 */

/** The largest LSN: 2^64 - 1 (`FFFFFFFF/FFFFFFFF`). */
export const PG_MAX_LSN = 0xffff_ffff_ffff_ffffn

const LSN_RE = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/

/**
 * Parses an LSN as PostgreSQL prints it (`'0/3000060'`, `'16/B374D848'`, either case) into
 * the 64-bit integer `(X << 32) | Y`.
 *
 * @throws TypeError when the text is not `X/Y` with 1 to 8 hex digits on each side.
 */
export function parseLsn(text: string): bigint {
  const m = typeof text === 'string' ? LSN_RE.exec(text) : null
  if (m === null) {
    const shown =
      typeof text !== 'string'
        ? typeof text
        : text.length > 40
          ? `${JSON.stringify(text.slice(0, 40))}…`
          : JSON.stringify(text)
    throw new TypeError(`Malformed PostgreSQL LSN ${shown}: expected X/Y in hexadecimal`)
  }
  return (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`)
}

/**
 * Formats an LSN as PostgreSQL prints it: upper-case hexadecimal halves without leading zeros,
 * e.g. `'0/3000060'`. Accepted by `pg_lsn` casts (`$1::pg_lsn`).
 *
 * @throws RangeError when `lsn` is negative or above 2^64 - 1.
 */
export function formatLsn(lsn: bigint): string {
  if (typeof lsn !== 'bigint' || lsn < 0n || lsn > PG_MAX_LSN) {
    throw new RangeError('An LSN must be a bigint between 0 and 2^64 - 1')
  }
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffff_ffffn).toString(16).toUpperCase()}`
}
