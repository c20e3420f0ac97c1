/// <reference types="@webgpu/types" />
/**
 * Compiling WGSL into compute pipelines, cached by the caller's structural key plus the device's capabilities
 * fingerprint. A shader that does not compile raises a {@link WgslCompileError} naming the kernel, the line:column
 * and the offending source line.
 */
import { KilnError } from '../../../ir/errors.js';
import type { GpuContext } from './device.js';

/**
 * How a binding of group 0 is declared in WGSL, for an explicit pipeline layout:
 * `'read'` = `var<storage, read>`, `'read_write'` = `var<storage, read_write>`, `'uniform'` = `var<uniform>`.
 */
export type BindingKind = 'read' | 'read_write' | 'uniform';

export interface KernelSource {
  /** Structural hash of the kernel (its IR), from the caller; the cache adds the capabilities fingerprint. */
  key: string;
  wgsl: string;
  /** Entry point name; default 'main'. */
  entryPoint?: string;
  /** Human-readable name used in error messages and as the GPU object label. */
  label: string;
  /**
   * Binding kinds of group 0 by binding index, the uniform included (e.g. `['read', 'read', 'read_write',
   * 'uniform']`). Given: an explicit pipeline layout is made, so bindings the shader does not use are still allowed.
   * Left out: layout 'auto', where every binding {@link encodeRun} passes must be statically used by the entry point
   * (an auto layout leaves out bindings the entry point does not use, and a bind group with extra entries fails).
   */
  bindings?: readonly BindingKind[];
  /** Values for WGSL `override` constants. */
  constants?: Record<string, number>;
}

export interface WgslDiagnostic {
  type: 'error' | 'warning' | 'info';
  /** 1-based line and column in the WGSL source (0 when the compiler gave no position). */
  line: number;
  column: number;
  message: string;
  /** The source line the diagnostic points at ('' without a position). */
  sourceLine: string;
}

/** A WGSL shader failed to compile or its pipeline failed to validate. */
export class WgslCompileError extends KilnError {
  readonly kernel: string;
  readonly diagnostics: WgslDiagnostic[];
  /** Position of the first error (0 when unknown). */
  readonly line: number;
  readonly column: number;
  constructor(kernel: string, message: string, diagnostics: WgslDiagnostic[], code: 'runtime' | 'limit' = 'runtime') {
    const first = diagnostics.find((d) => d.type === 'error');
    super(code, message, code === 'limit' ? { limit: limitInMessage(message) ?? 'device limit' } : {});
    this.name = 'WgslCompileError';
    this.kernel = kernel;
    this.diagnostics = diagnostics;
    this.line = first?.line ?? 0;
    this.column = first?.column ?? 0;
  }
}

/** Dawn's wording for exceeded compute limits → the WebGPU limit name. */
const LIMIT_PATTERNS: [RegExp, string][] = [
  [/workgroup storage/i, 'maxComputeWorkgroupStorageSize'],
  [/invocations/i, 'maxComputeInvocationsPerWorkgroup'],
  [/storage buffers/i, 'maxStorageBuffersPerShaderStage'],
  [/uniform buffers/i, 'maxUniformBuffersPerShaderStage'],
];

