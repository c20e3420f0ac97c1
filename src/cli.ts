#!/usr/bin/env node
/**
 * The `kiln` command line. Contract: every bad argument or input is ONE line `kiln: <message>` on stderr and exit
 * status 2 (no stack trace); 1 means a conformance test failed; 3 an internal error (a bug: `KILN_DEBUG=1` shows the
 * stack). `main` never exits the process, so tests can call it directly.
 */
import { existsSync, readFileSync, realpathSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { KilnError } from '../ir/errors.js';
import { BACKEND_CHOICES, OPT_LEVELS, type BackendChoice } from './session.js';

const HELP = `kiln — kernel compiler and graph optimizer for transformer inference

Usage: kiln <command> [options]

Commands:
  demo [--backend B] [--prompt P] [--max-tokens N]
                                      the bundled stories260K (a tiny Llama trained on TinyStories) writes a story on
                                      the best device here, streamed, then says where it ran and how fast
      --backend B                     ${BACKEND_CHOICES.join(' | ')} (default auto: cuda, else webgpu, else reference)
  generate MODEL --prompt P [options] stream text from a model (llama2.c checkpoint) to stdout, stats to stderr
      --tokenizer F                   the tokenizer (default: tok<vocab>.bin or tokenizer.bin beside the model)
      --max-tokens N                  default 128
      --temperature T                 0 (default) is greedy; --top-k K, --top-p P, --repetition-penalty R, --seed S
      --backend B                     as for demo (default auto)
      --batch N                       N sequences of the prompt decoded together (paged KV cache; seeds S … S+N−1)
      --speculative S                 speculative decoding, the target's exact output: ngram (prompt lookup), self[:K]
                                      (the model's first K layers, default half; self[:K]:int4|int8 its RTN-quantized
                                      copy, all layers by default), draft (--draft MODEL), or a mix
                                      tried in order (ngram+self:2), or medusa:HEADS.json (kiln fit-medusa); prints
                                      acceptance statistics; --draft-len N. tree[:SOURCES] (default ngram+self):
                                      the sources' proposals merged into one token tree per target pass (SpecInfer)
  perplexity MODEL TEXT [options]     perplexity of the model on a text file: windows of N tokens (--window, default
                                      256), BOS first, every token after a window's first scored; --tokenizer, --backend
  conformance DIR... [options]        run ONNX backend-test folders (model.onnx + test_data_set_N)
      --backend B                     ${BACKEND_CHOICES.join(' | ')} (default reference)
      --opt N                         optimization level ${OPT_LEVELS.join(' | ')} (default 1: canonicalization; 0 runs
                                      the graph as imported)
      --json FILE                     write the results as JSON (per test: status, error, node placement)
      --tolerances FILE               per-test overrides: { "test_name": { "rtol": r, "atol": a, "why": "..." } }
      --quiet                         print only failures and the summary
  ir FILE [--dims n=v,...]            print the model's kiln IR (text format) after import
  kernels FILE --target wgsl|cuda [--dims n=v,...]
                                      print the kernels kiln generates for these input shapes (nothing runs)
  inspect MODEL [--opt N] [--dims n=v,...] [--json] [--target wgsl|cuda] [--dot F] [--svg F] [--attention S]
                                      the kernels one run launches (node, fused ops, FLOPs, bytes), kernels per run
                                      and per layer, views, bytes moved vs the minimum, peak memory (nothing runs);
                                      MODEL: .onnx, .kir, or a checkpoint (llama2.c .bin, .gguf, .safetensors:
                                      one decode step, --dims batch=1,seq=1,past=15 unless given)
      --opt N                         optimization level (default 1; 0 inspects the graph as imported)
      --json                          the same as one JSON object
      --dot FILE                      also write the graph before and after optimization as Graphviz DOT
      --svg FILE                      the same drawing rendered as SVG (Graphviz compiled to WebAssembly)
      --attention auto|one-kernel|decomposed|tiled
                                      attention schedule (default auto: decomposed past 4 query rows where exact)
  tune MODEL [--dims n=v,...] [--budget S] [--store FILE]
                                      time each contraction's candidate schedules on this WebGPU device (GPU
                                      timestamps, S seconds, default 60) and keep the winners in FILE (default
                                      schedules.json in kiln's cache directory), which later sessions read
  quantize MODEL [options]            weight-only post-training quantization (RTN / GPTQ / AWQ); kiln quantize --help
  fit-medusa MODEL TEXT --out HEADS.json [--heads K] [--epochs N] [--lr R] [--max-tokens N] [--plain]
                                      fit Medusa draft heads (sequential by default; --plain: Medusa-1) on the model's
                                      hidden states over TEXT, frozen backbone; prints each head's held-out accuracy
  compile MODEL --out DIR [options]   ahead-of-time export as an ES module run by kiln/runtime; kiln compile --help
  prune MODEL [options]               pruning (magnitude / Wanda / SparseGPT, 2:4, heads / channels); kiln prune --help
  plan, run-parallel                  tensor / pipeline parallel plans and runs over MPI; kiln plan --help
  export IN --out OUT.onnx [options]  write a model kiln reads (ONNX, kiln IR text, llama2.c / GGUF / safetensors
                                      language model) as ONNX: fused nodes as their bodies, quantized matmuls as
                                      com.microsoft MatMulNBits (docs/onnx-export.md)
      --opt N                         optimize at level N first (default 0: the graph as loaded)
      --opset N                       default-domain opset (default: the lowest the graph needs, 21 or 23)
      --external-data-threshold B     initializers of B bytes or more go to OUT.onnx.data (needed past 2 GB)
      --dims n=v,...                  bind symbolic input dims of an ONNX input
  help, --help                        this text
  --version                           kiln's version

A conformance run on a device backend ends PASS lines with where the graph's nodes ran; a pass with no node on the
device is marked host-only and counted apart. The last line is always \`N passed, N failed, N skipped\`.

Exit status: 0 on success, 1 when a conformance test failed, 2 on bad usage or input, 3 on an internal error.`;

/** Where the CLI writes. */
export interface CliIo {
  out(text: string): void;
  err(text: string): void;
}

const processIo: CliIo = {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
};

/** A bad command line. */
class UsageError extends KilnError {
  constructor(message: string) {
    super('parse', message);
    this.name = 'UsageError';
  }
}

type OptionSpec = Record<string, { type: 'string' | 'boolean' }>;

/**
 * node:util parseArgs, strict, with its errors turned into one-line usage errors naming the command. Values come
 * back as strings (string options) or `true` (boolean ones), keyed by option name.
 */
function parse(
  cmd: string,
  args: string[],
  options: OptionSpec,
  allowPositionals: boolean,
): { values: Record<string, string | undefined>; flags: Set<string>; positionals: string[] } {
  try {
    const r = parseArgs({ args, options, allowPositionals, strict: true });
    const values: Record<string, string | undefined> = {};
    const flags = new Set<string>();
    for (const [k, v] of Object.entries(r.values)) {
      if (typeof v === 'string') values[k] = v;
      else if (v === true) flags.add(k);
    }
    return { values, flags, positionals: r.positionals };
  } catch (e) {
    const code = String((e as { code?: unknown }).code ?? '');
    const msg = (e as Error).message;
    const quoted = /'([^']+)'/.exec(msg)?.[1] ?? '';
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') throw new UsageError(`unknown option '${quoted}' for '${cmd}'`);
    if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
      // "Option '--opt <value>' argument missing" / "... argument is ambiguous" (the next word starts with '-')
      const flag = quoted.split(' ')[0] || quoted;
      throw new UsageError(`option '${flag}' needs a value (write ${flag}=VALUE for one starting with '-')`);
    }
    if (code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL')
      throw new UsageError(`unexpected argument '${quoted}' for '${cmd}'`);
    throw new UsageError(`${cmd}: ${msg.split('\n')[0]}`);
  }
}

