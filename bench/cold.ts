/**
 * Cold start of one engine in this (fresh) process, started by bench/models.ts: prints one JSON line
 * `{"createMs", "firstMs"}`. "create" is everything between having the test data in memory and the first run —
 * loading the library (and Dawn), importing the model, creating the session and its device; "first run" includes
 * pipeline and lavapipe shader compilation.
 *
 *   node --liftoff-only node_modules/.cache/kiln-bench/bench/cold.js kiln|ort-webgpu <model folder>
 */
import { kilnRunner, loadCase, ortRunner, type Runner } from './engines.js';
import { loadPeer, PEER_MISSING } from './peer.js';

const [engine, dir] = process.argv.slice(2) as [string, string];
const c = loadCase(dir);
const t0 = performance.now();
let r: Runner;
if (engine === 'kiln') {
  r = await kilnRunner(c);
} else if (engine === 'ort-webgpu') {
  const ort = await loadPeer();
  if (!ort) throw new Error(PEER_MISSING);
  r = await ortRunner(ort, c, 'webgpu');
} else {
  throw new Error(`cold.js: unknown engine ${engine} (kiln | ort-webgpu)`);
}
const t1 = performance.now();
await r.run();
const t2 = performance.now();
console.log(JSON.stringify({ createMs: t1 - t0, firstMs: t2 - t1 }));
process.exit(0); // do not wait on Dawn's handles
