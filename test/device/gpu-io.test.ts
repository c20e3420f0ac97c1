/**
 * GPU-resident I/O (issue 16): a session on the caller's own GPUDevice, the caller's GPUBuffers as feeds, outputs kept
 * on the device and bound by the caller (DeviceTensor.gpuBuffer), and two sessions chained buffer to buffer with no
 * readback between them — counted by `session.transfers()`. Results equal the float64 reference of the composition.
 */
/// <reference types="@webgpu/types" />
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../ir/builder.js';
import '../../ir/ops/index.js';
import { interpret } from '../../ir/interpret.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import { compile, type Session } from '../../src/session.js';
import { acquireGpu, BufferUsage, MapMode } from '../../src/runtime/webgpu/device.js';
import { skipWebgpu } from '../helpers/backends.js';
import { rng } from '../../src/util-random.js';

/** a [2, 8] f32 → relu(a · W1 + b) [2, 16] */
function first() {
  const b = new GraphBuilder('first');
  const r = rng(1);
  const x = b.input('x', 'f32', [2, 8]);
  const w = b.weight(
    'w1',
    makeTensor(
      'f32',
      [8, 16],
      Array.from({ length: 128 }, () => r() - 0.5),
    ),
  );
  const bias = b.weight(
    'b1',
    makeTensor(
      'f32',
      [16],
      Array.from({ length: 16 }, () => r() - 0.5),
    ),
  );
  b.output(b.op('relu', [b.op('add', [b.op('matmul', [x, w]), bias])]), 'h');
  return b.build();
}

/** h [2, 16] → softmax(h · W2) [2, 4], plus an embedding lookup checked on the device: ids [2] → rows of E */
function second() {
  const b = new GraphBuilder('second');
  const r = rng(2);
  const h = b.input('h', 'f32', [2, 16]);
  const ids = b.input('ids', 'i32', [2]);
  const w = b.weight(
    'w2',
    makeTensor(
      'f32',
      [16, 4],
      Array.from({ length: 64 }, () => r() - 0.5),
    ),
  );
  const e = b.weight(
    'e',
    makeTensor(
      'f32',
      [5, 4],
      Array.from({ length: 20 }, () => r() - 0.5),
    ),
  );
  const logits = b.op('add', [b.op('matmul', [h, w]), b.op('gather', [e, ids], { axis: 0 })]);
  b.output(b.op('softmax', [logits], { axis: -1 }), 'p');
  return b.build();
}

const X = makeTensor(
  'f32',
  [2, 8],
  Array.from({ length: 16 }, (_, i) => Math.sin(i)),
);
const IDS = makeTensor('i32', [2], [3, 1]);

function expected(): Tensor {
  const h = interpret(first(), { x: X })['h']!;
  return interpret(second(), { h, ids: IDS })['p']!;
}

function close(a: Tensor, b: Tensor) {
  expect(a.shape).toEqual(b.shape);
  for (let i = 0; i < b.data.length; i++) {
    const x = Number(a.data[i]);
    expect(Number.isFinite(x)).toBe(true);
    expect(Math.abs(x - Number(b.data[i]))).toBeLessThan(1e-5);
  }
}

const noGpu = await skipWebgpu();

