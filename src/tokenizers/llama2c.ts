/**
 * llama2.c `tokenizer.bin`: int32 max token length, then per token an f32 merge score, an int32 byte length and the
 * piece's bytes. Spaces are plain ' ' (not sentencepiece's '▁'); `<0xNN>` pieces are byte fallbacks; ids 0 / 1 / 2
 * are <unk> / BOS / EOS, as llama2.c's run.c assumes.
 */
import { ParseError } from '../../ir/errors.js';
import { ByteReader } from '../frontends/bytes.js';
import { bytePieceValue, ScoreBpeTokenizer } from './sentencepiece.js';
import type { Tokenizer } from './types.js';

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Reads the first `vocabSize` tokens of a llama2.c tokenizer file (score-BPE, sentencepiece style).
 *
 * @throws ParseError when the file is truncated or malformed before `vocabSize` tokens were read.
 */
export function loadLlama2cTokenizer(bytes: Uint8Array, vocabSize: number): Tokenizer {
  const FORMAT = 'llama2.c tokenizer';
  if (!Number.isInteger(vocabSize) || vocabSize < 3) {
    throw new ParseError(`${FORMAT}: vocabSize ${vocabSize} must be an integer >= 3 (unk, BOS, EOS)`, {
      limit: 'vocabSize',
    });
  }
  const r = new ByteReader(bytes, FORMAT);
  const maxLen = r.i32('max_token_length');
  if (maxLen < 0) r.fail(`max_token_length ${maxLen} is negative`);
  // each token takes at least 8 bytes: reject an impossible count before allocating
  if (vocabSize * 8 > r.remaining)
    r.fail(`${vocabSize} tokens need at least ${vocabSize * 8} bytes`, undefined, 'vocabSize');
  const match: (string | null)[] = [];
  const output: Uint8Array[] = [];
  const scores = new Float32Array(vocabSize);
  const byteIds = new Int32Array(256).fill(-1);
  for (let id = 0; id < vocabSize; id++) {
    scores[id] = r.f32(`score of token ${id}`);
    const len = r.i32(`length of token ${id}`);
    if (len < 0) r.fail(`token ${id} has negative length ${len}`);
    const piece = r.take(len, `token ${id}`);
    let text: string | null;
    try {
      text = utf8.decode(piece);
    } catch {
      text = null; // a piece that is not UTF-8 can still be decoded to its bytes, never matched
    }
    const byte = text === null ? undefined : bytePieceValue(text);
    if (byte !== undefined) {
      if (byteIds[byte]! < 0) byteIds[byte] = id;
      match.push(null);
      output.push(Uint8Array.of(byte));
    } else if (id <= 2) {
      // <unk>, "\n<s>\n", "\n</s>\n": never matched in text; BOS / EOS decode to nothing
      match.push(null);
      output.push(id === 0 ? piece.slice() : new Uint8Array(0));
    } else {
      match.push(text);
      output.push(piece.slice());
    }
  }
  return new ScoreBpeTokenizer({
    match,
    output,
    scores,
    byteIds,
    space: ' ',
    addPrefix: true,
    bos: 1,
    eos: 2,
    unk: 0,
  });
}
