/**
 * NCCL on a real NVIDIA GPU (`npm run test:gpu`, run by bench/gpu.sh): the library loads through koffi, reports its
 * version, and a one-rank communicator is created and destroyed — the code path a single-GPU TP run takes.
 */
import { describe, expect, it } from 'vitest';
import { loadNccl } from '../../src/parallel/nccl.js';
import { CudaDriver } from '../../src/runtime/cuda/driver.js';
import { requireTool } from '../helpers/tools.js';

const noNccl = await requireTool('an NVIDIA driver and libnccl.so.2', () => {
  try {
    CudaDriver.load();
    loadNccl();
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
});

describe.skipIf(noNccl)('NCCL, one rank', () => {
  it('loads, reports its version and makes a one-rank communicator', () => {
    const nccl = loadNccl();
    const v = nccl.version();
    console.log(`NCCL ${nccl.path}: version code ${v}`);
    expect(v).toBeGreaterThan(20000);
    const comm = nccl.initRank(1, 0, nccl.uniqueId());
    expect(comm).not.toBeNull();
    nccl.destroy(comm);
  });
});