function backendOf(v: string | undefined, dflt: BackendChoice): BackendChoice {
  if (v === undefined) return dflt;
  if (!(BACKEND_CHOICES as readonly string[]).includes(v)) {
    throw new UsageError(`unknown backend '${v}' (expected one of ${BACKEND_CHOICES.join(', ')})`);
  }
  return v as BackendChoice;
}

function optOf(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = /^\d+$/.test(v) ? Number(v) : NaN;
  if (!(OPT_LEVELS as readonly number[]).includes(n)) {
    throw new UsageError(`unknown optimization level '${v}' for --opt (expected one of ${OPT_LEVELS.join(', ')})`);
  }
  return n;
}

/** A decimal integer in [min, max]; anything else (empty, '1.5', 'abc', '1e3') is a usage error. */
function intOf(flag: string, v: string, min: number, max: number): number {
  const n = /^\d+$/.test(v) ? Number(v) : NaN;
  if (!(n >= min && n <= max)) throw new UsageError(`${flag} wants an integer from ${min} to ${max}, got '${v}'`);
  return n;
}

/** The path must exist and be a regular file. */
function requireFile(what: string, p: string): void {
  if (!existsSync(p)) throw new UsageError(`${what}: no such file: ${p}`);
  if (!statSync(p).isFile()) throw new UsageError(`${what}: not a file: ${p}`);
}

