/**
 * The session front door: metadata, `auto`, verification at compile, warmup with progress, the kernel list.
 */
import { afterAll, describe, expect, it } from 'vitest';
import '../../ir/ops/index.js';
import { GraphBuilder } from '../../ir/builder.js';
import { KilnError } from '../../ir/errors.js';
import { parseGraph } from '../../ir/text.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import { isDeviceTensor, type DeviceTensor } from '../../src/runtime/device-tensor.js';
import { compile, type BackendName, type Session } from '../../src/session.js';
import { deviceBackends } from '../helpers/device-backends.js';

const devices = await deviceBackends();
const sessions: Session[] = [];
afterAll(() => sessions.forEach((s) => s.dispose()));

function mlp() {
  const b = new GraphBuilder('mlp');
  const x = b.input('x', 'f32', ['batch', 4]);
  const w = b.weight('w', makeTensor('f32', [4, 3], [1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1]));
  b.output(b.op('relu', [b.op('matmul', [x, w])]), 'y');
  return b.build();
}

describe('compile and session metadata', () => {
  it('inputs / outputs with names, dtypes and shapes', async () => {
    const s = await compile(mlp());
    sessions.push(s);
    expect(s.inputNames).toEqual(['x']);
    expect(s.outputNames).toEqual(['y']);
    expect(s.inputs[0]).toEqual({ name: 'x', dtype: 'f32', shape: ['batch', 4] });
    expect(s.outputs[0]).toEqual({ name: 'y', dtype: 'f32', shape: ['batch', 3] });
  });

  it('a wrongly declared type in IR text is caught by compile, naming the node', async () => {
    const text = `graph "bad" {
  input %x: f32[2,3]
  %y: f32[2,4] = neg(%x) @n0
  output %y
}`;
    const g = parseGraph(text);
    const e = await compile(g).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(e).toBeInstanceOf(KilnError);
    expect((e as KilnError).message).toContain('n0');
  });

  it('unknown backends and optimization levels are typed errors listing the valid ones', async () => {
    await expect(compile(mlp(), { backend: 'gpu' as BackendName })).rejects.toThrow(/auto, reference, webgpu/);
    await expect(compile(mlp(), { opt: 7 })).rejects.toThrow(/0, 1, 2, 3/);
  });

  it("backend 'auto' picks the best device here and says which", async () => {
    const s = await compile(mlp(), { backend: 'auto' });
    sessions.push(s);
    // no GPU on the test machines: cuda is never the answer here, webgpu is when an adapter exists
    expect(s.backend).toBe(devices.includes('webgpu') ? 'webgpu' : 'reference');
    const y = (await s.run({ x: makeTensor('f32', [1, 4], [1, -2, 3, 4]) }))['y']!;
    expect(Array.from(y.data)).toEqual([5, 2, 7]);
  });
});

describe.each(devices)('%s: kernels built up front', (backend) => {
  it('compile({ shapes }) builds every kernel with progress; the first run compiles nothing new', async () => {
    const progress: [number, number, string][] = [];
    const s = await compile(mlp(), {
      backend,
      opt: 0, // unoptimized, so the matmul and the relu are kernels of their own (fused, they are one)
      shapes: { x: [5, 4] },
      onProgress: (done, total, k) => progress.push([done, total, k]),
    });
    sessions.push(s);
    const built = s.kernels().map((k) => k.name);
    expect(built.length).toBeGreaterThanOrEqual(2); // matmul and relu at least
    expect(s.kernels().map((k) => k.op)).toEqual(expect.arrayContaining(['matmul', 'relu']));
    expect(progress.length).toBe(built.length);
    expect(progress.at(-1)![0]).toBe(progress.at(-1)![1]);
    const y = (await s.run({ x: makeTensor('f32', [5, 4], new Float32Array(20).fill(1)) }))['y']!;
    expect(Array.from(y.data.slice(0, 3))).toEqual([2, 2, 2]);
    expect(s.kernels().map((k) => k.name)).toEqual(built);
  });

  it('warmup needs shapes for symbolic inputs and knows its inputs', async () => {
    const s = await compile(mlp(), { backend, opt: 0 });
    sessions.push(s);
    await expect(s.warmup()).rejects.toThrow(/'x'/);
    await expect(s.warmup({ z: [1, 4] })).rejects.toThrow(/'z'/);
    await s.warmup({ x: [2, 4] });
    expect(s.kernels().length).toBeGreaterThanOrEqual(2);
  });
});

