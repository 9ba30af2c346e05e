import { context, trace } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base'

/**
 * Registers, for the enclosing mocha `describe`, a global tracer provider that keeps finished
 * spans in memory (reset before each test) and an AsyncLocalStorage context manager; both are
 * removed after. Returns the exporter to read the spans from.
 */
export function useInMemoryTracing(): InMemorySpanExporter {
  const exporter = new InMemorySpanExporter()
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })
  const contextManager = new AsyncLocalStorageContextManager()
  before(() => {
    trace.setGlobalTracerProvider(provider)
    context.setGlobalContextManager(contextManager.enable())
  })
  after(async () => {
    await provider.shutdown()
    trace.disable()
    context.disable()
  })
  beforeEach(() => exporter.reset())
  return exporter
}
