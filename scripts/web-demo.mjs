/**
 * The browser demo (examples/web): `node scripts/web-demo.mjs [--serve [PORT]]` bundles examples/web/main.ts with
 * esbuild (the `kiln` import resolved to this checkout's src/index.ts; Node-only modules, which compile() loads on
 * demand and a page never runs, stubbed) into examples/web/dist with index.html and the bundled model, and with
 * --serve serves that folder on 127.0.0.1 (default port 8080). `buildDemo` is what the browser test runs.
 */
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { dirname, extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.bin': 'application/octet-stream' };

/** Bundle the demo into `out` (default examples/web/dist); returns the folder. */
export async function buildDemo(out = join(ROOT, 'examples/web/dist')) {
  const { build } = await import('esbuild');
  mkdirSync(join(out, 'models'), { recursive: true });
  await build({
    entryPoints: [join(ROOT, 'examples/web/main.ts')],
    outfile: join(out, 'demo.js'),
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    minify: true,
    alias: { kiln: join(ROOT, 'src/index.ts'), 'kiln/runtime': join(ROOT, 'src/runtime-entry.ts') },
    plugins: [
      {
        name: 'node-stubs',
        setup(b) {
          b.onResolve({ filter: /^(node:.*|webgpu|koffi)$/ }, (a) => ({ path: a.path, namespace: 'stub' }));
          b.onLoad({ filter: /.*/, namespace: 'stub' }, () => ({ contents: 'module.exports = {};', loader: 'js' }));
        },
      },
    ],
    logLevel: 'warning',
  });
  copyFileSync(join(ROOT, 'examples/web/index.html'), join(out, 'index.html'));
  for (const f of ['stories260K.bin', 'tok512.bin', 'LICENSE'])
    copyFileSync(join(ROOT, 'models', f), join(out, 'models', f));
  return out;
}

/** Serve a folder on 127.0.0.1:port; `onPost(path, body)` hears POSTs (the test's report). Resolves to the server. */
export function serve(dir, port = 0, onPost = undefined) {
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (req.method === 'POST') {
      let body = '';
      req.on('data', (c) => (body += c.toString()));
      req.on('end', () => {
        res.end('ok');
        onPost?.(url.pathname, body);
      });
      return;
    }
    const rel = normalize(url.pathname === '/' ? '/index.html' : url.pathname).replace(/^(\.\.[/\\])+/, '');
    try {
      const data = readFileSync(join(dir, rel));
      res.writeHead(200, { 'content-type': TYPES[extname(rel)] ?? 'application/octet-stream' });
      res.end(data);
    } catch {
      res.writeHead(404).end('not found');
    }
  });
  return new Promise((res) => server.listen(port, '127.0.0.1', () => res(server)));
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const out = await buildDemo();
  console.log(`built ${out}`);
  const i = process.argv.indexOf('--serve');
  if (i >= 0) {
    const server = await serve(out, Number(process.argv[i + 1] ?? 8080));
    console.log(`serving on http://127.0.0.1:${server.address().port}/ (Chromium: --enable-unsafe-webgpu)`);
  }
}
