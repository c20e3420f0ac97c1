/**
 * The pass context (after TVM's PassContext): optimization level, disabled passes, and instruments that run before
 * and after every pass — verify, dump, timing, and a differential check against the reference interpreter.
 */
import { dtypeTolerance, isFloat } from '../ir/dtype.js';
import { KilnError } from '../ir/errors.js';
import type { Graph } from '../ir/graph.js';
import { interpret } from '../ir/interpret.js';
import { isStatic, type Shape } from '../ir/shape.js';
import { makeTensor, type Tensor } from '../ir/tensor.js';
import { printGraph } from '../ir/text.js';
import { verify } from '../ir/verify.js';

export interface PassResult {
  changed: boolean;
}

export interface Pass {
  readonly name: string;
  /** Lowest optimization level the pass runs at (1–3). */
  readonly minLevel: number;
  /** Rewrites `graph` in place; `changed` says whether it did anything. */
  run(graph: Graph, ctx: PassContext): PassResult;
}

/** Hooks around every pass; `index` counts the passes run so far in this pipeline. */
export interface Instrument {
  readonly name: string;
  /** Called before each enabled pass runs, with the graph it will get. */
  before?(pass: Pass, graph: Graph, index: number): void;
  /** Called after each enabled pass with the rewritten graph; throwing here stops the pipeline. */
  after?(pass: Pass, graph: Graph, result: PassResult, index: number): void;
}

export interface PassContextOptions {
  level?: number;
  disabled?: Iterable<string>;
  instruments?: Instrument[];
}

/** What a pipeline runs under: the optimization level, the passes disabled by name, and the instruments. */
export class PassContext {
  readonly level: number;
  readonly disabled: ReadonlySet<string>;
  readonly instruments: Instrument[];
  /**
   * Level defaults to 1 (0: no passes; 2 and 3 add the passes with that `minLevel`), nothing disabled, no instruments.
   *
   * @throws KilnError (code `attribute`, limit `opt`) for a level other than 0–3.
   */
  constructor(opts: PassContextOptions = {}) {
    this.level = opts.level ?? 1;
    if (![0, 1, 2, 3].includes(this.level)) {
      throw new KilnError('attribute', `unknown optimization level ${this.level}`, { limit: 'opt' });
    }
    this.disabled = new Set(opts.disabled ?? []);
    this.instruments = opts.instruments ?? [];
  }
  /** Whether `pass` runs under this context. */
  enabled(pass: Pass): boolean {
    return this.level >= pass.minLevel && !this.disabled.has(pass.name);
  }
}

/** A pass left a graph that does not verify. */
export class PassVerifyError extends KilnError {
  /** Wraps the verifier's error `cause` (code `verify`, same location), naming `pass` in the message. */
  constructor(
    readonly pass: string,
    cause: KilnError,
  ) {
    super('verify', `after pass ${pass}: ${cause.message}`, cause.location, { cause });
    this.name = 'PassVerifyError';
  }
}

/** Verify the graph after every pass; the error names the pass. */
export function verifyInstrument(): Instrument {
  return {
    name: 'verify',
    after(pass, graph) {
      try {
        verify(graph);
      } catch (e) {
        if (e instanceof KilnError) throw new PassVerifyError(pass.name, e);
        throw e;
      }
    },
  };
}

/**
 * Hand the IR text after every pass to `write` as `NN-passname.ir` (and the input as `00-input.ir`); browser-safe —
 * `dumpToFolder` (`passes/dump-folder.ts`, Node) writes them to a folder.
 */
export function dumpInstrument(write: (file: string, text: string) => void): Instrument {
  let wrote0 = false;
  const pad = (i: number) => String(i).padStart(2, '0');
  return {
    name: 'dump',
    before(_pass, graph) {
      if (wrote0) return;
      wrote0 = true;
      write('00-input.ir', printGraph(graph));
    },
    after(pass, graph, _r, index) {
      write(`${pad(index + 1)}-${pass.name.replace(/[^A-Za-z0-9_.-]/g, '_')}.ir`, printGraph(graph));
    },
  };
}

export interface PassTiming {
  pass: string;
  ms: number;
  changed: boolean;
  nodesBefore: number;
  nodesAfter: number;
}

/** Per-pass wall time and node-count delta, collected in `report`. */
export function timingInstrument(): Instrument & { readonly report: PassTiming[] } {
  const report: PassTiming[] = [];
  let t0 = 0;
  let n0 = 0;
  return {
    name: 'timing',
    report,
    before(_pass, graph) {
      n0 = graph.nodes.length;
      t0 = performance.now();
    },
    after(pass, graph, r) {
      report.push({
        pass: pass.name,
        ms: performance.now() - t0,
        changed: r.changed,
        nodesBefore: n0,
        nodesAfter: graph.nodes.length,
      });
    },
  };
}

