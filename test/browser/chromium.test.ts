/**
 * kiln in a real browser: the page bundle (esbuild, platform browser) runs in headless Chromium, acquires WebGPU
 * through `navigator.gpu` (Chromium's SwiftShader adapter: no shader-f16, so the f32 paths) and compares the tiny GPT
 * and random graphs with the float64 reference inside the page. Without Chromium it skips locally and fails in CI
 * (`apt-get install chromium`; .ci/run installs it).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';
import { CHROMIUM, launchChromium } from '../helpers/chromium.js';
import { REPO_ROOT } from '../helpers/paths.js';
import { requireTool } from '../helpers/tools.js';

const noChromium = await requireTool('Chromium', () =>
  CHROMIUM ? undefined : 'no /usr/bin/chromium (apt-get install chromium)',
);

describe.skipIf(noChromium)('kiln in headless Chromium (navigator.gpu)', () => {
  it('runs the tiny GPT and random graphs on WebGPU and matches the float64 reference', async () => {
    const bundle = await build({
      entryPoints: [join(REPO_ROOT, 'test/browser/page.ts')],
      bundle: true,
      format: 'esm',
      platform: 'browser',
      write: false,
      // Node-only runtimes are loaded on demand by compile() and never run in a page: stub their Node imports.
      plugins: [
        {
          name: 'node-stubs',
          setup(b) {
            b.onResolve({ filter: /^(node:.*|webgpu|koffi)$/ }, (a) => ({ path: a.path, namespace: 'stub' }));
            b.onLoad({ filter: /.*/, namespace: 'stub' }, () => ({ contents: 'module.exports = {};', loader: 'js' }));
          },
        },
      ],
      logLevel: 'silent',
    });
    const js = bundle.outputFiles[0]!.text;
    const html = '<!doctype html><html><body><script type="module" src="/kiln.js"></script></body></html>';
    // A loopback server serves the page and receives its result (file:// pages cannot load modules).
    let resolveResult!: (body: string) => void;
    const result = new Promise<string>((res) => (resolveResult = res));
    const server = createServer((req, res) => {
      if (req.method === 'POST' && req.url === '/result') {
        let body = '';
        req.on('data', (c: Buffer) => (body += c.toString()));
        req.on('end', () => {
          res.end('ok');
          resolveResult(body);
        });
        return;
      }
      const isJs = req.url === '/kiln.js';
      res.writeHead(200, { 'content-type': isJs ? 'text/javascript' : 'text/html' });
      res.end(isJs ? js : html);
    });
    await new Promise<void>((res) => server.listen(0, '127.0.0.1', () => res()));
    const port = (server.address() as AddressInfo).port;
    const chromium = launchChromium(
      [
        '--disable-quic',
        ...(process.env['KILN_BROWSER_LOG'] ? ['--enable-logging=stderr', '--v=0'] : []),
        `http://127.0.0.1:${port}/`,
      ],
      process.env['KILN_BROWSER_LOG'] ? 'inherit' : 'ignore',
    );
    let timer: NodeJS.Timeout | undefined;
    let body: string;
    try {
      body = await Promise.race([
        result,
        new Promise<string>(
          (_, rej) => (timer = setTimeout(() => rej(new Error('no result from the page in 180 s')), 180_000)),
        ),
      ]);
    } finally {
      clearTimeout(timer);
      await chromium.close();
      server.close();
    }
    const r = JSON.parse(body) as { adapter: string; cases: number; mismatches: string[]; error?: string };
    console.log(`browser adapter: ${r.adapter}; ${r.cases} graphs`);
    expect(r.error).toBeUndefined();
    expect(r.mismatches).toEqual([]);
    expect(r.cases).toBe(13);
  }, 240_000);
});
