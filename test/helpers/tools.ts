/**
 * The one gate for tests that need something outside the repo: a WebGPU adapter, g++ (cuda-emu), Chromium, nvcc,
 * libnvrtc, the ../shared data, an NVIDIA driver. Locally a missing tool skips its tests, with the reason shown as a
 * skipped test. With CI=true it is a failure: CI installs every tool, so a skip there would mean a whole family of
 * tests silently never ran.
 */
import { existsSync } from 'node:fs';
import { it, type TestContext } from 'vitest';
import { CONFORMANCE } from './paths.js';

export const IN_CI = /^(1|true|yes)$/i.test(process.env['CI'] ?? '');

/** Why a tool is missing (with how to get it), or undefined when it is there. */
export type Probe = () => string | undefined | Promise<string | undefined>;

/**
 * Probes a tool once; returns true when the caller must skip (tool missing, not in CI). Call it at the top level of a
 * test file (or inside a `describe`): it registers a test stating the outcome where it is called — skipped with the
 * reason locally, failing with the reason in CI. In CI the caller's tests still skip, and are counted as skipped.
 */
export async function requireTool(name: string, probe: Probe): Promise<boolean> {
  let why: string | undefined;
  try {
    why = await probe();
  } catch (e) {
    why = `probe failed: ${e instanceof Error ? e.message : String(e)}`;
  }
  if (why === undefined) return false;
  const title = `needs ${name}: ${why}`;
  if (IN_CI) {
    it(title, () => {
      throw new Error(`CI=true but ${name} is missing: ${why} (CI must install it; see .ci/run)`);
    });
  } else {
    console.warn(`skipping tests that need ${name}: ${why}`);
    it.skip(title, () => {});
  }
  return true;
}

/** Inside a running test: skip it for a missing device capability locally, fail it in CI. */
export function skipUnless(t: TestContext, ok: boolean, why: string): void {
  if (ok) return;
  if (IN_CI) throw new Error(`CI=true but ${why}`);
  t.skip(why);
}

/** Probe for a file the tests need (a binary, a library). */
export const fileProbe =
  (path: string, hint: string): Probe =>
  () =>
    existsSync(path) ? undefined : `${path} not found (${hint})`;

/** Probe for ../shared/conformance (the ONNX node tests and models the conformance and compile checks use). */
export const sharedProbe: Probe = fileProbe(CONFORMANCE, 'clone the shared data beside the repo as ../shared');

/** Probe for the cuda-emu backend: g++ >= 12 on x86-64 Linux. */
export const emuProbe: Probe = async () => {
  const { emuAvailable } = await import('../../src/runtime/cuda-emu/index.js');
  return (await emuAvailable()) ? undefined : 'the CPU emulator needs g++ >= 12 on x86-64 Linux (apt-get install g++)';
};
