/**
 * kiln/dsl custom ops: `defineOp` registers an op whose float64 reference is the JS function, lowered on every
 * device backend (compared with the reference, outputs poisoned), fusing into elementwise groups and — the issue's
 * check — into a matmul's epilogue as ONE kernel; typed errors for bad graphs and names; ONNX import from a custom
 * domain.
 */
import { describe, expect, it } from 'vitest';
import '../../ir/ops/index.js';
import { GraphBuilder } from '../../ir/builder.js';
import { KilnError, VerifyError } from '../../ir/errors.js';
import { interpret } from '../../ir/interpret.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import { optimize } from '../../passes/manager.js';
import * as dsl from '../../src/dsl/index.js';
import { defineOp, sigmoid, type f32 } from '../../src/dsl/index.js';
import { exportOnnx } from '../../src/frontends/onnx/export.js';
import { importOnnx, importOnnxModel } from '../../src/frontends/onnx/import.js';
import { Executor } from '../../src/runtime/executor.js';
import { RecordingBackend } from '../../src/runtime/recording.js';
import { checkAgainstReference } from '../helpers/backends.js';
import { deviceBackends } from '../helpers/device-backends.js';
import { onnxModelOf } from '../helpers/onnx-model.js';

const backends = await deviceBackends();

const swishBias = defineOp('t_swish_bias', '(x: f32, b: f32) => x * sigmoid(x) + b');
const loopy = defineOp(
  't_loopy',
  `(x: f32, s: f32): f32 => {
    let acc = 0;
    for (let i = 0; i < 5; i++) {
      if (x > f32(i) - 2) {
        acc += x * f32(i);
      } else {
        acc -= s;
      }
      if (acc > 6) return acc * 0.5;
    }
    const k = 2;
    return acc * k + Math.max(x, s, 0.25);
  }`,
);
const intOp = defineOp(
  't_ints',
  `(n: i32, m: u32, x: f32): i32 => {
    let r: i32 = n * 3 - i32(m);
    if (x > 0 && n % 2 === 0) { r = r ^ 5; }
    return idiv(r, 2) + (n & 6);
  }`,
);
const predicate = defineOp('t_pred', '(x: f32, on: bool): bool => on ? x > 0.5 : !(x > -0.5)');
const infinite = defineOp('t_inf', '(x: f32) => max(min(x, Infinity), -Infinity) + (x > 100 ? -Infinity : 0.5)');
const ALPHA = 0.2;
// a closure: the function object reads ALPHA, the kernel gets it from `constants`
const leaky = defineOp('t_leaky', (x: f32) => (x > 0 ? x : ALPHA * x), {
  inputs: ['f32'],
  output: 'f32',
  constants: { ALPHA },
});
const scaled = defineOp('t_scaled', '(x: f32) => x * SCALE + BIAS', { constants: { SCALE: 0.5, BIAS: -1 } });
const half = defineOp('t_half', '(h: f16, x: f32): f16 => h * 3 + clamp(x, -1, 1)');

const seq = (n: number, f: (i: number) => number) => Array.from({ length: n }, (_, i) => f(i));

