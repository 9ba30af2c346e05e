/**
 * Child process of the "exits by itself" test: creates a replicated dialect (with the default
 * background prober), runs one query, destroys the Kysely instance, and must then exit without
 * `process.exit`. Prints how long after `destroy()` the process exited.
 */
import { performance } from 'node:perf_hooks'
import { Kysely, sql } from 'kysely'

const [engine, json] = process.argv.slice(2)
const { primary, replica } = JSON.parse(json ?? '{}')
let destroyedAt = 0
process.on('exit', () => {
  process.stdout.write(
    `${JSON.stringify({ exitAfterDestroyMs: performance.now() - destroyedAt })}\n`,
  )
})

async function main() {
  let db: Kysely<any>
  if (engine === 'postgres') {
    const { default: pg } = await import('pg')
    const mod = (await import('../../src/index.js')) as Record<string, any>
    const Dialect = mod.ReplicatedPostgresDialect
    db = new Kysely<any>({
      dialect: new Dialect({
        primary: { pool: new pg.Pool(primary) },
        replicas: [{ name: 'replica-1', pool: new pg.Pool(replica) }],
      }),
    })
  } else {
    const { createPool } = await import('mysql2')
    const { ReplicatedMysqlDialect } = await import('../../src/index.js')
    db = new Kysely<any>({
      dialect: new ReplicatedMysqlDialect({
        primary: { pool: createPool(primary) },
        replicas: [{ name: 'replica-1', pool: createPool(replica) }],
      }),
    })
  }
  await sql`select 1 as one`.execute(db)
  await db.destroy()
  destroyedAt = performance.now()
}

main().catch((error) => {
  console.error(error)
  process.exitCode = 1
})