/** The first pass that changed what the graph computes, with the output and element that differ. */
export class PassMismatchError extends KilnError {
  /** Code `runtime`, located at the output tensor that differs; `detail` names the element and both values. */
  constructor(
    readonly pass: string,
    readonly output: string,
    readonly detail: string,
  ) {
    super('runtime', `pass ${pass} changed the numbers: ${detail}`, { tensor: output });
    this.name = 'PassMismatchError';
  }
}

export interface DifferentialOptions {
  /** Values for symbolic input dims (`{ batch: 2, seq: 3 }`); every symbolic dim needs one. */
  dims?: Readonly<Record<string, number>>;
  seed?: number;
  /** Random feed sets per comparison (default 2). */
  trials?: number;
}

function mismatch(got: Tensor, ref: Tensor): string | undefined {
  if (got.dtype !== ref.dtype) return `dtype ${got.dtype} vs ${ref.dtype}`;
  if (got.shape.join() !== ref.shape.join()) return `shape [${got.shape}] vs [${ref.shape}]`;
  // a pass may reassociate (fold, fuse): the long-reduction allowance of DESIGN.md's conventions
  const { rel, abs } = dtypeTolerance(ref.dtype, true);
  for (let i = 0; i < ref.data.length; i++) {
    const g = got.data[i]!;
    const r = ref.data[i]!;
    if (Number.isNaN(r) || Number.isNaN(g)) {
      if (Number.isNaN(r) && Number.isNaN(g)) continue;
      return `element ${i}: ${g} vs ${r} before`;
    }
    if (g === r) continue;
    if (!(Math.abs(g - r) <= abs + rel * Math.abs(r))) return `element ${i}: ${g} vs ${r} before`;
  }
  return undefined;
}

/** xorshift32 in [0, 1): feeds are reproducible from the seed. */
function rng(seed: number): () => number {
  let a = seed >>> 0 || 0x9e3779b9;
  return () => {
    a ^= a << 13;
    a >>>= 0;
    a ^= a >>> 17;
    a ^= a << 5;
    a >>>= 0;
    return a / 4294967296;
  };
}

function randomFeeds(graph: Graph, dims: Readonly<Record<string, number>>, next: () => number): Record<string, Tensor> {
  const feeds: Record<string, Tensor> = {};
  for (const v of graph.inputs) {
    const shape = (v.type.shape as Shape).map((d) => {
      if (typeof d === 'number') return d;
      const n = dims[d];
      if (n === undefined) {
        throw new KilnError('shape', `differential instrument needs a value for dim '${d}'`, { tensor: v.name });
      }
      return n;
    });
    if (!isStatic(shape)) throw new KilnError('shape', 'unbound dim', { tensor: v.name });
    const n = shape.reduce((a, c) => a * c, 1);
    const dt = v.type.dtype;
    // floats in [-2, 2); integers small and non-negative (they are often indices); bools half and half
    const gen = isFloat(dt)
      ? () => next() * 4 - 2
      : dt === 'bool'
        ? () => (next() < 0.5 ? 1 : 0)
        : () => Math.floor(next() * 3);
    feeds[v.name] = makeTensor(dt, shape, Array.from({ length: n }, gen));
  }
  return feeds;
}

/**
 * Interpret the graph before and after each pass on the same random feeds and throw a PassMismatchError naming
 * the first pass whose result differs beyond the dtype's tolerance. Defaults: 2 feed sets (`trials`), seed 1.
 *
 * @throws PassMismatchError naming the pass and the output that differs.
 * @throws KilnError (code `shape`) naming the input when a symbolic dim has no value in `opts.dims`.
 */
export function differentialInstrument(opts: DifferentialOptions = {}): Instrument {
  let feeds: Record<string, Tensor>[] = [];
  let expected: Record<string, Tensor>[] = [];
  return {
    name: 'differential',
    before(_pass, graph) {
      if (feeds.length === 0) {
        const next = rng(opts.seed ?? 1);
        feeds = Array.from({ length: opts.trials ?? 2 }, () => randomFeeds(graph, opts.dims ?? {}, next));
      }
      expected = feeds.map((f) => interpret(graph, f));
    },
    after(pass, graph) {
      feeds.forEach((f, t) => {
        let got: Record<string, Tensor>;
        try {
          got = interpret(graph, f);
        } catch (e) {
          throw new PassMismatchError(pass.name, '', `the graph no longer runs: ${(e as Error).message}`);
        }
        for (const [name, ref] of Object.entries(expected[t]!)) {
          const g = got[name];
          const why = g ? mismatch(g, ref) : 'output is gone';
          if (why) throw new PassMismatchError(pass.name, name, `output ${name}: ${why}`);
        }
      });
    },
  };
}
