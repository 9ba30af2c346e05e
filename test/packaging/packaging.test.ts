/**
 * The package as npm ships it, seen from its consumers. Builds, packs the tarball, installs it
 * into throw-away projects outside the repository (offline: the peers are linked from this
 * repository's node_modules, Kysely 0.28 from the `kysely-028` alias), and checks:
 * - the tarball's contents, and that every README/docs link resolves inside it;
 * - `require()` and `import` of the package on Kysely 0.29 and 0.28, with the lazily loaded
 *   modules (mysql2, pg, @opentelemetry/api) reached from both builds;
 * - `tsc --noEmit` of a consumer under moduleResolution node10, node16, nodenext (both module
 *   formats) and bundler, with skipLibCheck on and off, on both Kysely minors, each resolving
 *   the declarations of the build it runs.
 *
 * Slow (a minute or so): `npm run test:packaging`, run by `.ci/run`, not by `npm test`.
 * `KEEP_PACKAGING_TMP=1` keeps the consumer projects for a look.
 */
import { execFile } from 'node:child_process'
import { cp, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { availableParallelism, tmpdir } from 'node:os'
import { dirname, join, posix, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { expect } from 'chai'
import { limitConcurrency } from '../../src/health/concurrency-limit.js'

const root = fileURLToPath(new URL('../..', import.meta.url))
const fixtures = join(root, 'test/packaging/fixtures')
const tsc = join(root, 'node_modules/typescript/bin/tsc')

interface Run {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

function run(file: string, args: readonly string[], cwd: string): Promise<Run> {
  return new Promise((done) => {
    execFile(file, args, { cwd, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 1
      done({ code, stdout, stderr })
    })
  })
}

async function ok(file: string, args: readonly string[], cwd: string): Promise<string> {
  const result = await run(file, args, cwd)
  if (result.code !== 0) {
    throw new Error(
      `${file} ${args.join(' ')} failed (${result.code}):\n${result.stdout}${result.stderr}`,
    )
  }
  return result.stdout
}

/** The Kysely minors a consumer may have, and where this repository's node_modules has each. */
const kyselies = [
  { minor: '0.29', dir: 'kysely' },
  { minor: '0.28', dir: 'kysely-028' },
] as const

/** Peers linked into every consumer project besides Kysely. */
const peers = ['mysql2', 'pg', '@types/node', '@opentelemetry/api']

/** How a TypeScript consumer resolves modules, and which build's declarations it must get. */
interface TsSetup {
  readonly name: string
  readonly module: string
  readonly moduleResolution: string
  readonly type: 'module' | 'commonjs'
  readonly build: 'esm' | 'cjs'
}

const tsSetups: readonly TsSetup[] = [
  {
    name: 'node16-esm',
    module: 'node16',
    moduleResolution: 'node16',
    type: 'module',
    build: 'esm',
  },
  {
    name: 'node16-cjs',
    module: 'node16',
    moduleResolution: 'node16',
    type: 'commonjs',
    build: 'cjs',
  },
  {
    name: 'nodenext-esm',
    module: 'nodenext',
    moduleResolution: 'nodenext',
    type: 'module',
    build: 'esm',
  },
  {
    name: 'nodenext-cjs',
    module: 'nodenext',
    moduleResolution: 'nodenext',
    type: 'commonjs',
    build: 'cjs',
  },
  { name: 'bundler', module: 'esnext', moduleResolution: 'bundler', type: 'module', build: 'esm' },
  {
    name: 'node10',
    module: 'commonjs',
    moduleResolution: 'node10',
    type: 'commonjs',
    build: 'cjs',
  },
]

/**
 * Kysely 0.29 is ESM-only, and TypeScript's node16 mode cannot `require` an ES module: a
 * CommonJS consumer there cannot import Kysely itself (TS1479), whatever this package does.
 */
function supported(setup: TsSetup, minor: string): boolean {
  return !(setup.name === 'node16-cjs' && minor === '0.29')
}

/** GitHub's anchor for a Markdown heading. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[`*_]/g, '')
    .replace(/[^\p{L}\p{N} -]/gu, '')
    .replace(/ /g, '-')
}

/** Relative link targets of a Markdown file (code blocks skipped). */
function relativeLinks(markdown: string): string[] {
  const prose = markdown.replace(/```[\s\S]*?```/g, '')
  return [...prose.matchAll(/\]\(([^)\s]+)\)/g)]
    .map((m) => m[1]!)
    .filter((target) => !/^[a-z][a-z0-9+.-]*:/i.test(target))
}

let work: string
let tarball: string
let packed: string[]
/** The installed package (identical in every consumer project). */
let installed: string
const tsResults = new Map<string, Promise<Run>>()

function consumerDir(minor: string): string {
  return join(work, `kysely-${minor}`)
}

async function createConsumer(minor: string, kyselyDir: string): Promise<void> {
  const dir = consumerDir(minor)
  await mkdir(dir, { recursive: true })
  await writeFile(join(dir, 'package.json'), '{ "name": "consumer", "private": true }\n')
  await ok(
    'npm',
    [
      'install',
      '--offline',
      '--no-audit',
      '--no-fund',
      '--ignore-scripts',
      '--no-package-lock',
      '--legacy-peer-deps',
      tarball,
    ],
    dir,
  )
  // Linked after the install, which would prune links it did not make.
  for (const [name, target] of [['kysely', kyselyDir], ...peers.map((p) => [p, p])] as const) {
    const link = join(dir, 'node_modules', name)
    await mkdir(dirname(link), { recursive: true })
    await symlink(join(root, 'node_modules', target), link, 'dir')
  }
  for (const file of await readdir(fixtures)) {
    if (!file.endsWith('.ts')) await cp(join(fixtures, file), join(dir, file))
  }
  for (const setup of tsSetups) {
    const project = join(dir, setup.name)
    await mkdir(project)
    await cp(join(fixtures, 'consumer.ts'), join(project, 'consumer.ts'))
    await writeFile(join(project, 'package.json'), `${JSON.stringify({ type: setup.type })}\n`)
    const compilerOptions = {
      module: setup.module,
      moduleResolution: setup.moduleResolution,
      target: 'es2022',
      strict: true,
      noEmit: true,
      types: ['node'],
    }
    await writeFile(
      join(project, 'tsconfig.json'),
      `${JSON.stringify({ compilerOptions, files: ['consumer.ts'] }, null, 2)}\n`,
    )
  }
}

describe('the package as its consumers install it', () => {
  before(async function () {
    this.timeout(300_000)
    work = await mkdtemp(join(tmpdir(), 'kysely-replicated-packaging-'))
    await ok('npm', ['run', 'build'], root)
    const pack = JSON.parse(
      await ok('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', work], root),
    ) as [{ filename: string; files: { path: string }[] }]
    tarball = join(work, pack[0].filename)
    packed = pack[0].files.map((f) => f.path).sort()
    for (const { minor, dir } of kyselies) await createConsumer(minor, dir)
    installed = join(consumerDir('0.29'), 'node_modules/kysely-replicated')
    // The compilations are started here, a few at a time; each test awaits its own.
    const limit = limitConcurrency(Math.max(1, availableParallelism()))
    for (const { minor } of kyselies) {
      for (const setup of tsSetups.filter((s) => supported(s, minor))) {
        for (const skipLibCheck of [true, false]) {
          const project = join(consumerDir(minor), setup.name)
          const args = [
            tsc,
            '-p',
            'tsconfig.json',
            '--listFiles',
            '--skipLibCheck',
            `${skipLibCheck}`,
          ]
          const result = limit(() => run(process.execPath, args, project))
          result.catch(() => {})
          tsResults.set(`${minor} ${setup.name} ${skipLibCheck}`, result)
        }
      }
    }
  })

  after(async () => {
    await Promise.allSettled(tsResults.values())
    if (work !== undefined && process.env.KEEP_PACKAGING_TMP !== '1') {
      await rm(work, { recursive: true, force: true })
    }
  })

  describe('the packed tarball', () => {
    it('holds both builds with their declarations, LICENSE, README, CHANGELOG and docs, and no sources or tests', () => {
      for (const file of [
        'package.json',
        'LICENSE',
        'README.md',
        'CHANGELOG.md',
        'dist/esm/index.js',
        'dist/esm/index.d.ts',
        'dist/cjs/index.js',
        'dist/cjs/index.d.ts',
        'dist/cjs/package.json',
        'docs/routing.md',
        'docs/deployment.md',
      ]) {
        expect(packed, file).to.include(file)
      }
      const unexpected = packed.filter(
        (file) =>
          !/^(dist|docs)\//.test(file) && !file.match(/^[A-Z]+\.md$|^LICENSE$|^package\.json$/),
      )
      expect(unexpected).to.deep.equal([])
    })

    it('points main, module, types and every exports target at a packed file', async () => {
      const manifest = JSON.parse(await readFile(join(installed, 'package.json'), 'utf8'))
      const targets: string[] = [manifest.main, manifest.module, manifest.types]
      const collect = (value: unknown): void => {
        if (typeof value === 'string') targets.push(value)
        else if (value !== null && typeof value === 'object') Object.values(value).forEach(collect)
      }
      collect(manifest.exports)
      expect(manifest.exports['.'].import.types).to.equal('./dist/esm/index.d.ts')
      expect(manifest.exports['.'].require.types).to.equal('./dist/cjs/index.d.ts')
      for (const target of targets) expect(packed, target).to.include(posix.normalize(target))
    })

    it('marks dist/cjs as CommonJS, so Node and TypeScript read its .js and .d.ts files as CommonJS', async () => {
      const scope = JSON.parse(await readFile(join(installed, 'dist/cjs/package.json'), 'utf8'))
      expect(scope.type).to.equal('commonjs')
      const cjsIndex = await readFile(join(installed, 'dist/cjs/index.js'), 'utf8')
      expect(cjsIndex).to.match(/\brequire\(/)
      expect(cjsIndex).not.to.match(/^export /m)
    })

    it('has a declaration file beside every module of both builds', () => {
      const modules = packed.filter((f) => f.startsWith('dist/') && f.endsWith('.js'))
      expect(modules.length).to.be.greaterThan(20)
      const missing = modules.filter((f) => !packed.includes(f.replace(/\.js$/, '.d.ts')))
      expect(missing).to.deep.equal([])
      const esm = modules.filter((f) => f.startsWith('dist/esm/')).map((f) => f.slice(9))
      const cjs = modules.filter((f) => f.startsWith('dist/cjs/')).map((f) => f.slice(9))
      expect(cjs).to.deep.equal(esm)
    })

    it('needs nothing at run time beyond its peers, and its declarations use only Kysely entry points both minors have', async () => {
      const manifest = JSON.parse(await readFile(join(installed, 'package.json'), 'utf8'))
      expect(manifest.dependencies ?? {}).to.deep.equal({})
      const offending: string[] = []
      for (const file of packed.filter((f) => f.startsWith('dist/'))) {
        const text = await readFile(join(installed, file), 'utf8')
        if (/from ['"]kysely\/|require\(['"]kysely\/|['"]p-limit['"]/.test(text))
          offending.push(file)
      }
      expect(offending).to.deep.equal([])
    })

    it('resolves every relative link of the README and docs to a packed file (and heading)', async () => {
      const broken: string[] = []
      for (const page of packed.filter((f) => f.endsWith('.md'))) {
        const markdown = await readFile(join(installed, page), 'utf8')
        for (const link of relativeLinks(markdown)) {
          const [path = '', anchor] = link.split('#')
          const target = path === '' ? page : posix.normalize(posix.join(posix.dirname(page), path))
          if (!packed.includes(target)) {
            broken.push(`${page}: ${link} (no ${target} in the package)`)
            continue
          }
          if (anchor !== undefined && target.endsWith('.md')) {
            const text = await readFile(join(installed, target), 'utf8')
            const headings = [...text.matchAll(/^#{1,6} (.+)$/gm)].map((m) => slug(m[1]!))
            if (!headings.includes(anchor)) broken.push(`${page}: ${link} (no heading #${anchor})`)
          }
        }
      }
      expect(broken).to.deep.equal([])
    })
  })

  for (const { minor } of kyselies) {
    describe(`JavaScript consumers on Kysely ${minor}`, () => {
      const reports: Record<string, { exports: string[]; errors: string[] }> = {}

      const expectLoadedAndReached = (report: { exports: string[]; errors: string[] }) => {
        expect(report.exports).to.include.members([
          'ReplicatedMysqlDialect',
          'ReplicatedPostgresDialect',
        ])
        // mysql2, pg and @opentelemetry/api were loaded: the statements failed on the connection.
        expect(report.errors).to.have.length(2)
        for (const error of report.errors) expect(error).to.match(/ECONNREFUSED/)
      }

      // On Kysely 0.28, which ships CommonJS, the CommonJS build must also load without
      // require(esm), as on Node 20 before 20.19 (Kysely 0.29 itself needs require(esm)).
      const noRequireEsm =
        minor === '0.28' &&
        process.allowedNodeEnvironmentFlags.has('--no-experimental-require-module')
      it(`require() loads the CommonJS build${noRequireEsm ? ', without require(esm)' : ''}`, async () => {
        const args = [...(noRequireEsm ? ['--no-experimental-require-module'] : []), 'consumer.cjs']
        const out = await ok(process.execPath, args, consumerDir(minor))
        reports.cjs = JSON.parse(out)
        expectLoadedAndReached(reports.cjs!)
      })

      it('import loads the ES module build, with the same exports', async () => {
        const out = await ok(process.execPath, ['consumer.mjs'], consumerDir(minor))
        reports.esm = JSON.parse(out)
        expectLoadedAndReached(reports.esm!)
        expect(reports.esm!.exports).to.deep.equal(reports.cjs?.exports)
      })
    })

    describe(`TypeScript consumers on Kysely ${minor}`, () => {
      for (const setup of tsSetups.filter((s) => supported(s, minor))) {
        for (const skipLibCheck of [true, false]) {
          const title = `compile under ${setup.moduleResolution} (${setup.type === 'module' ? 'ESM' : 'CommonJS'}), skipLibCheck ${skipLibCheck}, with dist/${setup.build} declarations`
          it(title, async function () {
            this.timeout(300_000)
            const result = await tsResults.get(`${minor} ${setup.name} ${skipLibCheck}`)!
            const errors = result.stdout.split('\n').filter((line) => line.includes('error TS'))
            expect(errors, result.stdout + result.stderr).to.deep.equal([])
            expect(result.code).to.equal(0)
            const other = setup.build === 'esm' ? 'cjs' : 'esm'
            const files = result.stdout.split('\n').map((line) => resolve(line.trim()))
            const kyselyFiles = files.filter((f) => f.includes(`/node_modules/kysely-028/`))
            expect(kyselyFiles.length > 0, 'resolved Kysely 0.28').to.equal(minor === '0.28')
            expect(
              files.some((f) => f.endsWith(`kysely-replicated/dist/${setup.build}/index.d.ts`)),
            ).to.equal(true)
            expect(files.some((f) => f.includes(`kysely-replicated/dist/${other}/`))).to.equal(
              false,
            )
          })
        }
      }
    })
  }
})
