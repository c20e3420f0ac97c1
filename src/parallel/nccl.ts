/**
 * NCCL through koffi for CUDA ranks: `libnccl.so.2` loaded where it exists (`$KILN_LIBNCCL` overrides the search),
 * the functions kiln uses declared once, every ncclResult_t checked into a typed error with NCCL's own message. A
 * missing library is an `UnsupportedError` naming it. Buffers are device pointers (from the CUDA backend); one rank is
 * still a real code path (a communicator of one).
 */
import { KilnError, UnsupportedError } from '../../ir/errors.js';
import { createRequire } from 'node:module';

/** The C prototypes kiln binds (NCCL 2.x, nccl.h). `ncclUniqueId` is 128 opaque bytes. */
export const NCCL_PROTOTYPES = [
  'int ncclGetVersion(_Out_ int *version)',
  'int ncclGetUniqueId(_Out_ ncclUniqueId *id)',
  'int ncclCommInitRank(_Out_ void **comm, int nranks, ncclUniqueId id, int rank)',
  'int ncclCommDestroy(void *comm)',
  'int ncclCommCount(void *comm, _Out_ int *count)',
  'int ncclCommUserRank(void *comm, _Out_ int *rank)',
  'int ncclAllReduce(void *send, void *recv, size_t count, int datatype, int op, void *comm, void *stream)',
  'int ncclAllGather(void *send, void *recv, size_t count, int datatype, void *comm, void *stream)',
  'int ncclReduceScatter(void *send, void *recv, size_t count, int datatype, int op, void *comm, void *stream)',
  'int ncclSend(void *send, size_t count, int datatype, int peer, void *comm, void *stream)',
  'int ncclRecv(void *recv, size_t count, int datatype, int peer, void *comm, void *stream)',
  'int ncclGroupStart(void)',
  'int ncclGroupEnd(void)',
  'const char *ncclGetErrorString(int result)',
] as const;

/** ncclDataType_t / ncclRedOp_t values used by kiln. */
export const NCCL = { float32: 7, float64: 8, sum: 0 } as const;

interface KoffiLib {
  func(proto: string): (...args: unknown[]) => unknown;
}
interface Koffi {
  load(p: string): KoffiLib;
  struct(name: string, def: Record<string, unknown>): unknown;
  array(t: string, n: number): unknown;
  proto(p: string): unknown;
}

let koffiMemo: Koffi | undefined;
function koffi(): Koffi {
  if (koffiMemo) return koffiMemo;
  try {
    koffiMemo = createRequire(import.meta.url)('koffi') as Koffi;
  } catch (e) {
    throw new UnsupportedError(`NCCL needs the FFI package koffi: ${(e as Error).message}`, { limit: 'koffi' });
  }
  koffiMemo.struct('ncclUniqueId', { internal: koffiMemo.array('char', 128) });
  return koffiMemo;
}

/** Candidate library paths, in order. */
export function ncclCandidates(env: NodeJS.ProcessEnv = process.env): string[] {
  const own = env['KILN_LIBNCCL'];
  if (own) return [own];
  return ['libnccl.so.2', '/usr/lib/x86_64-linux-gnu/libnccl.so.2', '/usr/local/cuda/lib64/libnccl.so.2'];
}

/** Parse every prototype (no library needed): a malformed declaration fails here, not on a GPU machine. */
export function checkNcclDeclarations(): number {
  const k = koffi();
  for (const p of NCCL_PROTOTYPES) k.proto(p);
  return NCCL_PROTOTYPES.length;
}

/** libnccl bound through koffi: the calls a single- or multi-rank TP run needs. */
export interface Nccl {
  /** The library file loaded. */
  readonly path: string;
  /** ncclGetVersion: e.g. 22105 for 2.21.5. */
  version(): number;
  /** ncclGetUniqueId + ncclCommInitRank; returns the communicator handle. */
  initRank(nranks: number, rank: number, id?: unknown): unknown;
  /** ncclGetUniqueId: the id rank 0 makes and every rank passes to `initRank`. */
  uniqueId(): unknown;
  /** ncclCommDestroy. */
  destroy(comm: unknown): void;
  /** Every bound function by its C name (`NCCL_PROTOTYPES`), for collectives on device pointers. */
  readonly fn: Readonly<Record<string, (...args: unknown[]) => unknown>>;
}

/** Load libnccl.so.2 and bind the prototypes; typed errors when it is absent or a call fails. */
export function loadNccl(env: NodeJS.ProcessEnv = process.env): Nccl {
  const k = koffi();
  const tried: string[] = [];
  let lib: KoffiLib | undefined;
  let path = '';
  for (const p of ncclCandidates(env)) {
    try {
      lib = k.load(p);
      path = p;
      break;
    } catch (e) {
      tried.push(`${p}: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  if (!lib) {
    throw new UnsupportedError(`NCCL: libnccl.so.2 not found (tried ${tried.join('; ')})`, { limit: 'libnccl' });
  }
  const fn: Record<string, (...args: unknown[]) => unknown> = {};
  for (const p of NCCL_PROTOTYPES) fn[/(\w+)\(/.exec(p)![1]!] = lib.func(p);
  const check = (rc: unknown, what: string) => {
    if (rc !== 0) {
      const msg = fn['ncclGetErrorString']!(rc) as string;
      throw new KilnError('device', `NCCL: ${what} failed (${String(rc)}: ${msg})`, { limit: 'nccl' });
    }
  };
  return {
    path,
    fn,
    version() {
      const v = [0];
      check(fn['ncclGetVersion']!(v), 'ncclGetVersion');
      return v[0]!;
    },
    uniqueId() {
      const id = { internal: new Array<number>(128).fill(0) };
      check(fn['ncclGetUniqueId']!(id), 'ncclGetUniqueId');
      return id;
    },
    initRank(nranks, rank, id) {
      const comm = [null];
      check(fn['ncclCommInitRank']!(comm, nranks, id ?? this.uniqueId(), rank), 'ncclCommInitRank');
      return comm[0];
    },
    destroy(comm) {
      check(fn['ncclCommDestroy']!(comm), 'ncclCommDestroy');
    },
  };
}