describe.skipIf(noGpu)('GPU-resident I/O on the caller’s GPUDevice', () => {
  it('chains two sessions buffer to buffer with zero readbacks between them', async () => {
    const ctx = await acquireGpu();
    const device = ctx.device; // "the caller's" device: kiln gets it through compile({ device })
    const s1: Session = await compile(first(), { device, opt: 1 });
    const s2: Session = await compile(second(), { device, opt: 1 });
    try {
      expect(s1.backend).toBe('webgpu');
      const ids = s2.upload(IDS, 'ids');
      const before = [s1.transfers(), s2.transfers()];
      const { h } = await s1.runKeep({ x: X }, ['h']);
      const { p } = await s2.runKeep({ h: h!, ids }, ['p']);
      const after = [s1.transfers(), s2.transfers()];
      // the chain read nothing back: no tensor data and no check flags (deferred to the next readback)
      for (let i = 0; i < 2; i++) {
        expect(after[i]!.readbacks - before[i]!.readbacks).toBe(0);
        expect(after[i]!.flagReads - before[i]!.flagReads).toBe(0);
      }
      // the result, read once at the end, equals the reference of the composition and the path through the host
      const pd = p as { read(): Promise<Tensor>; gpuBuffer?: GPUBuffer };
      expect(pd.gpuBuffer).toBeDefined();
      close(await pd.read(), expected());
      expect(s2.transfers().readbacks - before[1]!.readbacks).toBe(1);
      const viaHost = (await s2.run({ h: (await s1.run({ x: X }))['h']!, ids: IDS }))['p']!;
      close(viaHost, expected());
    } finally {
      s1.dispose();
      s2.dispose();
    }
  });

  it("takes the caller's GPUBuffer as a feed and lets the caller copy an output buffer", async () => {
    const { device } = await acquireGpu();
    const s1 = await compile(first(), { device });
    try {
      expect(s1.storageOf('f32')).toBe('f32');
      const mine = device.createBuffer({
        size: 64,
        usage: BufferUsage.STORAGE | BufferUsage.COPY_DST | BufferUsage.COPY_SRC,
      });
      device.queue.writeBuffer(mine, 0, new Float32Array(X.data as Float32Array));
      const x = s1.fromGpuBuffer(mine, { dtype: 'f32', shape: [2, 8], name: 'x' });
      const { h } = await s1.runKeep({ x }, ['h']);
      const out = (h as { gpuBuffer?: GPUBuffer }).gpuBuffer!;
      // the caller's own WebGPU work reads kiln's output buffer: copy 128 bytes to a mappable buffer
      const staging = device.createBuffer({ size: 128, usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST });
      const enc = device.createCommandEncoder();
      enc.copyBufferToBuffer(out, 0, staging, 0, 128);
      device.queue.submit([enc.finish()]);
      await staging.mapAsync(MapMode.READ);
      const got = makeTensor('f32', [2, 16], new Float32Array(staging.getMappedRange().slice(0)));
      staging.unmap();
      close(got, interpret(first(), { x: X })['h']!);
      expect(s1.transfers().readbacks).toBe(0);
      // kiln never frees the caller's buffer: disposing the wrapper leaves it usable
      x.dispose();
      device.queue.writeBuffer(mine, 0, new Float32Array(16));
      mine.destroy();
      staging.destroy();
    } finally {
      s1.dispose();
    }
  });

  it('bad GPU-resident inputs are typed errors naming the tensor', async () => {
    const { device } = await acquireGpu();
    const s = await compile(first(), { device });
    const ref = await compile(first(), { backend: 'reference' });
    try {
      const small = device.createBuffer({ size: 16, usage: BufferUsage.STORAGE });
      expect(() => s.fromGpuBuffer(small, { dtype: 'f32', shape: [2, 8], name: 'x' })).toThrow(
        /x.*16 bytes|16 bytes.*x/s,
      );
      const noStorage = device.createBuffer({ size: 64, usage: BufferUsage.COPY_DST });
      expect(() => s.fromGpuBuffer(noStorage, { dtype: 'f32', shape: [2, 8], name: 'x' })).toThrow(/STORAGE/);
      expect(() => ref.fromGpuBuffer(small, { dtype: 'f32', shape: [4], name: 'x' })).toThrow(/webgpu/);
      await expect(compile(first(), { device, backend: 'cuda-emu' })).rejects.toThrow(/GPUDevice/);
      small.destroy();
      noStorage.destroy();
    } finally {
      s.dispose();
      ref.dispose();
    }
  });

  it('a failed device-side check in a chained run surfaces at the next readback, naming the node', async () => {
    const { device } = await acquireGpu();
    const s1 = await compile(first(), { device });
    const s2 = await compile(second(), { device });
    try {
      const { h } = await s1.runKeep({ x: X }, ['h']);
      const bad = makeTensor('i32', [2], [3, 9]); // row 9 of a 5-row table
      const { p } = await s2.runKeep({ h: h!, ids: bad }, ['p']);
      await expect((p as { read(): Promise<Tensor> }).read()).rejects.toThrow(
        /earlier run[\s\S]*gather|gather[\s\S]*earlier run/,
      );
      // and the session is usable afterwards
      close((await s2.run({ h: (await s1.run({ x: X }))['h']!, ids: IDS }))['p']!, expected());
    } finally {
      s1.dispose();
      s2.dispose();
    }
  });

  it('session metadata as onnxruntime-web describes it', async () => {
    const s = await compile(second(), { backend: 'reference' });
    expect(s.inputMetadata).toEqual([
      { name: 'h', isTensor: true, type: 'float32', shape: [2, 16] },
      { name: 'ids', isTensor: true, type: 'int32', shape: [2] },
    ]);
    expect(s.outputMetadata[0]).toMatchObject({ name: 'p', type: 'float32', shape: [2, 4] });
    s.dispose();
  });
});
