#!/usr/bin/env node
/** The `kiln` command line. */
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { KilnError } from '../ir/errors.js';
import { runConformance } from './conformance.js';
import { runDemo } from './demo.js';
import { BACKENDS, type BackendName } from './session.js';

const HELP = `kiln — kernel compiler and graph optimizer for transformer inference

Usage: kiln <command> [options]

Commands:
  demo [--backend B] [--seq N]        build the built-in tiny transformer, compile and run it, print what happened
  conformance DIR... [options]        run ONNX backend-test folders (model.onnx + test_data_set_N)
      --backend B                     ${BACKENDS.join(' | ')} (default reference)
      --opt N                         0: run the graph as imported; 1 (default): full pipeline
      --json FILE                     write the results as JSON
      --tolerances FILE               per-test overrides: { "test_name": { "rtol": r, "atol": a, "why": "..." } }
      --quiet                         print only failures and the summary
  ir FILE [--dims n=v,...]            print the model's kiln IR (text format) after import
  kernels FILE --target wgsl|cuda [--dims n=v,...]
                                      print the kernels kiln generates for these input shapes (nothing runs)
  help                                this text

Exit status: 0 on success, 1 when a conformance test failed, 2 on bad usage.`;

function backendOf(v: string | undefined): BackendName {
  const b = (v ?? 'reference') as BackendName;
  if (!BACKENDS.includes(b)) usage(`unknown backend '${v}' (expected ${BACKENDS.join(', ')})`);
  return b;
}

function usage(msg: string): never {
  process.stderr.write(`kiln: ${msg}\n\n${HELP}\n`);
  process.exit(2);
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === 'help' || cmd === '--help' || cmd === '-h') {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  if (cmd === 'conformance') {
    const { values, positionals } = parseArgs({
      args: rest,
      allowPositionals: true,
      options: {
        backend: { type: 'string' },
        opt: { type: 'string' },
        json: { type: 'string' },
        tolerances: { type: 'string' },
        quiet: { type: 'boolean' },
      },
    });
    if (positionals.length === 0) usage('conformance needs at least one DIR');
    const quiet = values.quiet === true;
    const summary = await runConformance(positionals, {
      backend: backendOf(values.backend),
      opt: values.opt === undefined ? 1 : Number(values.opt),
      overrides: values.tolerances ? JSON.parse(readFileSync(values.tolerances, 'utf8')) : undefined,
      log: (line) => {
        if (!quiet || !line.startsWith('PASS')) process.stdout.write(line + '\n');
      },
    });
    if (values.json) writeFileSync(values.json, JSON.stringify(summary, null, 2));
    process.stdout.write(`${summary.passed} passed, ${summary.failed} failed, ${summary.skipped} skipped\n`);
    return summary.failed > 0 ? 1 : 0;
  }
  if (cmd === 'ir' || cmd === 'kernels') {
    const { values, positionals } = parseArgs({
      args: rest,
      allowPositionals: true,
      options: { dims: { type: 'string' }, target: { type: 'string' } },
    });
    if (positionals.length !== 1) usage(`${cmd} needs one model file`);
    const { loadModel, parseDims, kernelSources, printGraph } = await import('./inspect.js');
    const graph = loadModel(positionals[0]!, parseDims(values.dims));
    if (cmd === 'ir') {
      process.stdout.write(printGraph(graph));
      return 0;
    }
    const target = values.target ?? 'wgsl';
    if (target !== 'wgsl' && target !== 'cuda') usage(`unknown target '${target}' (expected wgsl or cuda)`);
    process.stdout.write(await kernelSources(graph, target));
    return 0;
  }
  if (cmd === 'demo') {
    const { values } = parseArgs({ args: rest, options: { backend: { type: 'string' }, seq: { type: 'string' } } });
    await runDemo({
      backend: values.backend ? backendOf(values.backend) : undefined,
      seq: values.seq ? Number(values.seq) : undefined,
      log: (s) => process.stdout.write(s + '\n'),
    });
    return 0;
  }
  usage(`unknown command '${cmd}'`);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    if (e instanceof KilnError) {
      process.stderr.write(`kiln: ${e.name}: ${e.message}\n`);
      process.exit(1);
    }
    if (e instanceof Error && 'code' in e && String((e as { code: unknown }).code).startsWith('ERR_PARSE_ARGS')) {
      usage(e.message);
    }
    throw e;
  },
);