function readTolerances(file: string): Record<string, { rtol?: number; atol?: number }> {
  requireFile('--tolerances', file);
  let j: unknown;
  try {
    j = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new UsageError(`--tolerances ${file}: not JSON (${(e as Error).message})`);
  }
  if (typeof j !== 'object' || j === null || Array.isArray(j)) {
    throw new UsageError(`--tolerances ${file}: want an object { "test_name": { "rtol": r, "atol": a } }`);
  }
  return j as Record<string, { rtol?: number; atol?: number }>;
}

/** package.json's version: the nearest package.json named kiln above this module (src/ or dist/src/). */
function version(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const f = join(dir, 'package.json');
    if (existsSync(f)) {
      const pkg = JSON.parse(readFileSync(f, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'kiln' && pkg.version) return pkg.version;
    }
    const up = dirname(dir);
    if (up === dir) throw new KilnError('runtime', "kiln's package.json not found");
    dir = up;
  }
}

async function conformance(rest: string[], io: CliIo): Promise<number> {
  const { values, flags, positionals } = parse(
    'conformance',
    rest,
    {
      backend: { type: 'string' },
      opt: { type: 'string' },
      json: { type: 'string' },
      tolerances: { type: 'string' },
      quiet: { type: 'boolean' },
    },
    true,
  );
  if (positionals.length === 0) throw new UsageError('conformance needs at least one DIR');
  const backend = backendOf(values.backend, 'reference');
  const opt = optOf(values.opt);
  const overrides = values.tolerances === undefined ? undefined : readTolerances(values.tolerances);
  if (values.json !== undefined) {
    const parent = dirname(resolve(values.json));
    if (!existsSync(parent) || !statSync(parent).isDirectory()) {
      throw new UsageError(`--json ${values.json}: no such directory: ${parent}`);
    }
  }
  const quiet = flags.has('quiet');
  const { runConformance } = await import('./conformance.js');
  const summary = await runConformance(positionals, {
    backend,
    opt,
    overrides,
    log: (line) => {
      if (!quiet || !line.startsWith('PASS')) io.out(line + '\n');
    },
  });
  if (values.json !== undefined) {
    writeFileSync(values.json, JSON.stringify({ backend, opt: opt ?? null, ...summary }, null, 2));
  }
  const reasons = Object.entries(summary.skipsByReason);
  if (reasons.length) io.out(`skipped by reason: ${reasons.map(([k, n]) => `${k} ${n}`).join(', ')}\n`);
  if (summary.results.some((r) => r.backend !== undefined && r.backend !== 'reference')) {
    io.out(`host-only: ${summary.hostOnly} of ${summary.passed} passes ran no node on the device\n`);
  }
  io.out(`${summary.passed} passed, ${summary.failed} failed, ${summary.skipped} skipped\n`);
  return summary.failed > 0 ? 1 : 0;
}

async function inspect(cmd: 'ir' | 'kernels', rest: string[], io: CliIo): Promise<number> {
  const options: OptionSpec = { dims: { type: 'string' } };
  if (cmd === 'kernels') options['target'] = { type: 'string' };
  const { values, positionals } = parse(cmd, rest, options, true);
  if (positionals.length !== 1) throw new UsageError(`${cmd} needs one model file, got ${positionals.length}`);
  const file = positionals[0]!;
  requireFile(cmd, file);
  const target = values['target'] ?? 'wgsl';
  if (target !== 'wgsl' && target !== 'cuda')
    throw new UsageError(`unknown target '${target}' (expected wgsl or cuda)`);
  const { loadModelFile, parseDims, kernelSources, printGraph } = await import('./inspect.js');
  const graph = await loadModelFile(file, parseDims(values['dims']));
  io.out(cmd === 'ir' ? printGraph(graph) : await kernelSources(graph, target));
  return 0;
}

async function inspectCmd(rest: string[], io: CliIo): Promise<number> {
  const { values, flags, positionals } = parse(
    'inspect',
    rest,
    {
      dims: { type: 'string' },
      opt: { type: 'string' },
      target: { type: 'string' },
      dot: { type: 'string' },
      svg: { type: 'string' },
      json: { type: 'boolean' },
      attention: { type: 'string' },
    },
    true,
  );
  if (positionals.length !== 1) throw new UsageError(`inspect needs one model file, got ${positionals.length}`);
  const schedule = values.attention ?? 'auto';
  if (schedule !== 'auto' && schedule !== 'one-kernel' && schedule !== 'decomposed' && schedule !== 'tiled') {
    throw new UsageError(`unknown attention schedule '${schedule}' (expected auto, one-kernel, decomposed or tiled)`);
  }
  const file = positionals[0]!;
  requireFile('inspect', file);
  const opt = optOf(values.opt) ?? 1;
  const target = values.target ?? 'wgsl';
  if (target !== 'wgsl' && target !== 'cuda')
    throw new UsageError(`unknown target '${target}' (expected wgsl or cuda)`);
  for (const [flag, path] of [
    ['--dot', values.dot],
    ['--svg', values.svg],
  ] as const) {
    if (path === undefined) continue;
    const parent = dirname(resolve(path));
    if (!existsSync(parent) || !statSync(parent).isDirectory()) {
      throw new UsageError(`${flag} ${path}: no such directory: ${parent}`);
    }
  }
  const { loadModelFile, parseDims, inspectGraph, formatInspect, graphDot, dotToSvg, optimize } =
    await import('./inspect.js');
  const imported = await loadModelFile(file, parseDims(values.dims));
  const graph = optimize(imported, { level: opt });
  const report = await inspectGraph(graph, opt, target, { attentionSchedule: schedule });
  // drawings show the graph before and after the passes, side by side
  const dot = values.dot !== undefined || values.svg !== undefined ? graphDot(graph, imported) : '';
  if (values.dot !== undefined) writeFileSync(values.dot, dot);
  if (values.svg !== undefined) writeFileSync(values.svg, await dotToSvg(dot));
  io.out(flags.has('json') ? JSON.stringify(report, null, 2) + '\n' : formatInspect(report));
  return 0;
}

