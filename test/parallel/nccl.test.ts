/**
 * NCCL up to the library boundary: every declared prototype parses (koffi, no library needed), a missing
 * libnccl.so.2 is an UnsupportedError naming it; where the library exists (a GPU machine), the version and a
 * one-rank communicator are real calls (test/gpu is where bench/gpu.sh runs the GPU side).
 */
import { describe, expect, it } from 'vitest';
import { UnsupportedError } from '../../ir/errors.js';
import { checkNcclDeclarations, loadNccl, NCCL_PROTOTYPES } from '../../src/parallel/index.js';

describe('NCCL binding', () => {
  it('declares the collectives kiln uses, and every prototype parses', () => {
    const names = NCCL_PROTOTYPES.map((p) => /(\w+)\(/.exec(p)![1]);
    expect(names).toEqual(
      expect.arrayContaining([
        'ncclCommInitRank',
        'ncclAllReduce',
        'ncclAllGather',
        'ncclReduceScatter',
        'ncclSend',
        'ncclRecv',
      ]),
    );
    expect(checkNcclDeclarations()).toBe(NCCL_PROTOTYPES.length);
  });

  it('a missing libnccl.so.2 is a typed error naming it', () => {
    const load = () => loadNccl({ KILN_LIBNCCL: '/nonexistent/libnccl.so.2' });
    expect(load).toThrow(UnsupportedError);
    expect(load).toThrow(/libnccl\.so\.2 not found.*\/nonexistent/);
  });
});
