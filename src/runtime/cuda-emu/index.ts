/**
 * The CUDA C CPU emulator runtime: compile kiln's CUDA C kernels with g++ against an emulation header and run them
 * with CUDA semantics (fibers per thread, real barriers, warp shuffles, per-block shared memory) in a child process.
 */
export {
  compileEmu,
  DEFAULT_CACHE_MAX_MB,
  emuAvailable,
  EmuError,
  EMU_BASE_FLAGS,
  kilnCacheRoot,
  MAX_EMU_TRANSFER_BYTES,
  pruneCache,
} from './emu.js';
export type { CompileEmuOptions, EmuKernelSignature, EmuModule, EmuRunOptions } from './emu.js';
export { encodePlan, decodeResult, ARG_KIND, ARG_KIND_NAMES } from './plan.js';
export type { Dim3, EmuArg, EmuBuffer, EmuLaunch, EmuPlan, EmuResult } from './plan.js';