describe('defineOp: the reference is the JS function', () => {
  it('swish + bias: hand-computed values (rounded to f32)', () => {
    const b = new GraphBuilder('g');
    const x = b.input('x', 'f32', [4]);
    const bias = b.input('b', 'f32', [1]);
    b.output(swishBias.apply(b, x, bias), 'y');
    const feeds = { x: makeTensor('f32', [4], [-2, 0, 1, 3]), b: makeTensor('f32', [1], [0.5]) };
    const y = interpret(b.build(), feeds)['y']!;
    const want = [-2 / (1 + Math.exp(2)) + 0.5, 0.5, 1 / (1 + Math.exp(-1)) + 0.5, 3 / (1 + Math.exp(-3)) + 0.5];
    expect(Array.from(y.data)).toEqual(want.map(Math.fround));
  });

  it('loops, ifs and early returns: the loop evaluated by hand', () => {
    // x = 3, s = 1: i = 0..4, x > i - 2 always; acc = 0, 0, 3, 9 → 9 > 6 at i = 3 → 4.5
    // x = -5, s = 1: never x > i - 2; acc = -5 → -10 + max(-5, 1, 0.25) = -9
    const b = new GraphBuilder('g');
    const x = b.input('x', 'f32', [2]);
    const s = b.input('s', 'f32', [1]);
    b.output(loopy.apply(b, x, s), 'y');
    const y = interpret(b.build(), { x: makeTensor('f32', [2], [3, -5]), s: makeTensor('f32', [1], [1]) })['y']!;
    expect(Array.from(y.data)).toEqual([4.5, -9]);
  });

  it('constants: a closure and a source string see the same values as their kernels', () => {
    expect([leaky.js(-2), leaky.js(3)]).toEqual([-0.4, 3]);
    expect(scaled.js(4)).toBe(1);
  });

  it('integers and booleans in and out', () => {
    const b = new GraphBuilder('g');
    const n = b.input('n', 'i32', [3]);
    const m = b.input('m', 'u32', [3]);
    const x = b.input('x', 'f32', [3]);
    const on = b.input('on', 'bool', [3]);
    b.output(intOp.apply(b, n, m, x), 'r');
    b.output(predicate.apply(b, x, on), 'p');
    const out = interpret(b.build(), {
      n: makeTensor('i32', [3], [4, -7, 2]),
      m: makeTensor('u32', [3], [1, 2, 3]),
      x: makeTensor('f32', [3], [1, 1, -1]),
      on: makeTensor('bool', [3], [1, 0, 1]),
    });
    // n=4: r = 11, x>0 and even → 11^5 = 14 → 7 + (4&6=4) = 11; n=-7: r = -23 → trunc(-11.5) = -11 + (-7&6 = 0) = -11;
    // n=2: r = 3 (x < 0) → 1 + (2&6 = 2) = 3
    expect(Array.from(out['r']!.data)).toEqual([11, -11, 3]);
    // on: x > 0.5 (1 > 0.5 true); off: !(1 > -0.5) false; on: -1 > 0.5 false
    expect(Array.from(out['p']!.data)).toEqual([1, 0, 0]);
  });

  it('a function object: types from the options, intrinsics through the module (as compiled by the test runner)', () => {
    const gated = defineOp('t_fnobj', (x: f32, g: f32) => dsl.select(g > 0, x * sigmoid(g), dsl.tanh(x)), {
      inputs: ['f32', 'f32'],
      output: 'f32',
    });
    expect(gated.dsl.params.map((p) => p.type)).toEqual(['f32', 'f32']);
    expect(gated.js(2, 1)).toBeCloseTo(2 / (1 + Math.exp(-1)), 12);
    expect(gated.js(2, -1)).toBeCloseTo(Math.tanh(2), 12);
  });
});