/** The name of the device limit an error message says was exceeded, or undefined when it is not about a limit. */
export function limitInMessage(message: string): string | undefined {
  const named = /\b(max[A-Z][A-Za-z0-9]+)\b/.exec(message)?.[1];
  if (named) return named;
  if (!/(larger than|exceeds?|greater than|more than|over) the (max|limit)|maximum allowed|\blimit\b/i.test(message)) {
    return undefined;
  }
  // "workgroup_size(2048, 1, 1) that exceeds the maximum allowed (1024, 1024, 1024)"
  const wg = /workgroup_size\((\d+),\s*(\d+),\s*(\d+)\)[^(]*\((\d+),\s*(\d+),\s*(\d+)\)/.exec(message);
  if (wg) {
    const dim = [0, 1, 2].find((d) => Number(wg[1 + d]) > Number(wg[4 + d]));
    if (dim !== undefined) return `maxComputeWorkgroupSize${'XYZ'[dim]}`;
  }
  for (const [re, name] of LIMIT_PATTERNS) if (re.test(message)) return name;
  return 'device limit';
}

function formatDiagnostic(d: WgslDiagnostic): string {
  if (d.line === 0) return `${d.type}: ${d.message}`;
  const gutter = `${d.line} | `;
  const caret = ' '.repeat(gutter.length + Math.max(0, d.column - 1)) + '^';
  return `${d.type} at ${d.line}:${d.column}: ${d.message}\n  ${gutter}${d.sourceLine}\n  ${caret}`;
}

function toDiagnostic(m: GPUCompilationMessage, lines: string[]): WgslDiagnostic {
  const line = m.lineNum ?? 0;
  return {
    type: m.type,
    line,
    column: m.linePos ?? 0,
    message: m.message.trim(),
    sourceLine: line > 0 ? (lines[line - 1] ?? '') : '',
  };
}

interface CacheEntry {
  wgsl: string;
  entryPoint: string;
  pipeline: Promise<GPUComputePipeline>;
}

/** Explicit bind group layouts of pipelines compiled with {@link KernelSource.bindings}. */
const explicitLayouts = new WeakMap<GPUComputePipeline, GPUBindGroupLayout>();

/**
 * The bind group layout of group 0 of a pipeline made by {@link compileKernel} (explicit, or the auto layout).
 * @internal Used by dispatch.
 */
export function bindGroupLayoutOf(pipeline: GPUComputePipeline): GPUBindGroupLayout {
  let layout = explicitLayouts.get(pipeline);
  if (!layout) {
    layout = pipeline.getBindGroupLayout(0);
    explicitLayouts.set(pipeline, layout);
  }
  return layout;
}

/** A per-device pipeline cache; `key` + capabilities fingerprint → pipeline (the same object on every hit). */
export class PipelineCache {
  private readonly ctx: GpuContext;
  private readonly entries = new Map<string, CacheEntry>();
  hits = 0;
  misses = 0;

  constructor(ctx: GpuContext) {
    this.ctx = ctx;
  }

  get size(): number {
    return this.entries.size;
  }

  /** The full cache key of a kernel key on this device. */
  cacheKey(key: string): string {
    return `${key}|${this.ctx.fingerprint}`;
  }

  has(key: string): boolean {
    return this.entries.has(this.cacheKey(key));
  }

  /** The cached pipeline, or compiles it (concurrent requests for one key share one compilation). */
  async get(src: KernelSource): Promise<GPUComputePipeline> {
    // Everything up to the first await runs synchronously, so concurrent requests for one key find the entry.
    this.ctx.check(`compiling kernel '${src.label}'`);
    const k = this.cacheKey(src.key);
    const entryPoint = src.entryPoint ?? 'main';
    const hit = this.entries.get(k);
    if (hit) {
      if (hit.wgsl !== src.wgsl || hit.entryPoint !== entryPoint) {
        throw new KilnError(
          'runtime',
          `pipeline cache key collision: kernel '${src.label}' has key '${src.key}' already used by different WGSL`,
        );
      }
      this.hits++;
      return hit.pipeline;
    }
    this.misses++;
    const pipeline = createPipeline(this.ctx, src, entryPoint);
    this.entries.set(k, { wgsl: src.wgsl, entryPoint, pipeline });
    pipeline.catch(() => this.entries.delete(k));
    return pipeline;
  }

  clear(): void {
    this.entries.clear();
  }
}

const defaultCaches = new WeakMap<GpuContext, PipelineCache>();

/** The context's default pipeline cache (made on first use). */
export function pipelineCache(ctx: GpuContext): PipelineCache {
  let cache = defaultCaches.get(ctx);
  if (!cache) defaultCaches.set(ctx, (cache = new PipelineCache(ctx)));
  return cache;
}

/**
 * Compiles (or fetches from the context's cache) a compute pipeline.
 * @throws WgslCompileError (code 'runtime', or 'limit' when a device limit is exceeded) naming the kernel label,
 *   line:column and source line.
 */
export function compileKernel(ctx: GpuContext, src: KernelSource): Promise<GPUComputePipeline> {
  return pipelineCache(ctx).get(src);
}

const KIND_TO_LAYOUT: Record<BindingKind, GPUBufferBindingLayout> = {
  read: { type: 'read-only-storage' },
  read_write: { type: 'storage' },
  uniform: { type: 'uniform' },
};

async function createPipeline(ctx: GpuContext, src: KernelSource, entryPoint: string): Promise<GPUComputePipeline> {
  const device = ctx.device;
  const lines = src.wgsl.split('\n');
  const label = src.label;
  // Error scopes are a device-wide stack: every push is popped before the next await, so concurrent compilations
  // never see each other's errors.
  device.pushErrorScope('validation');
  const module = device.createShaderModule({ code: src.wgsl, label });
  const moduleScope = device.popErrorScope();
  const info = await module.getCompilationInfo();
  const diagnostics = info.messages.map((m) => toDiagnostic(m, lines));
  const scopeError = await moduleScope;
  const errors = diagnostics.filter((d) => d.type === 'error');
  if (errors.length || scopeError) {
    const body = errors.length ? errors.map(formatDiagnostic).join('\n') : scopeError!.message.trim();
    throw new WgslCompileError(label, `WGSL of kernel '${label}' does not compile:\n${body}`, diagnostics);
  }

  let layout: GPUPipelineLayout | 'auto' = 'auto';
  let bgl: GPUBindGroupLayout | undefined;
  if (src.bindings) {
    device.pushErrorScope('validation');
    bgl = device.createBindGroupLayout({
      label: `${label}-bgl`,
      entries: src.bindings.map((kind, binding) => ({
        binding,
        visibility: 0x4 /* GPUShaderStage.COMPUTE */,
        buffer: KIND_TO_LAYOUT[kind],
      })),
    });
    layout = device.createPipelineLayout({ label: `${label}-layout`, bindGroupLayouts: [bgl] });
    const layoutError = await device.popErrorScope();
    if (layoutError) {
      throw new WgslCompileError(
        label,
        `bind group layout of kernel '${label}' is invalid: ${layoutError.message.trim()}`,
        diagnostics,
        limitInMessage(layoutError.message) ? 'limit' : 'runtime',
      );
    }
  }
  let pipeline: GPUComputePipeline;
  try {
    // Validation errors of the async form reject this promise (a GPUPipelineError) instead of reaching a scope.
    pipeline = await device.createComputePipelineAsync({
      label,
      layout,
      compute: { module, entryPoint, ...(src.constants ? { constants: src.constants } : {}) },
    });
  } catch (e) {
    const msg = (e instanceof Error ? e.message : String(e)).trim();
    throw new WgslCompileError(
      label,
      `compute pipeline of kernel '${label}' (entry point '${entryPoint}') is invalid:\n${msg}`,
      diagnostics,
      limitInMessage(msg) ? 'limit' : 'runtime',
    );
  }
  if (bgl) explicitLayouts.set(pipeline, bgl);
  ctx.check(`compiling kernel '${label}'`);
  return pipeline;
}
