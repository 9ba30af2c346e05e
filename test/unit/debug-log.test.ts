import { spawnSync } from 'node:child_process'
import * as path from 'node:path'
import { expect } from 'chai'
import { debugEnabled } from '../../src/observability/debug-log.js'

const SCRIPT = path.resolve(import.meta.dirname, '../support/debug-log-script.ts')

/** Runs the script in a child process with `NODE_DEBUG` as given; returns its debug lines. */
function run(nodeDebug: string | undefined): string[] {
  const env = { ...process.env }
  delete env.NODE_DEBUG
  if (nodeDebug !== undefined) env.NODE_DEBUG = nodeDebug
  const child = spawnSync(process.execPath, ['--import', 'tsx', SCRIPT], {
    env,
    encoding: 'utf8',
    timeout: 30_000,
  })
  expect(child.status, child.stderr).to.equal(0)
  return child.stderr.split('\n').filter((line) => line.startsWith('KYSELY-REPLICATED '))
}

/** The line without its `KYSELY-REPLICATED <pid>: ` prefix, with timings as `<ms>`. */
const body = (line: string) =>
  line.replace(/^KYSELY-REPLICATED \d+: /, '').replace(/(waitedMs|retryInMs)=[\d.]+/g, '$1=<ms>')

describe('debug log (NODE_DEBUG=kysely-replicated)', () => {
  it('prints each routing decision and each node state change, one line each', function () {
    this.timeout(60_000)
    const lines = run('kysely-replicated')
    expect(lines.map(body)).to.deep.equal([
      'route node=primary role=primary reason=write detail=insert sql="insert into `person` (`id`) values (?)"',
      'route node=replica-1 role=replica reason=causal-waited waitedMs=<ms> sql="select * from `person`"',
      'route node=primary role=primary reason=locking-read detail="for update" sql="select * from `person` for update"',
      // Whitespace runs as one space, the first 80 characters (up to `4`), quotes escaped.
      'route node=replica-1 role=replica reason=read sql="select id, name from person where name = \'a \\"quoted\\" name\' and id in (1, 2, 3, 4…"',
      'event node-down node=replica-1 error="connect ECONNREFUSED (fake replica-1)" retryInMs=<ms>',
    ])
    expect(lines.every((line) => /^KYSELY-REPLICATED \d+: /.test(line))).to.equal(true)
  })

  it('prints nothing without NODE_DEBUG, or with other sections only', function () {
    this.timeout(60_000)
    expect(run(undefined)).to.deep.equal([])
    expect(run('http,net')).to.deep.equal([])
  })

  it('is off in this process: the check is a constant read once at load', () => {
    expect(debugEnabled).to.equal(/\bkysely-replicated\b/i.test(process.env.NODE_DEBUG ?? ''))
  })
})