describe.each(['reference' as BackendName, ...devices])('%s: outputs kept on the device', (backend) => {
  it('runKeep returns device tensors that feed back, read back, and refuse misuse with typed errors', async () => {
    const b = new GraphBuilder('acc');
    const x = b.input('x', 'f32', [3]);
    const acc = b.input('acc', 'f32', [3]);
    b.output(b.op('add', [acc, x]), 'next');
    b.output(b.op('neg', [x]), 'neg');
    const g = b.build();
    const s = await compile(g, { backend });
    const other = await compile(g, { backend });
    sessions.push(s, other);
    const x1 = makeTensor('f32', [3], [1, 2, 3]);
    let acc0: DeviceTensor | Tensor = makeTensor('f32', [3], [0, 0, 0]);
    for (let i = 0; i < 3; i++) {
      const out = await s.runKeep({ x: x1, acc: acc0 }, ['next']);
      expect('onDevice' in out['next']!).toBe(true);
      expect(Array.from((out['neg'] as Tensor).data)).toEqual([-1, -2, -3]);
      if (isDeviceTensor(acc0)) acc0.dispose();
      acc0 = out['next']!;
    }
    const kept = acc0 as DeviceTensor;
    expect(Array.from((await kept.read()).data)).toEqual([3, 6, 9]);
    if (backend === 'webgpu') {
      // sessions on one GPUDevice share device tensors (GPU-resident chaining, test/device/gpu-io.test.ts)
      expect(Array.from((await other.run({ x: x1, acc: kept }))['next']!.data)).toEqual([4, 8, 12]);
    } else await expect(other.run({ x: x1, acc: kept })).rejects.toThrow(/session that made it/);
    kept.dispose();
    await expect(s.run({ x: x1, acc: kept })).rejects.toThrow(/disposed/);
    await expect(kept.read()).rejects.toThrow(/disposed/);
  });

  it('runKeep with `outputs` computes and returns only those (the other outputs launch no kernel)', async () => {
    const b = new GraphBuilder('two');
    const x = b.input('x', 'f32', [3]);
    const shared = b.op('exp', [x]);
    b.output(b.op('neg', [shared]), 'a');
    b.output(b.op('sqrt', [b.op('abs', [shared])]), 'b');
    const s = await compile(b.build(), { backend, opt: 0 });
    sessions.push(s);
    const x1 = makeTensor('f32', [3], [0, 1, 2]);
    const a = await s.runKeep({ x: x1 }, [], ['a']);
    expect(Object.keys(a)).toEqual(['a']);
    [-1, -Math.E, -Math.exp(2)].forEach((v, i) => expect((a['a'] as Tensor).data[i]).toBeCloseTo(v, 5));
    // exp and neg only: abs / sqrt never ran
    if (backend !== 'reference')
      expect(
        s
          .kernels()
          .map((k) => k.op)
          .sort(),
      ).toEqual(['exp', 'neg']);
    const both = await s.runKeep({ x: x1 }, ['b'], ['a', 'b']);
    expect(Object.keys(both).sort()).toEqual(['a', 'b']);
    expect(isDeviceTensor(both['b']!)).toBe(true);
    (both['b'] as DeviceTensor).dispose();
    await expect(s.runKeep({ x: x1 }, [], ['c'])).rejects.toThrow(KilnError);
    await expect(s.runKeep({ x: x1 }, [], ['c'])).rejects.toMatchObject({ code: 'runtime', location: { tensor: 'c' } });
  });
});