async function tuneCmd(rest: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(
    'tune',
    rest,
    { dims: { type: 'string' }, budget: { type: 'string' }, store: { type: 'string' } },
    true,
  );
  if (positionals.length !== 1) throw new UsageError(`tune needs one model file, got ${positionals.length}`);
  const file = positionals[0]!;
  requireFile('tune', file);
  const budget = values.budget === undefined ? 60 : intOf('--budget', values.budget, 1, 3600);
  const { loadModelFile, parseDims, zeroFeeds } = await import('./inspect.js');
  const { autotune, FileScheduleStore, defaultScheduleFile } = await import('./tune.js');
  const graph = await loadModelFile(file, parseDims(values.dims));
  const path = values.store ?? defaultScheduleFile();
  const results = await autotune(graph, zeroFeeds(graph), {
    store: new FileScheduleStore(path),
    budgetMs: budget * 1000,
  });
  const rows = results.map((r) => {
    const best = Object.entries(r.times).sort((a, b) => a[1] - b[1])[0];
    return `${r.cls}  ${r.nodes.join(',')}  default ${r.defaultMs.toFixed(2)} ms  best ${
      best ? `${best[0]} ${best[1].toFixed(2)} ms` : '-'
    }  → ${r.winner ?? 'default kept'}`;
  });
  io.out(`${rows.join('\n')}\n${results.length} contraction classes tuned; winners in ${path}\n`);
  return 0;
}

async function demo(rest: string[], io: CliIo): Promise<number> {
  const { values } = parse(
    'demo',
    rest,
    { backend: { type: 'string' }, prompt: { type: 'string' }, 'max-tokens': { type: 'string' } },
    false,
  );
  const backend = backendOf(values.backend, 'auto');
  const maxTokens =
    values['max-tokens'] === undefined ? undefined : intOf('--max-tokens', values['max-tokens'], 1, 512);
  const { runDemo } = await import('./demo.js');
  await runDemo({ backend, maxTokens, prompt: values.prompt, write: (s) => io.out(s) });
  return 0;
}

/** A decimal number in [min, max]. */
function numOf(flag: string, v: string, min: number, max: number): number {
  const n = /^-?(\d+\.?\d*|\.\d+)$/.test(v) ? Number(v) : NaN;
  if (!(n >= min && n <= max)) throw new UsageError(`${flag} wants a number from ${min} to ${max}, got '${v}'`);
  return n;
}

