import { expect } from 'chai'
import fc from 'fast-check'
import { formatLsn, PG_MAX_LSN, parseLsn } from '../../src/consistency/pg-lsn.js'
import { positionCovers } from '../../src/consistency/position.js'

const lsnArb = fc.oneof(
  fc.bigInt(0n, 0xffffn),
  fc.bigInt(0n, 0xffff_ffffn),
  fc.bigInt(0n, PG_MAX_LSN),
  fc.constantFrom(0n, 0xffff_ffffn, 0x1_0000_0000n, PG_MAX_LSN),
)

describe('PostgreSQL LSNs', () => {
  it('parses LSNs as PostgreSQL prints them', () => {
    expect(parseLsn('0/3000060')).to.equal(0x3000060n)
    expect(parseLsn('16/B374D848')).to.equal((0x16n << 32n) | 0xb374d848n)
    expect(parseLsn('0/0')).to.equal(0n)
    expect(parseLsn('FFFFFFFF/FFFFFFFF')).to.equal(PG_MAX_LSN)
  })

  it('parses lower-case and zero-padded hex', () => {
    expect(parseLsn('16/b374d848')).to.equal(parseLsn('16/B374D848'))
    expect(parseLsn('00000016/0B374D84')).to.equal((0x16n << 32n) | 0xb374d84n)
  })

  it('formats upper-case without leading zeros, like PostgreSQL', () => {
    expect(formatLsn(0x3000060n)).to.equal('0/3000060')
    expect(formatLsn((0x16n << 32n) | 0xb374d848n)).to.equal('16/B374D848')
    expect(formatLsn(0n)).to.equal('0/0')
    expect(formatLsn(0x1_0000_0000n)).to.equal('1/0')
    expect(formatLsn(PG_MAX_LSN)).to.equal('FFFFFFFF/FFFFFFFF')
  })

  for (const bad of [
    '',
    '0',
    '/1',
    '1/',
    '0//1',
    '0/123456789',
    '123456789/0',
    'g/0',
    ' 0/1',
    '0/1 ',
    '0x1/2',
    '-1/0',
    '+1/0',
    '1/2/3',
    '１/2',
  ]) {
    it(`rejects malformed input ${JSON.stringify(bad)} with a TypeError`, () => {
      expect(() => parseLsn(bad)).to.throw(TypeError, /PostgreSQL LSN/)
    })
  }

  it('rejects non-strings with a TypeError', () => {
    expect(() => parseLsn(42 as unknown as string)).to.throw(TypeError)
  })

  it('refuses to format out-of-range values', () => {
    expect(() => formatLsn(-1n)).to.throw(RangeError)
    expect(() => formatLsn(PG_MAX_LSN + 1n)).to.throw(RangeError)
    expect(() => formatLsn(5 as unknown as bigint)).to.throw(RangeError)
  })

  it('round-trips format and parse', () => {
    fc.assert(
      fc.property(lsnArb, (lsn) => {
        const text = formatLsn(lsn)
        expect(text).to.match(/^(0|[1-9A-F][0-9A-F]{0,7})\/(0|[1-9A-F][0-9A-F]{0,7})$/)
        expect(parseLsn(text)).to.equal(lsn)
        expect(formatLsn(parseLsn(text.toLowerCase()))).to.equal(text)
      }),
    )
  })

  it('orders parsed LSNs as (X, Y) pairs, i.e. as the bigints', () => {
    const half = fc.integer({ min: 0, max: 0xffff_ffff })
    fc.assert(
      fc.property(half, half, half, half, (x1, y1, x2, y2) => {
        const a = parseLsn(`${x1.toString(16)}/${y1.toString(16)}`)
        const b = parseLsn(`${x2.toString(16)}/${y2.toString(16)}`)
        const pairOrder = x1 !== x2 ? Math.sign(x1 - x2) : Math.sign(y1 - y2)
        const lsnOrder = a < b ? -1 : a > b ? 1 : 0
        expect(lsnOrder).to.equal(pairOrder)
      }),
    )
  })

  it('covers a required LSN iff the applied LSN is at least as large', () => {
    fc.assert(
      fc.property(lsnArb, lsnArb, (applied, required) => {
        expect(
          positionCovers({ kind: 'postgres', lsn: applied }, { kind: 'postgres', lsn: required }),
        ).to.equal(applied >= required)
      }),
    )
  })
})
