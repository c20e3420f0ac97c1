/*
 * kiln_cuda_shared.h — the few macros kiln's CUDA C dialect emits that differ between a real CUDA compiler
 * (nvcc / NVRTC, where __CUDACC__ is defined) and the CPU emulator (kiln_cuda_emu.h, included first under g++).
 *
 *   KILN_SHARED(type, name, count)   a static shared-memory array `type name[count]`, one per block
 *   KILN_DYNAMIC_SHARED(type, name)  the dynamic shared-memory array (`extern __shared__ type name[]`), 16-byte aligned
 *   KILN_EMU_REGISTER(kernel)        registers a __global__ function with the emulator's host driver; nothing on GPU
 *
 * Under the emulator this file is a no-op: kiln_cuda_emu.h defines the emulator versions of the same macros.
 */
#ifndef KILN_CUDA_SHARED_H
#define KILN_CUDA_SHARED_H

#ifdef __CUDACC__
#define KILN_SHARED(type, name, count) __shared__ type name[count]
#define KILN_DYNAMIC_SHARED(type, name) extern __shared__ __align__(16) type name[]
#define KILN_EMU_REGISTER(kernel)
#if defined(__CUDACC_RTC__)
#define KILN_EMU_REGISTER_AS(label, fnptr)
#else
/* nvcc: take the kernel's address so that a template instance registered this way is instantiated (and compiled) */
#define KILN_EMU_CAT2_(a, b) a##b
#define KILN_EMU_CAT_(a, b) KILN_EMU_CAT2_(a, b)
#define KILN_EMU_REGISTER_AS(label, fnptr) \
  static const void* const KILN_EMU_CAT_(kiln_emu_kernel_ref_, __LINE__) __attribute__((unused)) = \
      reinterpret_cast<const void*>(fnptr)
#endif
#endif

#endif /* KILN_CUDA_SHARED_H */