async function generate(rest: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(
    'generate',
    rest,
    {
      tokenizer: { type: 'string' },
      prompt: { type: 'string' },
      'max-tokens': { type: 'string' },
      temperature: { type: 'string' },
      'top-k': { type: 'string' },
      'top-p': { type: 'string' },
      'repetition-penalty': { type: 'string' },
      seed: { type: 'string' },
      backend: { type: 'string' },
      batch: { type: 'string' },
      speculative: { type: 'string' },
      draft: { type: 'string' },
      'draft-len': { type: 'string' },
    },
    true,
  );
  if (positionals.length !== 1) throw new UsageError(`generate needs one model file, got ${positionals.length}`);
  const { isModuleDir } = await import('./aot-cli.js');
  const moduleDir = isModuleDir(positionals[0]!);
  if (!moduleDir) requireFile('generate', positionals[0]!);
  if (values.tokenizer !== undefined) requireFile('--tokenizer', values.tokenizer);
  if (values.prompt === undefined) throw new UsageError('generate needs --prompt "..."');
  const batch = values.batch === undefined ? 1 : intOf('--batch', values.batch, 1, 64);
  const opts = {
    maxTokens: values['max-tokens'] === undefined ? 128 : intOf('--max-tokens', values['max-tokens'], 1, 1 << 20),
    temperature: values.temperature === undefined ? 0 : numOf('--temperature', values.temperature, 0, 100),
    topK: values['top-k'] === undefined ? 0 : intOf('--top-k', values['top-k'], 0, 1 << 24),
    topP: values['top-p'] === undefined ? 1 : numOf('--top-p', values['top-p'], 0, 1),
    repetitionPenalty:
      values['repetition-penalty'] === undefined
        ? 1
        : numOf('--repetition-penalty', values['repetition-penalty'], 0.01, 100),
    seed: values.seed === undefined ? 0 : intOf('--seed', values.seed, 0, 2 ** 32 - 1),
  };
  const backend = backendOf(values.backend, 'auto');
  if (moduleDir) {
    // a module written by `kiln compile`: loaded by kiln/runtime alone, generation as for a model file
    for (const f of ['tokenizer', 'batch', 'speculative', 'draft', 'draft-len'] as const) {
      if (values[f] !== undefined) throw new UsageError(`--${f} does not apply to a compiled module`);
    }
    const { loadModule } = await import('./runtime-entry.js');
    const m = await loadModule(resolve(positionals[0]!), undefined, { backend });
    try {
      if (!m.lm || !m.tokenizer) throw new UsageError('the module is not a language model with a tokenizer');
      return await streamText(m.lm, m.generateText(values.prompt, opts), io);
    } finally {
      m.dispose();
    }
  }
  const { loadLanguageModel } = await import('./generate/load.js');
  const { LanguageModelSession } = await import('./generate/lm.js');
  const { generateText } = await import('./generate/text.js');
  if (values.speculative !== undefined || values.draft !== undefined || values['draft-len'] !== undefined) {
    if (batch > 1) throw new UsageError('--speculative decodes one sequence: drop --batch');
    if (values.draft !== undefined) requireFile('--draft', values.draft);
    const spec = values.speculative ?? 'draft';
    const draftLen = values['draft-len'] === undefined ? 4 : intOf('--draft-len', values['draft-len'], 1, 64);
    return generateSpeculative(positionals[0]!, values, spec, draftLen, backend, opts, io);
  }
  if (batch > 1) return generateBatch(positionals[0]!, values.tokenizer, values.prompt, batch, backend, opts, io);
  const model = loadLanguageModel(positionals[0]!, { tokenizer: values.tokenizer });
  if (!model.tokenizer) throw new UsageError('no tokenizer found beside the model: give --tokenizer FILE');
  const lm = await LanguageModelSession.create(model, { backend });
  try {
    return await streamText(lm, generateText(lm, model.tokenizer, values.prompt, opts), io);
  } finally {
    lm.dispose();
  }
}

/** Writes the generated pieces, then the generation statistics on stderr. */
async function streamText(
  lm: import('./generate/lm.js').LanguageModelSession,
  pieces: AsyncGenerator<string>,
  io: CliIo,
): Promise<number> {
  for await (const piece of pieces) io.out(piece);
  io.out('\n');
  const s = lm.stats!;
  io.err(
    `${s.generatedTokens} tokens on ${lm.session.backend}: time to first token ${s.timeToFirstTokenMs.toFixed(0)} ms, ` +
      `prefill ${s.prefillTokPerS.toFixed(1)} tok/s (${s.promptTokens} tokens), decode ${s.decodeTokPerS.toFixed(1)} tok/s\n`,
  );
  return 0;
}

/** `generate --batch N`: N sequences of the prompt (seeds seed … seed+N−1) decoded together on the paged cache. */
async function generateBatch(
  file: string,
  tokenizer: string | undefined,
  prompt: string,
  batch: number,
  backend: BackendChoice,
  opts: import('./generate/lm.js').GenerateOptions,
  io: CliIo,
): Promise<number> {
  const { loadLanguageModel } = await import('./generate/load.js');
  const { PagedLanguageModel } = await import('./generate/paged.js');
  const blockSize = 16;
  const model = loadLanguageModel(file, { tokenizer, paged: { blockSize } });
  const tok = model.tokenizer;
  if (!tok) throw new UsageError('no tokenizer found beside the model: give --tokenizer FILE');
  const ids = tok.encode(prompt, { bos: tok.bos !== undefined });
  const perSeq = Math.ceil(Math.min(model.config.maxSeq, ids.length + (opts.maxTokens ?? 128)) / blockSize);
  const lm = await PagedLanguageModel.create(model, { backend, numBlocks: perSeq * batch });
  try {
    const out: number[][] = Array.from({ length: batch }, () => []);
    const stop = tok.eos !== undefined ? [tok.eos] : [];
    for await (const { index, token } of lm.generateBatch(
      Array.from({ length: batch }, () => ids),
      { ...opts, stop },
    )) {
      out[index]!.push(token);
    }
    out.forEach((o, i) =>
      io.out(`--- sequence ${i}\n${prompt}${tok.decode([...ids, ...o]).slice(tok.decode(ids).length)}\n`),
    );
    const s = lm.stats!;
    io.err(
      `${s.generatedTokens} tokens in ${batch} sequences on ${lm.session.backend}: time to first tokens ${s.timeToFirstTokenMs.toFixed(0)} ms, ` +
        `decode ${s.decodeTokPerS.toFixed(1)} tok/s summed over the batch\n`,
    );
  } finally {
    lm.dispose();
  }
  return 0;
}

