/**
 * A decode loop on one device session: model_gpt2_past run 5 steps, each step's `present_*` fed back as the next
 * step's `past_*`, one new token per step (the argmax of the reference's logits). Every step equals the float64
 * reference. Positions, the past length and every shape computation change each step: the stale-cache bug a
 * generation loop would hit first. Each step launches 75 kernels (6 per layer: the default pipeline's fusion on the
 * graph as imported, symbolic shapes and all; the target is ≤ 100).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { interpret } from '../../ir/interpret.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import { importOnnx } from '../../src/frontends/onnx/import.js';
import type { DeviceTensor } from '../../src/runtime/device-tensor.js';
import { compile, type Session } from '../../src/session.js';
import { compareWithReference, tolerance } from '../helpers/backends.js';
import { deviceBackends } from '../helpers/device-backends.js';
import { CONFORMANCE } from '../helpers/paths.js';

const backends = await deviceBackends();
const { graph } = importOnnx(readFileSync(join(CONFORMANCE, 'models/model_gpt2_past/model.onnx')));
const sessions: Session[] = [];
afterAll(() => sessions.forEach((s) => s.dispose()));

function argmaxLast(logits: Tensor): number {
  const vocab = logits.shape[logits.shape.length - 1]!;
  const off = logits.data.length - vocab;
  let best = 0;
  for (let v = 1; v < vocab; v++) if (logits.data[off + v]! > logits.data[off + best]!) best = v;
  return best;
}

describe.each(backends)('%s: gpt2 with past, 5 decode steps on one session', (backend) => {
  it('equals the reference at every step', async () => {
    const s = await compile(graph, { backend, poison: true });
    sessions.push(s);
    const launched: string[] = [];
    type K = { kernel: { name: string } };
    const be = (s as unknown as { executor: { backend: { run(x: readonly K[]): unknown } } }).executor.backend;
    const run = be.run.bind(be);
    be.run = (x) => (launched.push(...x.map((k) => k.kernel.name)), run(x));
    const layers = graph.inputs.filter((v) => v.name.startsWith('past_')).length;
    expect(layers).toBe(12);
    // a random short prompt state: past of length 3 with small random values
    let pastLen = 3;
    const past: Record<string, Tensor> = {};
    for (let l = 0; l < layers; l++) {
      past[`past_${l}`] = makeTensor(
        'f32',
        [2, 1, 2, pastLen, 2],
        Array.from({ length: 2 * 2 * pastLen * 2 }, () => Math.random() * 2 - 1),
      );
    }
    let token = 7;
    const inputNames = new Set(graph.inputs.map((v) => v.name));
    for (let step = 0; step < 5; step++) {
      const feeds: Record<string, Tensor> = { input_ids: makeTensor('i64', [1, 1], [token]), ...past };
      if (inputNames.has('position_ids')) feeds['position_ids'] = makeTensor('i64', [1, 1], [pastLen]);
      if (inputNames.has('attention_mask')) {
        feeds['attention_mask'] = makeTensor('f32', [1, pastLen + 1], new Array(pastLen + 1).fill(1));
      }
      const ref = interpret(graph, feeds);
      launched.length = 0;
      const got = await s.run(feeds);
      // the optimized graph, shapes symbolic as imported: 6 kernels per layer, 75 per step (797 before fusion)
      expect(launched.length, `step ${step}: ${launched.join(' ')}`).toBeLessThanOrEqual(100);
      expect(launched, launched.join(' ')).toHaveLength(75);
      for (const [k, r] of Object.entries(ref)) {
        const m = compareWithReference(k, got[k]!, r, tolerance(r.dtype, true));
        expect(m, `step ${step}: ${m?.reason}`).toBeUndefined();
      }
      pastLen++;
      for (let l = 0; l < layers; l++) {
        const present = got[`present_${l}`]!;
        expect(present.shape).toEqual([2, 1, 2, pastLen, 2]);
        past[`past_${l}`] = present;
      }
      token = argmaxLast(ref[graph.outputs[0]!.name]!);
    }
  });
});

describe.each(['reference' as const, ...backends])('%s: the KV cache stays on the device (runKeep)', (backend) => {
  it('present_* kept on the device and fed back: same logits as the reference, no cache bytes cross per step', async () => {
    const s = await compile(graph, { backend });
    sessions.push(s);
    const layers = 12;
    // count host↔device bytes through the backend (device sessions only)
    type Io = { write(b: unknown, bytes: Uint8Array): void; read(b: unknown, n: number): Promise<Uint8Array> };
    const be = (s as unknown as { executor?: { backend: Io } }).executor?.backend;
    let up = 0;
    let down = 0;
    let biggest = 0;
    if (be) {
      const w = be.write.bind(be);
      const r = be.read.bind(be);
      be.write = (buf: unknown, bytes: Uint8Array) => (
        (up += bytes.byteLength),
        (biggest = Math.max(biggest, bytes.byteLength)),
        w(buf, bytes)
      );
      be.read = async (buf: unknown, n: number) => ((down += n), r(buf, n));
    }
    let hostPast: Record<string, Tensor> = {};
    for (let l = 0; l < layers; l++) {
      hostPast[`past_${l}`] = makeTensor(
        'f32',
        [2, 1, 2, 2, 2],
        Array.from({ length: 16 }, () => Math.random() * 2 - 1),
      );
    }
    let devPast: Record<string, Tensor | DeviceTensor> = { ...hostPast };
    const keep = Array.from({ length: layers }, (_, l) => `present_${l}`);
    let token = 3;
    for (let step = 0; step < 4; step++) {
      const ids = makeTensor('i64', [1, 1], [token]);
      up = down = biggest = 0;
      const got = await s.runKeep({ input_ids: ids, ...devPast }, keep);
      if (be && step > 0) {
        // the token id, the error-flag word, and this export's host-computed shape scalars (4–16 bytes each): nothing
        // of the growing cache (64+ bytes per layer)
        expect(biggest).toBeLessThanOrEqual(16);
        expect(up).toBeLessThanOrEqual(256);
        expect(down).toBeLessThanOrEqual(64 + 4 * got[graph.outputs[0]!.name]!.shape.reduce((a, b) => a * b, 1));
      }
      const ref = interpret(graph, { input_ids: ids, ...hostPast });
      const logits = graph.outputs[0]!.name;
      const m = compareWithReference(logits, got[logits] as Tensor, ref[logits]!, tolerance('f32', true));
      expect(m, `step ${step}: ${m?.reason}`).toBeUndefined();
      for (const k of Object.values(devPast)) if ('onDevice' in k) k.dispose();
      devPast = {};
      hostPast = {};
      for (let l = 0; l < layers; l++) {
        const p = got[`present_${l}`] as DeviceTensor;
        expect(p.onDevice).toBe(true);
        devPast[`past_${l}`] = p;
        hostPast[`past_${l}`] = ref[`present_${l}`]!;
      }
      token = argmaxLast(ref[logits]!);
    }
    // the kept cache reads back equal to the reference's
    const last = await (devPast['past_0'] as DeviceTensor).read();
    expect(compareWithReference('past_0', last, hostPast['past_0']!)).toBeUndefined();
  });
});
