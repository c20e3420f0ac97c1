/**
 * The CUDA runtime: NVRTC + the CUDA driver API through koffi, the CUDA C source of kernel IR, typed CUDA errors.
 * Needs libcuda (an NVIDIA driver) and libnvrtc; without them, {@link CudaBackend.create} throws a KilnError with
 * code `unsupported`.
 */
export { CudaBackend, launchParams, openCudaDevice, prepareAll, type CudaBuffer, type CudaDevice } from './backend.js';
export {
  CU_DEVICE_ATTRIBUTE,
  CudaDriver,
  Nvrtc,
  defaultIncludeDirs,
  libraryCandidates,
  nvrtcOptions,
  type NvrtcOutput,
} from './driver.js';
export {
  CU_RESULT_NAMES,
  NVRTC_RESULT_NAMES,
  CudaError,
  checkCu,
  checkNvrtc,
  codeOfCuResult,
  cuResultName,
  nvrtcResultName,
} from './errors.js';
export {
  activeRecording,
  cudaKernelSource,
  cudaTranslationUnit,
  groupRuns,
  kernelSetKey,
  recordKernels,
  type CudaTarget,
  type KernelRecording,
} from './source.js';