/** `generate --speculative ngram|self[:K]|draft` (mixes joined by +): the paged target checks drafts, stats to stderr. */
async function generateSpeculative(
  file: string,
  values: Record<string, string | undefined>,
  spec: string,
  draftLen: number,
  backend: BackendChoice,
  opts: import('./generate/lm.js').GenerateOptions,
  io: CliIo,
): Promise<number> {
  const { loadLanguageModel } = await import('./generate/load.js');
  const { PagedLanguageModel } = await import('./generate/paged.js');
  const { ModelDraft, NgramDraft, SpeculativeDecoder } = await import('./generate/speculative.js');
  type Source = import('./generate/speculative.js').DraftSource;
  // tree[:SOURCES]: every source proposes, one merged token tree per target pass
  const treeMode = spec === 'tree' || spec.startsWith('tree:');
  const label = spec;
  if (treeMode) spec = spec === 'tree' ? 'ngram+self' : spec.slice('tree:'.length);
  const blockSize = 16;
  const model = loadLanguageModel(file, { tokenizer: values.tokenizer, paged: { blockSize } });
  const tok = model.tokenizer;
  if (!tok) throw new UsageError('no tokenizer found beside the model: give --tokenizer FILE');
  const numBlocks = Math.ceil(model.config.maxSeq / blockSize) + 1;
  const sources: Source[] = [];
  const medusaFile = spec
    .split('+')
    .find((p) => p.startsWith('medusa'))
    ?.slice('medusa:'.length);
  const lm = await PagedLanguageModel.create(model, {
    backend,
    numBlocks,
    hidden: medusaFile !== undefined,
    tree: treeMode,
  });
  try {
    for (const part of spec.split('+')) {
      const [kind, arg] = part.split(':') as [string, string | undefined];
      if (kind === 'medusa') {
        if (!arg)
          throw new UsageError('--speculative medusa needs its heads file: medusa:HEADS.json (kiln fit-medusa)');
        requireFile('--speculative medusa', arg);
        const { MedusaDraft, MedusaHeads, lmHeadOf } = await import('./generate/medusa.js');
        let json: unknown;
        try {
          json = JSON.parse(readFileSync(arg, 'utf8'));
        } catch (e) {
          throw new UsageError(`--speculative medusa: ${arg} is not JSON (${(e as Error).message})`);
        }
        sources.push(new MedusaDraft(MedusaHeads.fromJSON(json, lmHeadOf(model.graph))));
      } else if (kind === 'ngram') {
        const n = arg === undefined ? 3 : intOf('--speculative ngram:N', arg, 1, 16);
        sources.push(new NgramDraft({ maxNgram: n }));
      } else if (kind === 'self') {
        const c = model.config;
        if (c.arch !== 'llama') throw new UsageError('--speculative self needs a LLaMA model');
        // self[:K][:int4|:int8]: the first K layers (default half; all when quantized), optionally quantized
        const [a1, a2, ...rest] = part.split(':').slice(1);
        const [kArg, q] = a1?.startsWith('int') ? [undefined, a1] : [a1, a2];
        if (rest.length || (a1?.startsWith('int') && a2 !== undefined) || (q !== undefined && !/^int[48]$/.test(q))) {
          throw new UsageError(`--speculative '${part}': expected self[:K][:int4|:int8]`);
        }
        const k =
          kArg === undefined
            ? q
              ? c.layers
              : Math.max(1, Math.floor(c.layers / 2))
            : intOf('--speculative self:K', kArg, 1, c.layers);
        const bytes = readFileSync(file);
        const magic = new TextDecoder().decode(bytes.subarray(0, 4));
        const { weights } =
          magic === 'GGUF'
            ? (await import('./frontends/gguf.js')).ggufModel(bytes)
            : (await import('./frontends/llama2c.js')).loadLlama2c(bytes);
        const bits = q === 'int4' ? 4 : q === 'int8' ? 8 : undefined;
        sources.push(
          await ModelDraft.self(
            c,
            weights,
            { layers: k, ...(bits ? { bits } : {}) },
            { backend, blockSize, numBlocks },
          ),
        );
      } else if (kind === 'draft') {
        if (values.draft === undefined) throw new UsageError('--speculative draft needs --draft MODEL');
        const d = loadLanguageModel(values.draft, { tokenizer: values.tokenizer, paged: { blockSize } });
        if (d.config.vocab !== model.config.vocab) {
          throw new UsageError(
            `--draft has ${d.config.vocab} tokens, the model ${model.config.vocab}: they must share the tokenizer`,
          );
        }
        const dm = await PagedLanguageModel.create(d, { backend, numBlocks });
        sources.push(new ModelDraft(dm, 'draft', true));
      } else {
        throw new UsageError(
          `unknown --speculative '${part}' (expected ngram[:N], self[:K][:int4], draft, medusa:HEADS, or a mix joined by +)`,
        );
      }
    }
    const ids = tok.encode(values.prompt!, { bos: tok.bos !== undefined });
    const dec = new SpeculativeDecoder(lm, { draft: sources, draftLen, ...(treeMode ? { tree: {} } : {}) });
    const stop = tok.eos !== undefined ? [tok.eos] : [];
    const out: number[] = [];
    for await (const t of dec.generate(ids, { ...opts, stop })) out.push(t);
    io.out(`${tok.decode([...ids, ...out]).slice(tok.decode(ids).length)}\n`);
    const s = dec.stats!;
    io.err(
      `${s.generatedTokens} tokens on ${lm.session.backend} (speculative ${label}, ` +
        `${treeMode ? `${(s.meanTreeNodes ?? 0).toFixed(1)} tree nodes per pass` : `draft length ${draftLen}`}): ` +
        `decode ${s.decodeTokPerS.toFixed(1)} tok/s; ${s.targetPasses} target passes (${s.passesPerToken.toFixed(2)} per token), ` +
        `${s.acceptedTokens} of ${s.draftedTokens} draft tokens accepted (${(100 * s.acceptanceRate).toFixed(0)}%), ` +
        `${s.acceptedPerPass.toFixed(2)} accepted per pass\n`,
    );
  } finally {
    for (const s of sources) s.dispose?.();
    lm.dispose();
  }
  return 0;
}