describe('defineOp: typed errors', () => {
  it('a wrong input dtype is a VerifyError naming the node and the parameter', () => {
    const b = new GraphBuilder('g');
    const x = b.input('x', 'f16', [2]);
    expect(() => swishBias.apply(b, x, x)).toThrow(VerifyError);
    expect(() => swishBias.apply(b, x, x)).toThrow(/input 0 \('x'\) is f16, the DSL function takes f32/);
  });

  it('a custom op needs an input, and apply checks the input count', () => {
    expect(() => defineOp('t_noargs', '() => 1')).toThrow(/needs at least one input/);
    const b = new GraphBuilder('g');
    const x = b.input('x', 'f32', [2]);
    expect(() => swishBias.apply(b, x)).toThrow(/t_swish_bias takes 2 input\(s\), got 1/);
  });

  it('names: an identifier, not taken', () => {
    expect(() => defineOp('t_swish_bias', '(x: f32) => x')).toThrow(/op t_swish_bias is already defined/);
    expect(() => defineOp('add', '(x: f32) => x')).toThrow(KilnError);
    expect(() => defineOp('bad name', '(x: f32) => x')).toThrow(/must be an identifier/);
  });

  it('a DSL error in defineOp carries the op name and the user file position', () => {
    let err: unknown;
    try {
      defineOp('t_bad', '(x: f32) =>\n  x * n', { file: 'model.ts', line: 40, column: 5 });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(dsl.DslError);
    const e = err as dsl.DslError;
    expect([e.file, e.line, e.column, e.location.op]).toEqual(['model.ts', 41, 7, 't_bad']);
  });
});

function feedsOf(g: ReturnType<GraphBuilder['build']>, seed: number): Record<string, Tensor> {
  const feeds: Record<string, Tensor> = {};
  g.inputs.forEach((v, j) => {
    const shape = v.type.shape as number[];
    const n = shape.reduce((a, d) => a * d, 1);
    const dt = v.type.dtype;
    const vals = seq(n, (i) => {
      const r = Math.sin(i * 12.9898 + (seed + j) * 78.233) * 43758.5453;
      const u = r - Math.floor(r); // [0, 1)
      if (dt === 'bool') return u > 0.5 ? 1 : 0;
      if (dt === 'i32') return Math.floor(u * 41) - 20;
      if (dt === 'u32') return Math.floor(u * 40);
      return (u - 0.5) * 8;
    });
    feeds[v.name] = makeTensor(dt, shape, vals);
  });
  return feeds;
}

describe.skipIf(backends.length === 0)('custom ops on the device backends match the reference', () => {
  for (const backend of backends) {
    it(`${backend}: each op alone and fused, f32 / f16 / i32 / u32 / bool`, async () => {
      const build = (fuse: boolean) => {
        const b = new GraphBuilder('g');
        const x = b.input('x', 'f32', [3, 67]);
        const s = b.input('s', 'f32', [67]);
        const n = b.input('n', 'i32', [3, 67]);
        const m = b.input('m', 'u32', [1, 67]);
        const on = b.input('on', 'bool', [3, 1]);
        const h = b.input('h', 'f16', [3, 67]);
        const y = loopy.apply(b, swishBias.apply(b, x, s), s);
        b.output(fuse ? y : b.op('identity', [y]), 'y');
        b.output(intOp.apply(b, n, m, x), 'r');
        b.output(predicate.apply(b, x, on), 'p');
        b.output(half.apply(b, h, x), 'hh');
        b.output(infinite.apply(b, x), 'inf');
        b.output(scaled.apply(b, leaky.apply(b, x)), 'leaky');
        return b.build();
      };
      for (const fuse of [true, false]) {
        const g = build(fuse);
        for (const seed of [1, 2]) {
          expect(await checkAgainstReference(g, feedsOf(g, seed), { backend, opt: fuse ? 1 : 0 })).toEqual([]);
        }
      }
    }, 120_000);

    if (backend === 'webgpu') {
      it('webgpu without shader-f16: an f16 custom op stored as f32 matches the reference', async () => {
        const b = new GraphBuilder('g');
        const h = b.input('h', 'f16', [3, 67]);
        const x = b.input('x', 'f32', [3, 67]);
        b.output(half.apply(b, h, x), 'y');
        const g = b.build();
        expect(await checkAgainstReference(g, feedsOf(g, 5), { backend, disableF16: true })).toEqual([]);
      }, 120_000);
    }

    it(`${backend}: a tiled matmul → a custom op with loops and early returns: ONE kernel, the reference`, async () => {
      const b = new GraphBuilder('g');
      const a = b.input('a', 'f32', [96, 64]);
      const w = b.input('w', 'f32', [64, 80]);
      const s = b.input('s', 'f32', [80]);
      b.output(loopy.apply(b, b.matmul(a, w), s), 'y');
      const g = b.build();
      const rec = new RecordingBackend();
      const feeds = feedsOf(g, 4);
      await new Executor(optimize(g), rec).run(feeds);
      expect(rec.launches.map((l) => l.op)).toEqual(['fused_contraction']);
      expect(rec.launches[0]!.kernel).toMatch(/tiled/); // the register-blocked template runs the epilogue per element
      expect(await checkAgainstReference(g, feeds, { backend })).toEqual([]);
    }, 120_000);

    it(`${backend}: matmul → custom op (with a bias) runs as ONE kernel and matches the reference`, async () => {
      const b = new GraphBuilder('g');
      const a = b.input('a', 'f32', [2, 33, 40]);
      const w = b.input('w', 'f32', [40, 24]);
      const bias = b.input('bias', 'f32', [24]);
      b.output(swishBias.apply(b, b.matmul(a, w), bias), 'y');
      const g = b.build();
      const opt = optimize(g);
      expect(opt.nodes.map((n) => n.op)).toEqual(['fused_contraction']);
      const rec = new RecordingBackend();
      const feeds = feedsOf(g, 3);
      await new Executor(opt, rec).run(feeds);
      expect(rec.launches.map((l) => l.op)).toEqual(['fused_contraction']);
      expect(await checkAgainstReference(g, feeds, { backend })).toEqual([]);
    }, 120_000);
  }
});

describe('ONNX import and export of a custom-domain node', () => {
  it('a node of the op’s domain becomes the custom op', () => {
    defineOp('t_onnx_gate', '(x: f32, y: f32) => x * sigmoid(y)', { onnx: { domain: 'com.example', opType: 'Gate' } });
    const model = onnxModelOf({
      opset: 17,
      nodes: [
        {
          name: 'gate',
          opType: 'Gate',
          domain: 'com.example',
          inputs: ['x', 'y'],
          outputs: ['z'],
          attributes: new Map(),
        },
      ],
      inputs: [
        { name: 'x', shape: [3] },
        { name: 'y', shape: [3] },
      ],
      outputs: ['z'],
    });
    model.opsetImport.push({ domain: 'com.example', version: 1 });
    const { graph } = importOnnxModel(model);
    expect(graph.nodes.map((n) => n.op)).toEqual(['t_onnx_gate']);
    const z = interpret(graph, { x: makeTensor('f32', [3], [1, 2, 3]), y: makeTensor('f32', [3], [0, 0, 0]) })['z']!;
    expect(Array.from(z.data)).toEqual([0.5, 1, 1.5]);

    // and back: exported in the same domain, re-imported as the same op
    const again = importOnnx(exportOnnx(graph));
    expect(again.graph.nodes.map((n) => n.op)).toEqual(['t_onnx_gate']);
    expect(again.opsets.get('com.example')).toBe(1);
  });
});
