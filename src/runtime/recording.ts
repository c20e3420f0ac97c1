/**
 * A device backend that runs nothing: it records the kernels and launches a run would make. Used to render kernels
 * without a device (golden files, nvcc compile checks) — outputs read back as zeros.
 */
import type { Kernel } from '../../codegen/kir.js';
import { DEFAULT_CAPS, type DeviceCaps } from '../../codegen/lower/storage.js';
import type { DeviceBackend } from './executor.js';

export class RecordingBackend implements DeviceBackend<number> {
  readonly name = 'recording';
  readonly kernels = new Map<string, Kernel>();
  readonly launches: { kernel: string; grid: [number, number, number] }[] = [];
  private next = 0;
  constructor(readonly caps: DeviceCaps = DEFAULT_CAPS) {}
  alloc(): number {
    return this.next++;
  }
  write(): void {}
  release(): void {}
  async prepare(kernels: readonly Kernel[], onCompiled?: (kernel: string) => void): Promise<void> {
    for (const k of kernels) {
      this.kernels.set(k.name, k);
      onCompiled?.(k.name);
    }
  }
  async run(steps: readonly { kernel: Kernel; grid: [number, number, number] }[]): Promise<void> {
    for (const s of steps) this.launches.push({ kernel: s.kernel.name, grid: s.grid });
  }
  async read(_buf: number, bytes: number): Promise<Uint8Array> {
    return new Uint8Array(bytes);
  }
}