/** `kiln fit-medusa MODEL TEXT --heads K --out HEADS.json`: Medusa heads fitted on text (src/generate/medusa.ts). */
async function fitMedusaCmd(rest: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(
    'fit-medusa',
    rest,
    {
      tokenizer: { type: 'string' },
      heads: { type: 'string' },
      epochs: { type: 'string' },
      lr: { type: 'string' },
      'max-tokens': { type: 'string' },
      plain: { type: 'boolean' },
      out: { type: 'string' },
      backend: { type: 'string' },
    },
    true,
  );
  if (positionals.length !== 2) throw new UsageError('fit-medusa needs a model file and a text file');
  const [file, textFile] = positionals as [string, string];
  requireFile('fit-medusa', file);
  requireFile('fit-medusa', textFile);
  if (!values.out) throw new UsageError('fit-medusa needs --out HEADS.json');
  const { loadLanguageModel } = await import('./generate/load.js');
  const { fitMedusa } = await import('./generate/medusa.js');
  const model = loadLanguageModel(file, { tokenizer: values.tokenizer });
  if (!model.tokenizer) throw new UsageError('no tokenizer found beside the model: give --tokenizer FILE');
  const r = await fitMedusa(model.graph, model.tokenizer, readFileSync(textFile, 'utf8'), {
    heads: values.heads === undefined ? 3 : intOf('--heads', values.heads, 1, 16),
    epochs: values.epochs === undefined ? 3 : intOf('--epochs', values.epochs, 1, 100),
    lr: values.lr === undefined ? 1e-2 : numOf('--lr', values.lr, 1e-6, 1),
    sequential: !values.plain,
    backend: backendOf(values.backend, 'auto'),
    ...(values['max-tokens'] === undefined
      ? {}
      : { maxTokens: intOf('--max-tokens', values['max-tokens'], 1, 1 << 24) }),
  });
  writeFileSync(values.out, JSON.stringify(r.heads.toJSON()));
  io.out(
    `${r.heads.heads} ${values.plain ? 'Medusa' : 'sequential Medusa'} heads fitted on ${r.trainTokens} tokens in ` +
      `${r.seconds.toFixed(1)} s → ${values.out}\nheld-out top-1 accuracy at each head's offset (${r.heldOutTokens} tokens):\n`,
  );
  r.accuracy.forEach((a, j) =>
    io.out(
      `  head ${j + 1} (token +${j + 2}): ${(100 * a.before).toFixed(1)}% before → ${(100 * a.after).toFixed(1)}%\n`,
    ),
  );
  return 0;
}

