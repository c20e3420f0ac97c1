/**
 * Headless Chromium for the browser tests: its own profile folder, its own process group. Chromium forks GPU,
 * renderer and crash-handler processes that keep writing the profile after the main process dies, so closing kills
 * the whole group and waits for it before the profile is removed (removing it while a child still writes fails with
 * ENOTEMPTY — a CI run saw that once).
 */
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].find((p) =>
  existsSync(p),
);

export interface Chromium {
  proc: ChildProcess;
  /** Kills the browser's process group, waits until no process of it is left, removes the profile. */
  close(): Promise<void>;
}

const alive = (pgid: number): boolean => {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Starts Chromium headless with WebGPU on, a fresh profile and `args` after the common flags. */
export function launchChromium(args: string[], stdio: StdioOptions): Chromium {
  const profile = mkdtempSync(join(tmpdir(), 'kiln-chromium-'));
  const proc = spawn(
    CHROMIUM!,
    [
      '--headless=new',
      '--no-sandbox',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      `--user-data-dir=${profile}`,
      '--enable-unsafe-webgpu',
      '--enable-features=Vulkan',
      ...args,
    ],
    { stdio, detached: true }, // detached: a new process group, so the children can be killed with it
  );
  return {
    proc,
    async close() {
      const pgid = proc.pid;
      if (pgid !== undefined) {
        try {
          process.kill(-pgid, 'SIGKILL');
        } catch {
          // already gone
        }
        for (let i = 0; i < 100 && alive(pgid); i++) await new Promise((r) => setTimeout(r, 50));
      }
      rmSync(profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
    },
  };
}
