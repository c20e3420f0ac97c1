/**
 * The device backends a test can run on here: webgpu (needs a Vulkan adapter) and cuda-emu (needs g++ on x86-64
 * Linux). Call at a test file's top level: a missing one goes through `requireTool` (a skipped test saying why
 * locally, a failing one in CI), so CI never goes green by testing nothing.
 */
import type { BackendName } from '../../src/session.js';
import { webgpuUnavailable } from './backends.js';
import { emuProbe, requireTool } from './tools.js';

export async function deviceBackends(): Promise<BackendName[]> {
  const out: BackendName[] = [];
  if (!(await requireTool('a WebGPU adapter', webgpuUnavailable))) out.push('webgpu');
  if (!(await requireTool('g++ (cuda-emu)', emuProbe))) out.push('cuda-emu');
  return out;
}
