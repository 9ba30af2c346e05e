import * as fs from 'node:fs'
import * as path from 'node:path'
import { expect } from 'chai'
import ts from 'typescript'

const SRC = path.resolve(import.meta.dirname, '../../src')

/** Every `.ts` file under `src/`, relative to it. */
function sourceFiles(dir = SRC): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name)
    if (entry.isDirectory()) return sourceFiles(full)
    return entry.name.endsWith('.ts') ? [path.relative(SRC, full)] : []
  })
}

/** The files of `src/` that `file` imports (type-only imports and re-exports included). */
function importsOf(file: string): string[] {
  const text = fs.readFileSync(path.join(SRC, file), 'utf8')
  const { importedFiles } = ts.preProcessFile(text, true, true)
  return importedFiles
    .map((i) => i.fileName)
    .filter((name) => name.startsWith('.'))
    .map((name) =>
      path
        .relative(SRC, path.resolve(path.dirname(path.join(SRC, file)), name))
        .replace(/\.js$/, '.ts'),
    )
}

const graph = new Map(sourceFiles().map((file) => [file, importsOf(file)]))

/** One import cycle reachable from `start`, as a list of files, or `undefined`. */
function findCycle(): string[] | undefined {
  const state = new Map<string, 'open' | 'done'>()
  const stack: string[] = []
  const visit = (file: string): string[] | undefined => {
    if (state.get(file) === 'done') return undefined
    if (state.get(file) === 'open') return [...stack.slice(stack.indexOf(file)), file]
    state.set(file, 'open')
    stack.push(file)
    for (const next of graph.get(file) ?? []) {
      const cycle = visit(next)
      if (cycle) return cycle
    }
    stack.pop()
    state.set(file, 'done')
    return undefined
  }
  for (const file of graph.keys()) {
    const cycle = visit(file)
    if (cycle) return cycle
  }
  return undefined
}

describe('architecture of src/', () => {
  it('has no import cycle between files, type-only imports included', () => {
    expect(findCycle(), 'an import cycle').to.equal(undefined)
  })

  it('finds a cycle when there is one (the check can fail)', () => {
    graph.set('a.ts', ['b.ts'])
    graph.set('b.ts', ['a.ts'])
    try {
      expect(findCycle()).to.deep.equal(['a.ts', 'b.ts', 'a.ts'])
    } finally {
      graph.delete('a.ts')
      graph.delete('b.ts')
    }
  })

  it('keeps the contracts of core/ free of runtime imports', () => {
    const contracts = [...graph.keys()].filter((f) => f.startsWith('core/contracts/'))
    expect(contracts).to.not.be.empty
    const runtimeFolders = ['core/', 'health/', 'mysql/', 'postgres/', 'observability/']
    for (const file of contracts) {
      for (const imported of graph.get(file)!) {
        const runtime =
          runtimeFolders.some((folder) => imported.startsWith(folder)) &&
          !imported.startsWith('core/contracts/') &&
          imported !== 'core/config.ts'
        expect(runtime, `${file} imports ${imported}`).to.equal(false)
      }
    }
  })
})
