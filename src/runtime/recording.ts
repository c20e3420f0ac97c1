/**
 * A device backend that runs nothing: it records the kernels and launches a run would make. Used to render kernels
 * without a device (golden files, nvcc compile checks) — outputs read back as zeros — and by `kiln inspect`, which
 * also reads what each launch binds (buffer sizes, read / written), the views bound instead of kernels, and memory.
 */
import type { Kernel } from '../../codegen/kir.js';
import { DEFAULT_CAPS, type DeviceCaps } from '../../codegen/lower/storage.js';
import type { DeviceBackend, LaunchStep } from './executor.js';

/** A step as recorded: the executor's {@link LaunchStep}, whose buffers and inspection fields may be absent. */
export type RecordedStep = Pick<LaunchStep<number>, 'kernel' | 'grid'> & Partial<LaunchStep<number>>;

/** One launch: its kernel, the node it serves, and per bound buffer its id, the bytes it covers and its access. */
export interface RecordedLaunch {
  kernel: string;
  grid: [number, number, number];
  node?: string;
  op?: string;
  buffers: { id: number; bytes: number; access: 'read' | 'read_write' }[];
}

export class RecordingBackend implements DeviceBackend<number> {
  readonly name = 'recording';
  readonly kernels = new Map<string, Kernel>();
  readonly launches: RecordedLaunch[] = [];
  /** Every buffer allocated: its size and label (the value it holds). */
  readonly allocs = new Map<number, { bytes: number; label: string }>();
  /** Buffers the host wrote (constants, host feeds, error flags) and buffers it read back (outputs). */
  readonly uploaded = new Set<number>();
  readonly readBack = new Set<number>();
  /** Movement nodes bound as views / aliases (no kernel), in run order. */
  readonly views: { node: string; op: string }[] = [];
  /** Bytes allocated and not released now, and the most ever at once. */
  liveBytes = 0;
  peakBytes = 0;
  private next = 0;
  constructor(readonly caps: DeviceCaps = DEFAULT_CAPS) {}
  alloc(bytes: number, label: string): number {
    const id = this.next++;
    this.allocs.set(id, { bytes, label });
    this.liveBytes += bytes;
    this.peakBytes = Math.max(this.peakBytes, this.liveBytes);
    return id;
  }
  write(buf: number): void {
    this.uploaded.add(buf);
  }
  release(buf: number): void {
    this.liveBytes -= this.allocs.get(buf)?.bytes ?? 0;
  }
  async prepare(kernels: readonly Kernel[], onCompiled?: (kernel: string) => void): Promise<void> {
    for (const k of kernels) {
      this.kernels.set(k.name, k);
      onCompiled?.(k.name);
    }
  }
  async run(steps: readonly RecordedStep[]): Promise<void> {
    for (const s of steps) {
      const buffers = (s.buffers ?? []).map((id, i) => ({
        id,
        bytes: s.viewBytes?.[i] ?? this.allocs.get(id)?.bytes ?? 0,
        access: s.kernel.buffers[i]?.access ?? 'read_write',
      }));
      this.launches.push({ kernel: s.kernel.name, grid: s.grid, node: s.node, op: s.op, buffers });
    }
  }
  async read(buf: number, bytes: number): Promise<Uint8Array> {
    this.readBack.add(buf);
    return new Uint8Array(bytes);
  }
  viewBound(node: string, op: string): void {
    this.views.push({ node, op });
  }
}
