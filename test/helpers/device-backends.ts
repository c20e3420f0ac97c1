/**
 * The device backends a test can run on here: webgpu (needs a Vulkan adapter) and cuda-emu (needs g++ on x86-64
 * Linux). Locally a missing one is left out with a note; with CI=true a missing one is an error, so CI never goes
 * green by testing nothing.
 */
import type { BackendName } from '../../src/session.js';
import { webgpuUnavailable } from './backends.js';

async function cudaEmuUnavailable(): Promise<string | undefined> {
  try {
    const { requireEmulator } = await import('../../src/runtime/cuda-emu/backend.js');
    await requireEmulator();
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

export async function deviceBackends(): Promise<BackendName[]> {
  const out: BackendName[] = [];
  for (const [name, why] of [
    ['webgpu', await webgpuUnavailable()],
    ['cuda-emu', await cudaEmuUnavailable()],
  ] as const) {
    if (why === undefined) out.push(name);
    else if (process.env['CI'] === 'true') throw new Error(`CI=true but backend ${name} is unavailable: ${why}`);
    else console.warn(`${name} left out: ${why}`);
  }
  return out;
}
