/** The root export is the public API — what a user needs to build, import, compile and run — not internal helpers. */
import { expect, it } from 'vitest';
import * as kiln from '../../src/index.js';

it('exports the public API and nothing else', () => {
  expect(Object.keys(kiln).sort()).toEqual(
    [
      'BACKENDS',
      'BACKEND_CHOICES',
      'DTYPES',
      'Graph',
      'GraphBuilder',
      'KilnError',
      'MAX_REFERENCE_ELEMENTS',
      'ONNX_DTYPE',
      'Node',
      'OPT_LEVELS',
      'ParseError',
      'TINY_GPT',
      'UnsupportedError',
      'Value',
      'VerifyError',
      'buildTinyGpt',
      'buildLlama',
      'buildGpt2',
      'loadLlama2c',
      'parseGguf',
      'ggufModel',
      'writeGguf',
      'llamaGguf',
      'GGML_FORMATS',
      'parseSafetensors',
      'hfModel',
      'loadLlama2cTokenizer',
      'LanguageModelSession',
      'generateText',
      'perplexity',
      'PagedLanguageModel',
      'PagedSequence',
      'SpeculativeDecoder',
      'NgramDraft',
      'ModelDraft',
      'MixedDraft',
      'generateSpeculative',
      'verifyTree',
      'mergeProposals',
      'TokenTree',
      'TREE_MAX_NODES',
      'MedusaDraft',
      'MedusaHeads',
      'fitMedusa',
      'medusaTreeShape',
      'createSession',
      'graphDot',
      'dotToSvg',
      'compile',
      'importOnnx',
      'importOnnxFile',
      'exportOnnx',
      'exportOnnxModel',
      'exportOnnxFile',
      'importOnnxModel',
      'externalDataFrom',
      'MemoryScheduleStore',
      'interpret',
      'makeTensor',
      'parseGraph',
      'printGraph',
      'tensorFromOnnx',
      'toBigInt64Array',
      'verify',
    ].sort(),
  );
});

it('a graph built with the root API alone compiles and runs (the op registry is loaded by the entry)', async () => {
  const b = new kiln.GraphBuilder('g');
  b.output(b.op('relu', [b.input('x', 'f32', [3])]), 'y');
  const s = await kiln.compile(b.build());
  const y = (await s.run({ x: { dtype: 'f32', shape: [3], data: [-1, 0, 2] } }))['y']!;
  expect(Array.from(y.data)).toEqual([0, 0, 2]);
  expect(y.data).toBeInstanceOf(Float32Array);
});
