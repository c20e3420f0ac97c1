/**
 * The browser demo (examples/web, bundled by scripts/web-demo.mjs) in headless Chromium on navigator.gpu: it loads
 * stories260K, streams a story, lists the kernels and draws the graph as built and as optimized. The test waits for
 * the page's report (the story text, the same story from the stories260K AOT module loaded by kiln/runtime in the
 * page, the kernel count, the SVG), then takes a screenshot through the DevTools protocol
 * (over --remote-debugging-pipe) and checks it is not blank. Without Chromium it skips locally and fails in CI.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { compileModule } from '../../src/aot.js';
import { loadLanguageModel } from '../../src/generate/load.js';
import { decodePng, inkFraction } from '../helpers/png.js';
import { CHROMIUM, launchChromium } from '../helpers/chromium.js';
import { REPO_ROOT } from '../helpers/paths.js';
import { requireTool } from '../helpers/tools.js';

const noChromium = await requireTool('Chromium', () =>
  CHROMIUM ? undefined : 'no /usr/bin/chromium (apt-get install chromium)',
);

/** The DevTools protocol over Chromium's pipe (fd 3 to it, fd 4 from it; messages end with NUL). */
class Cdp {
  private id = 0;
  private buf = '';
  private readonly waiting = new Map<number, (m: { result?: unknown; error?: unknown }) => void>();
  constructor(
    private readonly to: Writable,
    from: Readable,
  ) {
    from.on('data', (c: Buffer) => {
      this.buf += c.toString();
      for (let i = this.buf.indexOf('\0'); i >= 0; i = this.buf.indexOf('\0')) {
        const m = JSON.parse(this.buf.slice(0, i)) as { id?: number; result?: unknown; error?: unknown };
        this.buf = this.buf.slice(i + 1);
        if (m.id !== undefined) this.waiting.get(m.id)?.(m);
      }
    });
  }
  send<T>(method: string, params: object = {}, sessionId?: string): Promise<T> {
    const id = ++this.id;
    return new Promise((res, rej) => {
      this.waiting.set(id, (m) => (m.error ? rej(new Error(JSON.stringify(m.error))) : res(m.result as T)));
      this.to.write(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }) + '\0');
    });
  }
}

describe.skipIf(noChromium)('the browser demo page', () => {
  it('streams a story on WebGPU, lists the kernels, draws the graph, and is not blank', async () => {
    const { buildDemo, serve } = (await import(join(REPO_ROOT, 'scripts/web-demo.mjs'))) as {
      buildDemo(out: string): Promise<string>;
      serve(dir: string, port: number, onPost: (path: string, body: string) => void): Promise<Server>;
    };
    const out = await buildDemo(mkdtempSync(join(tmpdir(), 'kiln-demo-')));
    // the same model as an AOT module beside the page: the page also generates from it with kiln/runtime
    const m = loadLanguageModel(join(REPO_ROOT, 'models/stories260K.bin'));
    compileModule({ graph: m.graph, config: m.config, tokenizerFile: m.tokenizerFile! }, join(out, 'module'));
    let resolveReport!: (body: string) => void;
    const report = new Promise<string>((res) => (resolveReport = res));
    const server = await serve(out, 0, (path, body) => path === '/report' && resolveReport(body));
    const port = (server.address() as AddressInfo).port;
    const chromium = launchChromium(
      ['--window-size=1280,1400', '--remote-debugging-pipe', `http://127.0.0.1:${port}/?report=/report&aot=module/`],
      ['ignore', 'ignore', 'ignore', 'pipe', 'pipe'],
    );
    const browser = chromium.proc;
    const cdp = new Cdp(browser.stdio[3] as Writable, browser.stdio[4] as Readable);
    let timer: NodeJS.Timeout | undefined;
    try {
      const body = await Promise.race([
        report,
        new Promise<string>(
          (_, rej) => (timer = setTimeout(() => rej(new Error('no report from the demo page in 180 s')), 180_000)),
        ),
      ]);
      const r = JSON.parse(body) as {
        text?: string;
        aotText?: string;
        kernels?: number;
        svgBytes?: number;
        error?: string;
      };
      expect(r.error).toBeUndefined();
      expect(r.text!.startsWith('Once upon a time')).toBe(true);
      expect(r.text!.length).toBeGreaterThan('Once upon a time'.length + 40);
      expect(r.kernels).toBeGreaterThan(10);
      expect(r.aotText).toBe(r.text); // the AOT module in the browser writes the JIT path's story
      expect(r.svgBytes).toBeGreaterThan(10_000);
      const { targetInfos } = await cdp.send<{ targetInfos: { targetId: string; type: string }[] }>(
        'Target.getTargets',
      );
      const page = targetInfos.find((t) => t.type === 'page')!;
      const { sessionId } = await cdp.send<{ sessionId: string }>('Target.attachToTarget', {
        targetId: page.targetId,
        flatten: true,
      });
      const shot = await cdp.send<{ data: string }>('Page.captureScreenshot', { format: 'png' }, sessionId);
      const img = decodePng(Buffer.from(shot.data, 'base64'));
      if (process.env['KILN_DEMO_SCREENSHOT']) writeFileSync(process.env['KILN_DEMO_SCREENSHOT'], shot.data, 'base64');
      expect(img.width).toBeGreaterThan(600);
      const ink = inkFraction(img);
      console.log(`demo screenshot ${img.width}×${img.height}: ${(ink * 100).toFixed(1)}% non-background pixels`);
      expect(ink).toBeGreaterThan(0.02);
    } finally {
      clearTimeout(timer);
      await chromium.close();
      server.close();
      rmSync(out, { recursive: true, force: true });
    }
  }, 240_000);
});
