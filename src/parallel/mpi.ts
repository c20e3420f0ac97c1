/**
 * Open MPI from Node: the C shim (`mpi-shim-source.ts`) compiled with `mpicc` into the kiln cache on first use
 * (keyed by the source's hash; written to a temporary file and renamed, so ranks compiling at once never see half a
 * library), loaded with koffi. Typed errors name what is missing: koffi, mpicc, or the compiled library.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { KilnError, UnsupportedError } from '../../ir/errors.js';
import { kilnCacheRoot } from '../runtime/cuda-emu/emu.js';
import { MPI_SHIM_SOURCE } from './mpi-shim-source.js';

interface KoffiLib {
  func(proto: string): (...args: unknown[]) => unknown;
}
interface Koffi {
  load(p: string): KoffiLib;
}

export function loadKoffi(what: string): Koffi {
  try {
    return createRequire(import.meta.url)('koffi') as Koffi;
  } catch (e) {
    throw new UnsupportedError(`${what} needs the FFI package koffi: ${(e as Error).message}`, { limit: 'koffi' });
  }
}

/** Path of the compiled shim, compiling it when absent. `mpicc` may be overridden by `$KILN_MPICC`. */
export function mpiShimLibrary(env: NodeJS.ProcessEnv = process.env): string {
  const hash = createHash('sha256').update(MPI_SHIM_SOURCE).digest('hex').slice(0, 16);
  const dir = path.join(kilnCacheRoot(env), 'mpi');
  const lib = path.join(dir, `libkiln-mpi-${hash}.so`);
  if (existsSync(lib)) return lib;
  mkdirSync(dir, { recursive: true });
  const src = path.join(dir, `kiln-mpi-${hash}.${process.pid}.c`);
  const tmp = `${lib}.${process.pid}.tmp`;
  writeFileSync(src, MPI_SHIM_SOURCE);
  const mpicc = env['KILN_MPICC'] ?? 'mpicc';
  try {
    execFileSync(mpicc, ['-shared', '-fPIC', '-O2', '-o', tmp, src], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: Buffer };
    if (err.code === 'ENOENT') {
      rmSync(src, { force: true });
      throw new UnsupportedError(`MPI: '${mpicc}' not found (install openmpi-bin / libopenmpi-dev)`, {
        limit: 'mpicc',
      });
    }
    rmSync(src, { force: true });
    throw new KilnError('device', `MPI: compiling the shim failed: ${err.stderr?.toString() ?? err.message}`, {
      limit: 'mpicc',
    });
  }
  renameSync(tmp, lib);
  rmSync(src, { force: true });
  return lib;
}

/** The MPI world as kiln uses it. All buffers are Float64Array / Float32Array passed by pointer. */
export interface Mpi {
  readonly rank: number;
  readonly size: number;
  /** Restrict the collectives to the ranks sharing `color` (ordered by `key`); point-to-point stays on the world. */
  group(color: number, key: number): void;
  /** Sum `buf` over the group's ranks, in place (every rank ends with the sum). */
  allreduce(buf: Float64Array): void;
  /** Gather over the group of `groupSize` ranks (the world unless `group` split it). */
  allgather(send: Float64Array, groupSize: number): Float64Array;
  /** Blocking send of `buf` to world rank `dest` with `tag`. */
  send(buf: Float64Array, dest: number, tag: number): void;
  /** Blocking receive into `buf` (its length is the count expected) from world rank `src` with `tag`. */
  recv(buf: Float64Array, src: number, tag: number): void;
  /** Broadcast `buf` from world rank `root` to every rank, in place. */
  bcast(buf: Float64Array, root: number): void;
  /** Wait until every rank of the world reaches the barrier. */
  barrier(): void;
  /** MPI_Wtime: seconds on this rank's clock. */
  wtime(): number;
  /** MPI_Finalize (idempotent); no MPI call is allowed afterwards. */
  finalize(): void;
  /** Bytes this rank sent through collectives and point-to-point calls. */
  readonly bytes: { value: number };
}

let memo: Mpi | undefined;

/** Initialize MPI (once per process) and bind the shim. */
export function mpiWorld(env: NodeJS.ProcessEnv = process.env): Mpi {
  if (memo) return memo;
  const k = loadKoffi('MPI');
  const libPath = mpiShimLibrary(env);
  let lib: KoffiLib;
  try {
    lib = k.load(libPath);
  } catch (e) {
    throw new KilnError('device', `MPI: cannot load ${libPath}: ${(e as Error).message}`, { limit: 'libmpi' });
  }
  const f = (proto: string) => lib.func(proto);
  const init = f('int kiln_mpi_init(void)');
  const rankF = f('int kiln_mpi_rank(void)');
  const sizeF = f('int kiln_mpi_size(void)');
  const groupF = f('int kiln_mpi_group(int color, int key)');
  const allreduce = f('int kiln_mpi_allreduce_f64(_Inout_ double *buf, int64_t n)');
  const allgather = f('int kiln_mpi_allgather_f64(const double *send, int64_t n, _Out_ double *recv)');
  const sendF = f('int kiln_mpi_send_f64(const double *buf, int64_t n, int dest, int tag)');
  const recvF = f('int kiln_mpi_recv_f64(_Out_ double *buf, int64_t n, int src, int tag)');
  const bcastF = f('int kiln_mpi_bcast_f64(_Inout_ double *buf, int64_t n, int root)');
  const barrierF = f('int kiln_mpi_barrier(void)');
  const wtimeF = f('double kiln_mpi_wtime(void)');
  const finalizeF = f('int kiln_mpi_finalize(void)');
  const check = (rc: unknown, what: string) => {
    if (rc !== 0) throw new KilnError('device', `MPI: ${what} returned ${String(rc)}`, { limit: 'mpi' });
  };
  check(init(), 'MPI_Init');
  const size = sizeF() as number;
  const bytes = { value: 0 };
  memo = {
    rank: rankF() as number,
    size,
    bytes,
    group(color, key) {
      check(groupF(color, key), 'MPI_Comm_split');
    },
    allreduce(buf) {
      check(allreduce(buf, buf.length), 'MPI_Allreduce');
      bytes.value += buf.byteLength;
    },
    allgather(send, groupSize) {
      const recv = new Float64Array(send.length * groupSize);
      check(allgather(send, send.length, recv), 'MPI_Allgather');
      bytes.value += send.byteLength;
      return recv;
    },
    send(buf, dest, tag) {
      check(sendF(buf, buf.length, dest, tag), 'MPI_Send');
      bytes.value += buf.byteLength;
    },
    recv(buf, src, tag) {
      check(recvF(buf, buf.length, src, tag), 'MPI_Recv');
    },
    bcast(buf, root) {
      check(bcastF(buf, buf.length, root), 'MPI_Bcast');
    },
    barrier() {
      check(barrierF(), 'MPI_Barrier');
    },
    wtime: () => wtimeF() as number,
    finalize() {
      check(finalizeF(), 'MPI_Finalize');
    },
  };
  return memo;
}
