/**
 * Malformed weight and tokenizer files: each real file truncated, byte-flipped or with a header field garbled must
 * load or fail with a KilnError — never a RangeError, a crash or a hang.
 */
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KilnError } from '../../ir/errors.js';
import { ggufModel, parseGguf } from '../../src/frontends/gguf.js';
import { hfModel } from '../../src/frontends/hf-config.js';
import { loadLlama2c } from '../../src/frontends/llama2c.js';
import { parseSafetensors } from '../../src/frontends/safetensors.js';
import { loadLlama2cTokenizer } from '../../src/tokenizers/llama2c.js';
import { PROP_RUNS, SHARED } from '../helpers/paths.js';
import { fileProbe, requireTool } from '../helpers/tools.js';

const file = (name: string) => resolve(SHARED, 'models', name);

/** One mutation of `bytes`: truncation, flipped bytes, or a 1/4/8-byte field overwritten (mostly in the header). */
const mutation = (len: number, headerLen: number) =>
  fc.oneof(
    fc.record({ kind: fc.constant('truncate' as const), at: fc.nat({ max: len }) }),
    fc.record({
      kind: fc.constant('flip' as const),
      flips: fc.array(fc.tuple(fc.nat({ max: len - 1 }), fc.integer({ min: 1, max: 255 })), {
        minLength: 1,
        maxLength: 8,
      }),
    }),
    fc.record({
      kind: fc.constant('garble' as const),
      at: fc.nat({ max: Math.max(0, Math.min(len, headerLen) - 8) }),
      width: fc.constantFrom(1, 4, 8),
      value: fc.oneof(
        fc.constantFrom(0n, 1n, 0xffn, 0x7fffffffn, 0xffffffffn, 2n ** 53n, 2n ** 63n - 1n, 2n ** 64n - 1n),
        fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
      ),
    }),
  );

type Mutation =
  | { kind: 'truncate'; at: number }
  | { kind: 'flip'; flips: [number, number][] }
  | { kind: 'garble'; at: number; width: 1 | 4 | 8; value: bigint };

/** `bytes` is a plain Uint8Array (a Node Buffer's slice would be a view, and mutations would pile up). */
function apply(bytes: Uint8Array, m: Mutation): Uint8Array {
  if (m.kind === 'truncate') return bytes.slice(0, m.at);
  const out = bytes.slice();
  if (m.kind === 'flip') {
    for (const [i, x] of m.flips) out[i]! ^= x;
  } else {
    for (let i = 0; i < m.width && m.at + i < out.length; i++)
      out[m.at + i] = Number((m.value >> BigInt(8 * i)) & 255n);
  }
  return out;
}

/** Runs `load` on mutated copies of `bytes`: success or a KilnError, nothing else. */
function fuzz(file: Uint8Array, headerLen: number, load: (b: Uint8Array) => void, runs = PROP_RUNS): void {
  const bytes = new Uint8Array(file);
  fc.assert(
    fc.property(mutation(bytes.length, headerLen), (m) => {
      const mutated = apply(bytes, m as Mutation);
      try {
        load(mutated);
      } catch (e) {
        if (!(e instanceof KilnError)) throw new Error(`not a KilnError: ${String(e)}`, { cause: e });
      }
    }),
    { numRuns: runs },
  );
}

const noShared = await requireTool(
  '../shared/models',
  fileProbe(file('stories260K.bin'), 'clone the shared data beside the repo'),
);
describe.skipIf(noShared)('malformed weight and tokenizer files → KilnError', () => {
  it('llama2.c checkpoint (stories260K.bin)', () => {
    const bytes = readFileSync(file('stories260K.bin'));
    fuzz(bytes, 64, (b) => {
      const { weights } = loadLlama2c(b);
      for (const n of weights.names()) weights.get(n);
    });
  });

  it('llama2.c tokenizer (tok512.bin)', () => {
    const bytes = readFileSync(file('tok512.bin'));
    fuzz(bytes, bytes.length, (b) => {
      const tok = loadLlama2cTokenizer(b, 512);
      const ids = tok.encode('Once upon a time, Lily saw a 🐶.', { bos: true });
      tok.decode(ids);
    });
  });

  it('GGUF (llama-2-tiny-random.gguf): header, metadata, tokenizer, tensors', () => {
    const bytes = readFileSync(file('llama-2-tiny-random.gguf'));
    const headerLen = parseGguf(bytes).dataOffset;
    fuzz(
      bytes,
      headerLen,
      (b) => {
        const g = parseGguf(b);
        for (const t of g.tensorInfos) g.tensor(t.name);
        const { weights, tokenizer } = ggufModel(g);
        for (const n of weights.names()) weights.get(n);
        tokenizer?.decode(tokenizer.encode('Hello wörld', { bos: true }));
      },
      Math.max(10, Math.floor(PROP_RUNS / 2)),
    );
  });

  it('safetensors (tiny_gpt2, bert_tiniest) and the GPT-2 mapping', () => {
    const gpt2 = readFileSync(file('tiny_gpt2.safetensors'));
    const config = { model_type: 'gpt2', n_embd: 2, n_layer: 1, n_head: 1, vocab_size: 21, n_positions: 1024 };
    fuzz(gpt2, 1208, (b) => {
      hfModel(parseSafetensors(b), config);
    });
    const bertPath = file('bert_tiniest.safetensors');
    if (existsSync(bertPath)) {
      const bert = readFileSync(bertPath);
      fuzz(bert, 2752, (b) => void parseSafetensors(b), Math.max(10, Math.floor(PROP_RUNS / 2)));
    }
  });

  it('safetensors header JSON garbled character by character', () => {
    const bytes = readFileSync(file('tiny_gpt2.safetensors'));
    const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
    const json = new TextDecoder().decode(bytes.subarray(8, 8 + n));
    fc.assert(
      fc.property(
        fc.nat({ max: json.length - 1 }),
        fc.constantFrom('"', '{', ']', '-', '9', 'e', ',', ':', ' '),
        (i, c) => {
          const garbled = new TextEncoder().encode(json.slice(0, i) + c + json.slice(i + 1));
          const out = new Uint8Array(8 + garbled.length + bytes.length - 8 - n);
          new DataView(out.buffer).setBigUint64(0, BigInt(garbled.length), true);
          out.set(garbled, 8);
          out.set(bytes.subarray(8 + n), 8 + garbled.length);
          try {
            parseSafetensors(out);
          } catch (e) {
            expect(e).toBeInstanceOf(KilnError);
          }
        },
      ),
      { numRuns: PROP_RUNS * 2 },
    );
  });
});