async function perplexityCmd(rest: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(
    'perplexity',
    rest,
    {
      tokenizer: { type: 'string' },
      window: { type: 'string' },
      backend: { type: 'string' },
      'max-windows': { type: 'string' },
    },
    true,
  );
  if (positionals.length !== 2) throw new UsageError('perplexity needs a model file and a text file');
  const [modelFile, textFile] = positionals as [string, string];
  requireFile('perplexity', modelFile);
  requireFile('perplexity', textFile);
  if (values.tokenizer !== undefined) requireFile('--tokenizer', values.tokenizer);
  const window = values.window === undefined ? 256 : intOf('--window', values.window, 2, 1 << 20);
  const maxWindows =
    values['max-windows'] === undefined ? undefined : intOf('--max-windows', values['max-windows'], 1, 1 << 30);
  const backend = backendOf(values.backend, 'auto');
  const { loadLanguageModel } = await import('./generate/load.js');
  const { LanguageModelSession } = await import('./generate/lm.js');
  const { perplexity } = await import('./generate/text.js');
  const model = loadLanguageModel(modelFile, { tokenizer: values.tokenizer });
  if (!model.tokenizer) throw new UsageError('no tokenizer found beside the model: give --tokenizer FILE');
  if (window > model.config.maxSeq)
    throw new UsageError(`--window ${window} is longer than the model's ${model.config.maxSeq} positions`);
  const lm = await LanguageModelSession.create(model, { backend });
  try {
    const r = await perplexity(lm, model.tokenizer, readFileSync(textFile, 'utf8'), { window, maxWindows });
    io.out(
      `perplexity ${r.perplexity.toFixed(4)} (mean NLL ${r.nll.toFixed(5)} nats) over ${r.tokens} tokens in ${r.windows} windows of ${window}, on ${lm.session.backend}\n`,
    );
  } finally {
    lm.dispose();
  }
  return 0;
}

async function dispatch(argv: readonly string[], io: CliIo): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      io.out(HELP + '\n');
      return 0;
    case '--version':
    case '-v':
      io.out(version() + '\n');
      return 0;
    case 'conformance':
      return conformance(rest, io);
    case 'ir':
    case 'kernels':
      return inspect(cmd, rest, io);
    case 'inspect':
      return inspectCmd(rest, io);
    case 'tune':
      return tuneCmd(rest, io);
    case 'demo':
      return demo(rest, io);
    case 'generate':
      // split across MPI ranks (issue 15): the parallel runtime owns these flags
      if (rest.some((a) => /^--(tp|pp)(=|$)/.test(a)))
        return (await import('./parallel-cli.js')).generateParallelCommand(rest, io);
      return generate(rest, io);
    case 'perplexity':
      return perplexityCmd(rest, io);
    case 'quantize':
      return (await import('./quantize.js')).quantizeCommand(rest, io);
    case 'export':
      return (await import('./export-cli.js')).exportCommand(rest, io);
    case 'fit-medusa':
      return fitMedusaCmd(rest, io);
    case 'compile':
      return (await import('./aot-cli.js')).compileCommand(rest, io, version());
    case 'prune':
      return (await import('./prune.js')).pruneCommand(rest, io);
    case 'plan':
      return (await import('./parallel-cli.js')).planCommand(rest, io);
    case 'run-parallel':
      return (await import('./parallel-cli.js')).runParallelCommand(rest, io);
    default:
      throw new UsageError(
        `unknown command '${cmd}' (commands: demo, generate, perplexity, conformance, ir, kernels, inspect, tune, quantize, prune, export, compile, fit-medusa, plan, run-parallel, help; see kiln --help)`,
      );
  }
}

/** One line, whatever the message holds (device errors carry driver output over several lines). */
function oneLine(s: string): string {
  return s.trim().replace(/\s*\n\s*/g, ' | ');
}

/** Runs one command line; returns the exit status. Never throws and never exits the process. */
export async function main(argv: readonly string[], io: CliIo = processIo): Promise<number> {
  try {
    return await dispatch(argv, io);
  } catch (e) {
    if (e instanceof KilnError) {
      io.err(`kiln: ${oneLine(e.message)}\n`);
      return 2;
    }
    const err = e instanceof Error ? e : new Error(String(e));
    const detail = process.env['KILN_DEBUG']
      ? `\n${err.stack ?? ''}`
      : ' (a bug in kiln: KILN_DEBUG=1 shows the stack)';
    io.err(`kiln: internal error: ${oneLine(err.message)}${detail}\n`);
    return 3;
  }
}

/** True when this module is the program (`node dist/src/cli.js`, or the `kiln` bin link to it), not an import. */
function isEntry(): boolean {
  try {
    return realpathSync(process.argv[1] ?? '') === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntry()) {
  void main(process.argv.slice(2)).then((code) => process.exit(code));
}
