/**
 * `kiln inspect`: the launches of one run (on the recording backend, no device) with their nodes, fused ops, FLOPs and
 * bytes, and the totals. Expected numbers are worked out here from the model's shapes, not by the code under test.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { optimize } from '../../passes/manager.js';
import { main } from '../../src/cli.js';
import { nodeFlops } from '../../src/cost.js';
import { inspectModel, layerIndex, loadModel, type InspectReport } from '../../src/inspect.js';
import { CONFORMANCE, hasShared } from '../helpers/paths.js';

const D512 = join(CONFORMANCE, 'models/model_decoder_block_d512/model.onnx');
const GPT2 = join(CONFORMANCE, 'models/model_gpt2_past/model.onnx');
const GPT2_DIMS = 'batch_size=1,seq_len=3';
const STORIES = join(CONFORMANCE, '../models/stories260K.bin');
const tmp = mkdtempSync(join(tmpdir(), 'kiln-inspect-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function kiln(...args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const status = await main(args, { out: (t) => (stdout += t), err: (t) => (stderr += t) });
  return { status, stdout, stderr };
}

/** A total line of the text report, e.g. `kernels per run: 7`. */
const line = (text: string, label: string) => new RegExp(`^${label}: (.*)$`, 'm').exec(text)?.[1];

describe('cost model', () => {
  it('matmul / gemm / einsum: 2 FLOPs per multiply-add, gemm adds C once per output', () => {
    expect(
      nodeFlops(
        'matmul',
        {},
        {
          inputs: [
            [3, 4, 5],
            [5, 6],
          ],
          outputs: [[3, 4, 6]],
        },
      ),
    ).toBe(2 * 3 * 4 * 5 * 6);
    const gemm = { inputs: [[5, 4], [5, 6], [6]], outputs: [[4, 6]] };
    expect(nodeFlops('gemm', { transA: true }, gemm)).toBe(2 * 4 * 5 * 6 + 4 * 6);
    const ein = {
      inputs: [
        [2, 3, 4],
        [2, 4, 5],
      ],
      outputs: [[2, 3, 5]],
    };
    expect(nodeFlops('einsum', { equation: 'bij,bjk->bik' }, ein)).toBe(2 * 2 * 3 * 4 * 5);
    expect(
      nodeFlops(
        'einsum',
        { equation: '...ij,jk->...ik' },
        {
          ...ein,
          inputs: [
            [2, 3, 4],
            [4, 5],
          ],
        },
      ),
    ).toBe(2 * 2 * 3 * 4 * 5);
  });

  it('attention counts Q·Kᵀ and P·V over past + new keys, plus the softmax; movement is free', () => {
    // 4-D: B=1, Hq=2, S=3, D=4; K/V 5 new keys and 7 past
    const shapes = {
      inputs: [[1, 2, 3, 4], [1, 2, 5, 4], [1, 2, 5, 4], undefined, [1, 2, 7, 4], [1, 2, 7, 4]],
      outputs: [[1, 2, 3, 4]],
    };
    const T = 12;
    expect(nodeFlops('attention', {}, shapes)).toBe(2 * 1 * 2 * 3 * T * (4 + 4) + 5 * 1 * 2 * 3 * T);
    expect(nodeFlops('transpose', {}, { inputs: [[4, 5]], outputs: [[5, 4]] })).toBe(0);
    expect(nodeFlops('add', {}, { inputs: [[4, 5], [5]], outputs: [[4, 5]] })).toBe(20);
  });

  it('layer names: h.N., layers.N., blocks.N', () => {
    expect(['h.0.attn.weight', 'model.layers.3.mlp', 'blocks.2', 'ln_f.weight', 'w_qkv'].map(layerIndex)).toEqual([
      0,
      3,
      2,
      undefined,
      undefined,
    ]);
  });
});

describe.skipIf(!hasShared)('kiln inspect on the conformance models', () => {
  let d512: InspectReport;

  it('d512 block at the default level, one-kernel attention: 5 kernels, their ops, FLOPs and bytes', async () => {
    d512 = await inspectModel(loadModel(D512), { caps: { attentionSchedule: 'one-kernel' } });
    expect(d512.opt).toBe(1);
    expect(d512.kernels.map((k) => k.op)).toEqual([
      'fused_contraction', // ln_1 + QKV
      'attention',
      'fused_contraction', // out projection + bias + residual
      'fused_contraction', // ln_2 + fc1 + bias + gelu
      'fused_contraction', // fc2 + bias + residual
    ]);
    const [qkv, attn, proj, fc1, fc2] = d512.kernels;
    // LN(x [1,128,512]) · w_qkv [512,1536] + β·w_qkv + b_qkv, f32: the norm rides on the product (its cost 8·S·E)
    const [S, E, H] = [128, 512, 1536];
    expect(qkv!.covers).toEqual(['layer_norm', 'matmul', 'add', 'add']);
    expect(qkv!.flops).toBe(8 * S * E + 2 * S * E * H + 2 * S * H);
    // x, γ, the weights, β·W and the bias; the normed activation never exists
    expect(qkv!.bytesRead).toBe(4 * (S * E + E + E * H + H + H));
    expect(qkv!.bytesWritten).toBe(4 * S * H);
    expect(proj!.flops).toBe(2 * S * E * E + 2 * S * E); // bias and residual epilogue
    expect(fc1!.covers).toEqual(['layer_norm', 'matmul', 'add', 'add', 'gelu']);
    expect(fc1!.flops).toBe(8 * S * E + 2 * S * E * 2048 + 3 * S * 2048);
    expect(fc2!.flops).toBe(2 * S * 2048 * E + 2 * S * E);
    // the split of qkv is a view: attention reads q, k, v (one third of the qkv buffer each) and the mask once
    expect(d512.views).toEqual([{ node: 'Split_3', op: 'split' }]);
    expect(attn!.bytesRead).toBe(4 * (3 * S * E + S * S));
    const heads = Number(loadModel(D512).nodes.find((n) => n.op === 'attention')?.attrs['q_num_heads'] ?? 8);
    expect(attn!.flops).toBe(2 * heads * S * S * (E / heads + E / heads) + 5 * heads * S * S);
    expect(d512.flops).toBe(d512.kernels.reduce((a, k) => a + k.flops!, 0));
    expect(d512.layers).toBeUndefined();
  });

  it('d512: bytes moved ≥ the minimum (weights, input and output once); liveness peak ≤ allocated peak', async () => {
    const g = optimize(loadModel(D512)); // the gelu / scale scalars are gone into recognized ops
    // the weights (f32; the i64 constants are reshape / split shapes, used on the host), x and y
    const values = [...g.constants.filter((c) => c.type.dtype === 'f32'), ...g.inputs, ...g.outputs];
    expect(new Set([...g.inputs, ...g.outputs].map((v) => v.type.dtype))).toEqual(new Set(['f32']));
    const minimum = 4 * values.reduce((a, v) => a + (v.type.shape as number[]).reduce((x, y) => x * y, 1), 0);
    expect(d512.bytes.minimum).toBe(minimum);
    expect(d512.bytes.moved).toBe(d512.bytes.read + d512.bytes.written);
    expect(d512.bytes.moved).toBeGreaterThanOrEqual(minimum);
    expect(d512.peak.byLiveness).toBeLessThanOrEqual(d512.peak.asAllocated);
    expect(d512.peak.byLiveness).toBeGreaterThanOrEqual(minimum);
  });

  it('d512 at --opt 0 launches more kernels and moves more bytes for the same FLOPs ± epilogues', async () => {
    const r = await kiln('inspect', D512, '--opt', '0');
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('');
    const n = Number(line(r.stdout, 'kernels per run'));
    expect(n).toBeGreaterThan(7);
    const j = JSON.parse((await kiln('inspect', D512, '--opt', '0', '--json')).stdout) as InspectReport;
    expect(j.kernels).toHaveLength(n);
    expect(j.bytes.moved).toBeGreaterThan(d512.bytes.moved);
    expect(j.peak.asAllocated).toBeGreaterThan(d512.peak.asAllocated);
  });

  it('the text report lists every launch and the totals; --json is the same report', async () => {
    const r = await kiln('inspect', D512, '--attention', 'one-kernel');
    expect([r.status, r.stderr]).toEqual([0, '']);
    expect(line(r.stdout, 'kernels per run')).toBe('5');
    // the default (auto) schedule runs the attention as scores, softmax and P·V: 7 launches (the target ≤ 7)
    const auto = await kiln('inspect', D512);
    expect(line(auto.stdout, 'kernels per run')).toBe('7');
    expect((await kiln('inspect', D512, '--attention', 'sideways')).status).not.toBe(0);
    expect(r.stdout).toMatch(/Add_2 \(fused_contraction\)\s+layer_norm\+matmul\+add\+add\s+202\.2 MFLOP/);
    expect(line(r.stdout, 'movement nodes bound as views \\(no kernel\\)')).toBe('1 (split 1)');
    expect(line(r.stdout, 'bytes moved')).toMatch(/vs minimum/);
    expect(line(r.stdout, 'peak device memory')).toMatch(/as allocated .* by liveness/);
    expect(r.stdout).not.toMatch(/kernels per layer/);
    const j = await kiln('inspect', D512, '--json', '--attention', 'one-kernel');
    expect(j.status).toBe(0);
    const report = JSON.parse(j.stdout) as InspectReport;
    expect(report.kernels).toHaveLength(5);
    expect(report).toEqual(JSON.parse(JSON.stringify(d512)));
  });

  it('GPT-2 with --dims: 12 layers with the same kernels each, and the few outside them', async () => {
    const r = await kiln('inspect', GPT2, '--dims', GPT2_DIMS);
    expect([r.status, r.stderr]).toEqual([0, '']);
    expect(line(r.stdout, 'kernels per layer')).toMatch(/^12 layers, \d+ each; \d+ outside the layers$/);
    const j = JSON.parse((await kiln('inspect', GPT2, '--dims', GPT2_DIMS, '--json')).stdout) as InspectReport;
    expect(j.inputs.find((v) => v.name === 'input_ids')?.shape).toEqual([1, 1]);
    expect(j.inputs.find((v) => v.name === 'past_0')?.shape).toEqual([2, 1, 2, 3, 2]);
    expect(j.layers!.count).toBe(12);
    expect(j.kernels).toHaveLength(Number(line(r.stdout, 'kernels per run')));
    expect(j.layers!.perLayer.reduce((a, b) => a + b, 0) + j.layers!.outside).toBe(j.kernels.length);
    // the targets: ≤ 8 kernels per decoder layer, ≤ 100 per run (797 before the optimizer)
    expect(j.kernels.length).toBeLessThanOrEqual(100);
    expect(j.layers!.perLayer.every((n) => n <= 8)).toBe(true);
    expect(j.kernels.filter((k) => k.layer === 0).map((k) => k.op)).toEqual([
      'fused_contraction', // ln_1 + c_attn: Q, K, V in one product (split as views)
      'fused_injective', // present = stack(past_k ++ k, past_v ++ v); K, V read back as views
      'attention', // one kernel: scores, mask, online softmax, P·V
      'fused_contraction', // c_proj + bias + residual
      'fused_contraction', // ln_2 + c_fc + bias + GELU
      'fused_contraction', // mlp c_proj + bias + residual
    ]);
    // the layer norms ride on the projections after them; only the final ln_f (a graph output) runs on its own
    const norms = j.kernels.filter((k) => k.op === 'layer_norm');
    expect(norms.map((k) => k.layer)).toEqual([-1]);
    expect(j.kernels.filter((k) => k.covers?.includes('layer_norm')).length).toBe(25);
    expect(j.bytes.moved).toBeGreaterThanOrEqual(j.bytes.minimum);
    expect(j.peak.byLiveness).toBeLessThanOrEqual(j.peak.asAllocated);
  });

  it('--dot draws the graph as imported and as optimized side by side; --svg renders it', async () => {
    const [dot, svg] = [join(tmp, 'd512.dot'), join(tmp, 'd512.svg')];
    const r = await kiln('inspect', D512, '--dot', dot, '--svg', svg);
    expect([r.status, r.stderr]).toEqual([0, '']);
    const text = readFileSync(dot, 'utf8');
    expect(text).toMatch(/^digraph "decoder_block" \{/);
    expect(text).toMatch(/subgraph "cluster_before" \{\n {4}label="as imported \(\d+ nodes\)";/);
    expect(text).toMatch(/subgraph "cluster_after" \{\n {4}label="optimized \(\d+ nodes\)";/);
    expect(text).toMatch(/"before\/Add_2" \[label="add\\nAdd_2"\];/);
    expect(text).toMatch(/"after\/Add_2" \[label="fused_contraction\\nAdd_2"\];/);
    expect(text).toMatch(/"after\/Add_2" -> "after\/Split_3" \[label="f32\[1,128,1536\]"\];/);
    expect(text.trimEnd().endsWith('}')).toBe(true);
    const image = readFileSync(svg, 'utf8');
    expect(image).toMatch(/^<\?xml[^]*<svg /);
    // every node of both graphs is drawn: one <g class="node"> each, titled by its id
    const nodes = [...text.matchAll(/^\s+("[^"]+") \[(?:shape|label)/gm)].length;
    expect(image.match(/<g id="node\d+" class="node">/g)).toHaveLength(nodes);
    expect(image).toContain('<title>after/Add_2</title>');
  });
});

describe('kiln inspect: bad arguments are one line on stderr, exit 2', () => {
  const cases: [string, string[], RegExp][] = [
    ['unknown flag', ['inspect', D512, '--fast'], /unknown option '--fast' for 'inspect'/],
    ['missing model', ['inspect'], /inspect needs one model file, got 0/],
    ['no such model file', ['inspect', join(tmp, 'nope.onnx')], /inspect: no such file: .*nope\.onnx/],
    ['--opt 9', ['inspect', D512, '--opt', '9'], /unknown optimization level '9' for --opt/],
    ['bad --target', ['inspect', D512, '--target', 'ptx'], /unknown target 'ptx'/],
    ['--dot into a missing folder', ['inspect', D512, '--dot', join(tmp, 'no/g.dot')], /--dot .*no such directory/],
    ['--svg into a missing folder', ['inspect', D512, '--svg', join(tmp, 'no/g.svg')], /--svg .*no such directory/],
    ['tune without a model', ['tune'], /tune needs one model file, got 0/],
    ['tune: no such model file', ['tune', join(tmp, 'nope.onnx')], /tune: no such file: .*nope\.onnx/],
    ['tune: a budget of 0', ['tune', D512, '--budget', '0'], /--budget/],
    ['symbolic dims left', ['inspect', GPT2], /symbolic dims .*give them with --dims/],
    ['--dims unknown name', ['inspect', GPT2, '--dims', 'batch=1'], /--dims 'batch' is not a symbolic input dim/],
    [
      '--dims unknown name (llama2.c)',
      ['inspect', STORIES, '--dims', 'tokens=3'],
      /--dims 'tokens' is not a symbolic input dim/,
    ],
  ];
  it.each(cases)('%s', async (_, args, message) => {
    if (!hasShared && args.some((a) => a.includes(CONFORMANCE))) return;
    const r = await kiln(...args);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^kiln: /);
    expect(r.stderr).not.toMatch(/^\s+at /m);
    expect(r.stderr).toMatch(message);
    expect(existsSync(join(tmp, 'no'))).toBe(false);
  });
});

describe('kiln inspect on language-model checkpoints (llama2.c, GGUF, kiln IR text)', () => {
  it('stories260K.bin: one decode step by default (batch 1, seq 1, past 15), 7 kernels per layer; --dims a prefill', async () => {
    if (!hasShared) return;
    const r = await kiln('inspect', STORIES);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    // 5 layers of 7 (norm + QKV, rotary, attention, wo + residual, norm + w1 | w3, SiLU · up, w2 + residual), then the
    // final norm and the tied head
    expect(line(r.stdout, 'kernels per run')).toMatch(/^37\b/);
    const prefill = await kiln('inspect', STORIES, '--dims', 'seq=8,past=0', '--json');
    expect(prefill.status).toBe(0);
    const rep = JSON.parse(prefill.stdout) as InspectReport;
    const one = JSON.parse((await kiln('inspect', STORIES, '--json')).stdout) as InspectReport;
    expect(rep.flops!).toBeGreaterThan(7 * one.flops!); // 8 tokens' projections against 1
  });

  it('a quantized model written as kiln IR text inspects with its packed bytes', async () => {
    if (!hasShared) return;
    const out = join(tmp, 's4.kir');
    expect((await kiln('quantize', STORIES, '--bits', '4', '--group', '32', '--out', out)).status).toBe(0);
    const q = JSON.parse((await kiln('inspect', out, '--json')).stdout) as InspectReport;
    const f = JSON.parse((await kiln('inspect', STORIES, '--json')).stdout) as InspectReport;
    expect(q.kernels.length).toBe(f.kernels.length);
    expect(q.bytes.moved).toBeLessThan(f.bytes.moved / 2);
  });
});
