/*
 * kiln_cuda_emu.h — run kiln's CUDA C kernels on the CPU with CUDA semantics (g++ >= 12, C++17, x86-64 Linux).
 *
 * The header is force-included (`g++ -include kiln_cuda_emu.h`) before unmodified CUDA C kernel source; with nvcc or
 * NVRTC the kernel source is compiled as is, with kiln_cuda_shared.h supplying the few macros below.
 *
 * Execution model (implemented in kiln_cuda_emu_rt.cpp, linked into every emulator executable):
 *   - one fiber per CUDA thread, switched by a hand-written x86-64 context switch (callee-saved registers, MXCSR
 *     and the x87 control word); all fibers of a block run on one worker OS thread, blocks are spread over
 *     KILN_EMU_THREADS worker threads (default: hardware concurrency);
 *   - deterministic order: fibers of a block run in increasing linear thread id (or decreasing with
 *     KILN_EMU_ORDER=reverse / the launch flag), each until it reaches a barrier or a warp operation;
 *   - __syncthreads() is a real barrier; a block in which some threads wait at it while others have exited or wait
 *     at a warp operation is reported instead of hanging;
 *   - warp operations (__syncwarp, __shfl*_sync, __ballot_sync, __any_sync, __all_sync) require every existing lane
 *     of the warp to arrive and the mask to name all of them;
 *   - shared memory is a per-block arena filled with 0xFF bytes (NaN for floats) at the start of every block, with
 *     guard bytes after every array that are checked when the block ends;
 *   - errors are printed to stderr as `KILN_EMU_ERROR: <kind>: <message>` and the process exits nonzero.
 *
 * Kernel source contract (what kiln's CUDA dialect emits):
 *   KILN_SHARED(type, name, count)   static shared array, `__shared__ type name[count]` under nvcc
 *   KILN_DYNAMIC_SHARED(type, name)  dynamic shared memory, `extern __shared__ __align__(16) type name[]` under nvcc
 *   KILN_EMU_REGISTER(kernel)        after each __global__ function (at namespace scope): registers it with the host
 *                                    driver under its own name; parameter types are deduced from the function type
 *                                    and must be pointers, int, unsigned, long long, unsigned long long, float,
 *                                    double. Expands to nothing under nvcc.
 *   KILN_EMU_REGISTER_AS("label", (&template_kernel<float>))  the same for a template instance or another name.
 * A bare `__shared__` is a compile error in the emulator (it cannot be per block); use the macros.
 * `#include <cuda_fp16.h>` / `<cuda_bf16.h>` resolve to empty stubs in codegen/cuda/emu/include.
 */
#ifndef KILN_CUDA_EMU_H
#define KILN_CUDA_EMU_H

#if defined(__CUDACC__)
#error "kiln_cuda_emu.h is the CPU emulator header; with nvcc/NVRTC include kiln_cuda_shared.h instead"
#endif
#if !defined(__x86_64__) || !defined(__linux__)
#error "kiln_cuda_emu.h supports x86-64 Linux only"
#endif

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <type_traits>
#include <utility>

#define KILN_CUDA_EMU 1

/* ---------------------------------------------------------------- qualifiers */
#define __global__
#define __device__
#define __host__
#define __constant__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
/* __restrict__ is a g++ keyword already. A bare __shared__ would silently be per thread: make it an error. */
#define __shared__ kiln_emu_error_use_KILN_SHARED_or_KILN_DYNAMIC_SHARED_instead_of___shared__

/* ---------------------------------------------------------------- vector types */
struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
  constexpr operator uint3() const { return uint3{x, y, z}; }
};
struct int2 {
  int x, y;
};
struct int3 {
  int x, y, z;
};
struct __attribute__((aligned(16))) int4 {
  int x, y, z, w;
};
struct uint2 {
  unsigned x, y;
};
struct __attribute__((aligned(16))) uint4 {
  unsigned x, y, z, w;
};
struct __attribute__((aligned(8))) float2 {
  float x, y;
};
struct float3 {
  float x, y, z;
};
struct __attribute__((aligned(16))) float4 {
  float x, y, z, w;
};
static inline int2 make_int2(int x, int y) { return int2{x, y}; }
static inline int3 make_int3(int x, int y, int z) { return int3{x, y, z}; }
static inline int4 make_int4(int x, int y, int z, int w) { return int4{x, y, z, w}; }
static inline uint2 make_uint2(unsigned x, unsigned y) { return uint2{x, y}; }
static inline uint3 make_uint3(unsigned x, unsigned y, unsigned z) { return uint3{x, y, z}; }
static inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return uint4{x, y, z, w}; }
static inline float2 make_float2(float x, float y) { return float2{x, y}; }
static inline float3 make_float3(float x, float y, float z) { return float3{x, y, z}; }
static inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }

static constexpr int warpSize = 32;

/* ---------------------------------------------------------------- runtime interface */
namespace kiln_emu {

/* The part of the runtime's fiber / block state that inline code reads. */
struct FiberPublic {
  uint3 tid;
  unsigned linear;
};
struct BlockPublic {
  uint3 bid;
  dim3 bdim;
  dim3 gdim;
  unsigned char* dyn_shared;
};
extern __thread FiberPublic* tls_fiber;
extern __thread BlockPublic* tls_block;

struct SharedSite {
  const char* name;
  const char* type;
  size_t size;
  size_t align;
};

enum WarpOp : int {
  kShflIdx = 0,
  kShflUp = 1,
  kShflDown = 2,
  kShflXor = 3,
  kBallot = 4,
  kAny = 5,
  kAll = 6,
  kSyncWarp = 7,
};
enum BarrierOp : int { kBarPlain = 0, kBarCount = 1, kBarAnd = 2, kBarOr = 3 };

void syncthreads();
int syncthreads_op(int op, int pred);
uint64_t warp_op(int op, unsigned mask, uint64_t value, int param, int width);
void* shared_alloc(const SharedSite* site);
[[noreturn]] void fail(const char* kind, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

/* Kernel registration: the host driver calls thunk(args) in every fiber, args[i] pointing at the i-th argument. */
enum ArgKind : unsigned char { kPtr = 1, kI32 = 2, kU32 = 3, kF32 = 4, kI64 = 5, kU64 = 6, kF64 = 7 };
struct KernelInfo {
  const char* name;
  void (*thunk)(void* const* args);
  int nparams;
  const unsigned char* kinds;
  KernelInfo* next;
};
void register_kernel(KernelInfo* info);
struct Registrar {
  explicit Registrar(KernelInfo* info) { register_kernel(info); }
};

template <class T>
struct ArgKindOf {
  static_assert(sizeof(T) == 0,
                "KILN_EMU_REGISTER: unsupported kernel parameter type (use pointers, int, unsigned, long long, "
                "unsigned long long, float or double)");
};
template <class T>
struct ArgKindOf<T*> {
  static constexpr unsigned char value = kPtr;
};
template <>
struct ArgKindOf<int> {
  static constexpr unsigned char value = kI32;
};
template <>
struct ArgKindOf<unsigned> {
  static constexpr unsigned char value = kU32;
};
template <>
struct ArgKindOf<float> {
  static constexpr unsigned char value = kF32;
};
template <>
struct ArgKindOf<long> {
  static constexpr unsigned char value = kI64;
};
template <>
struct ArgKindOf<long long> {
  static constexpr unsigned char value = kI64;
};
template <>
struct ArgKindOf<unsigned long> {
  static constexpr unsigned char value = kU64;
};
template <>
struct ArgKindOf<unsigned long long> {
  static constexpr unsigned char value = kU64;
};
template <>
struct ArgKindOf<double> {
  static constexpr unsigned char value = kF64;
};

template <class F>
struct Thunk;
template <class... A>
struct Thunk<void (*)(A...)> {
  static constexpr int nparams = static_cast<int>(sizeof...(A));
  static constexpr unsigned char kinds[sizeof...(A) + 1] = {ArgKindOf<typename std::decay<A>::type>::value..., 0};
  template <void (*Fn)(A...), size_t... I>
  static void call(void* const* args, std::index_sequence<I...>) {
    (void)args;
    Fn(*static_cast<typename std::decay<A>::type*>(args[I])...);
  }
  template <void (*Fn)(A...)>
  static void invoke(void* const* args) {
    call<Fn>(args, std::index_sequence_for<A...>{});
  }
};

inline uint32_t f2u(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}
inline float u2f(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}
template <class T>
inline uint64_t to_bits(T v) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "warp operations move at most 8 bytes");
  uint64_t b = 0;
  memcpy(&b, &v, sizeof(T));
  return b;
}
template <class T>
inline T from_bits(uint64_t b) {
  T v;
  memcpy(&v, &b, sizeof(T));
  return v;
}

/* float -> IEEE binary16, round to nearest even; overflow -> inf, NaN -> 0x7fff (as CUDA). */
inline unsigned short f32_to_f16_rn(float f) {
  const uint32_t x = f2u(f);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t a = x & 0x7fffffffu;
  if (a >= 0x7f800000u) return a == 0x7f800000u ? static_cast<unsigned short>(sign | 0x7c00u) : 0x7fffu;
  if (a >= 0x477ff000u) return static_cast<unsigned short>(sign | 0x7c00u); /* >= 65520 rounds to inf */
  if (a >= 0x38800000u) {                                                   /* normal half */
    const uint32_t mant = a & 0x7fffffu;
    uint32_t h = (((a >> 23) - 112u) << 10) | (mant >> 13);
    const uint32_t rem = mant & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;
    return static_cast<unsigned short>(sign | h);
  }
  if (a < 0x33000000u) return static_cast<unsigned short>(sign); /* < 2^-25: zero */
  const uint32_t mant = (a & 0x7fffffu) | 0x800000u;             /* subnormal half, units of 2^-24 */
  const uint32_t shift = 126u - (a >> 23);
  uint32_t h = mant >> shift;
  const uint32_t rem = mant & ((1u << shift) - 1u);
  const uint32_t halfway = 1u << (shift - 1u);
  if (rem > halfway || (rem == halfway && (h & 1u))) ++h;
  return static_cast<unsigned short>(sign | h);
}
inline float f16_to_f32(unsigned short h) {
  const uint32_t sign = (static_cast<uint32_t>(h) & 0x8000u) << 16;
  const uint32_t e = (h >> 10) & 0x1fu;
  const uint32_t m = h & 0x3ffu;
  if (e == 0x1fu) return u2f(sign | 0x7f800000u | (m << 13));
  if (e == 0) {
    const float v = static_cast<float>(m) * 0x1p-24f;
    return sign ? -v : v;
  }
  return u2f(sign | ((e + 112u) << 23) | (m << 13));
}
/* float -> bfloat16, round to nearest even; NaN -> 0x7fff (as CUDA). */
inline unsigned short f32_to_bf16_rn(float f) {
  uint32_t u = f2u(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fffu;
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<unsigned short>(u >> 16);
}
inline float bf16_to_f32(unsigned short b) { return u2f(static_cast<uint32_t>(b) << 16); }

} /* namespace kiln_emu */

#define threadIdx (static_cast<const ::uint3&>(::kiln_emu::tls_fiber->tid))
#define blockIdx (static_cast<const ::uint3&>(::kiln_emu::tls_block->bid))
#define blockDim (static_cast<const ::dim3&>(::kiln_emu::tls_block->bdim))
#define gridDim (static_cast<const ::dim3&>(::kiln_emu::tls_block->gdim))

#define KILN_EMU_CAT2_(a, b) a##b
#define KILN_EMU_CAT_(a, b) KILN_EMU_CAT2_(a, b)

#define KILN_SHARED(type, name, count)                                                                    \
  static constexpr ::kiln_emu::SharedSite KILN_EMU_CAT_(kiln_emu_shared_site_, name){#name, #type,        \
                                                                                      sizeof(type) * (count), \
                                                                                      alignof(type)};     \
  type(&name)[count] =                                                                                    \
      *reinterpret_cast<type(*)[count]>(::kiln_emu::shared_alloc(&KILN_EMU_CAT_(kiln_emu_shared_site_, name)))

#define KILN_DYNAMIC_SHARED(type, name) type* const name = reinterpret_cast<type*>(::kiln_emu::tls_block->dyn_shared)

#define KILN_EMU_REGISTER_AS(label, fnptr)                                                                          \
  static ::kiln_emu::KernelInfo KILN_EMU_CAT_(kiln_emu_kernel_info_, __LINE__) = {                                 \
      label, &::kiln_emu::Thunk<decltype(fnptr)>::template invoke<fnptr>, ::kiln_emu::Thunk<decltype(fnptr)>::nparams, \
      ::kiln_emu::Thunk<decltype(fnptr)>::kinds, nullptr};                                                          \
  static const ::kiln_emu::Registrar KILN_EMU_CAT_(kiln_emu_kernel_reg_, __LINE__)(                                \
      &KILN_EMU_CAT_(kiln_emu_kernel_info_, __LINE__))
#define KILN_EMU_REGISTER(kernel) KILN_EMU_REGISTER_AS(#kernel, &kernel)

/* ---------------------------------------------------------------- synchronization */
static inline void __syncthreads() { ::kiln_emu::syncthreads(); }
static inline int __syncthreads_count(int pred) { return ::kiln_emu::syncthreads_op(::kiln_emu::kBarCount, pred); }
static inline int __syncthreads_and(int pred) { return ::kiln_emu::syncthreads_op(::kiln_emu::kBarAnd, pred); }
static inline int __syncthreads_or(int pred) { return ::kiln_emu::syncthreads_op(::kiln_emu::kBarOr, pred); }
static inline void __syncwarp(unsigned mask = 0xffffffffu) {
  (void)::kiln_emu::warp_op(::kiln_emu::kSyncWarp, mask, 0, 0, 32);
}
static inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
static inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
static inline void __threadfence_system() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
[[noreturn]] static inline void __trap() { ::kiln_emu::fail("trap", "__trap() called"); }

template <class T>
static inline T __shfl_sync(unsigned mask, T var, int srcLane, int width = 32) {
  return ::kiln_emu::from_bits<T>(
      ::kiln_emu::warp_op(::kiln_emu::kShflIdx, mask, ::kiln_emu::to_bits(var), srcLane, width));
}
template <class T>
static inline T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = 32) {
  return ::kiln_emu::from_bits<T>(::kiln_emu::warp_op(::kiln_emu::kShflUp, mask, ::kiln_emu::to_bits(var),
                                                      static_cast<int>(delta), width));
}
template <class T>
static inline T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = 32) {
  return ::kiln_emu::from_bits<T>(::kiln_emu::warp_op(::kiln_emu::kShflDown, mask, ::kiln_emu::to_bits(var),
                                                      static_cast<int>(delta), width));
}
template <class T>
static inline T __shfl_xor_sync(unsigned mask, T var, int laneMask, int width = 32) {
  return ::kiln_emu::from_bits<T>(
      ::kiln_emu::warp_op(::kiln_emu::kShflXor, mask, ::kiln_emu::to_bits(var), laneMask, width));
}
static inline unsigned __ballot_sync(unsigned mask, int pred) {
  return static_cast<unsigned>(::kiln_emu::warp_op(::kiln_emu::kBallot, mask, pred != 0, 0, 32));
}
static inline int __any_sync(unsigned mask, int pred) {
  return static_cast<int>(::kiln_emu::warp_op(::kiln_emu::kAny, mask, pred != 0, 0, 32));
}
static inline int __all_sync(unsigned mask, int pred) {
  return static_cast<int>(::kiln_emu::warp_op(::kiln_emu::kAll, mask, pred != 0, 0, 32));
}
/* All existing lanes of a warp are always converged in the emulator. */
static inline unsigned __activemask() {
  const unsigned n = ::kiln_emu::tls_block->bdim.x * ::kiln_emu::tls_block->bdim.y * ::kiln_emu::tls_block->bdim.z;
  const unsigned lanes = n - (::kiln_emu::tls_fiber->linear & ~31u);
  return lanes >= 32 ? 0xffffffffu : ((1u << lanes) - 1u);
}

/* ---------------------------------------------------------------- atomics (relaxed, as CUDA's) */
#define KILN_EMU_ATOMIC_INT(T)                                                                                  \
  static inline T atomicAdd(T* a, T v) { return __atomic_fetch_add(a, v, __ATOMIC_RELAXED); }                 \
  static inline T atomicSub(T* a, T v) { return __atomic_fetch_sub(a, v, __ATOMIC_RELAXED); }                 \
  static inline T atomicExch(T* a, T v) { return __atomic_exchange_n(a, v, __ATOMIC_RELAXED); }               \
  static inline T atomicAnd(T* a, T v) { return __atomic_fetch_and(a, v, __ATOMIC_RELAXED); }                 \
  static inline T atomicOr(T* a, T v) { return __atomic_fetch_or(a, v, __ATOMIC_RELAXED); }                   \
  static inline T atomicXor(T* a, T v) { return __atomic_fetch_xor(a, v, __ATOMIC_RELAXED); }                 \
  static inline T atomicCAS(T* a, T cmp, T v) {                                                               \
    __atomic_compare_exchange_n(a, &cmp, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);                       \
    return cmp;                                                                                               \
  }                                                                                                           \
  static inline T atomicMax(T* a, T v) {                                                                      \
    T old = __atomic_load_n(a, __ATOMIC_RELAXED);                                                             \
    while (old < v && !__atomic_compare_exchange_n(a, &old, v, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) { \
    }                                                                                                         \
    return old;                                                                                               \
  }                                                                                                           \
  static inline T atomicMin(T* a, T v) {                                                                      \
    T old = __atomic_load_n(a, __ATOMIC_RELAXED);                                                             \
    while (old > v && !__atomic_compare_exchange_n(a, &old, v, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) { \
    }                                                                                                         \
    return old;                                                                                               \
  }
KILN_EMU_ATOMIC_INT(int)
KILN_EMU_ATOMIC_INT(unsigned)
KILN_EMU_ATOMIC_INT(long long)
KILN_EMU_ATOMIC_INT(unsigned long long)
#undef KILN_EMU_ATOMIC_INT

namespace kiln_emu {
template <class F, class U, class Op>
inline F atomic_float_rmw(F* a, Op op) {
  U* p = reinterpret_cast<U*>(a);
  U old = __atomic_load_n(p, __ATOMIC_RELAXED);
  for (;;) {
    const F nv = op(from_bits<F>(old));
    const U nb = static_cast<U>(to_bits(nv));
    if (__atomic_compare_exchange_n(p, &old, nb, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) return from_bits<F>(old);
  }
}
} /* namespace kiln_emu */
static inline float atomicAdd(float* a, float v) {
  return ::kiln_emu::atomic_float_rmw<float, uint32_t>(a, [v](float o) { return o + v; });
}
static inline double atomicAdd(double* a, double v) {
  return ::kiln_emu::atomic_float_rmw<double, uint64_t>(a, [v](double o) { return o + v; });
}
static inline float atomicExch(float* a, float v) {
  return ::kiln_emu::u2f(__atomic_exchange_n(reinterpret_cast<uint32_t*>(a), ::kiln_emu::f2u(v), __ATOMIC_RELAXED));
}
static inline unsigned atomicInc(unsigned* a, unsigned limit) {
  unsigned old = __atomic_load_n(a, __ATOMIC_RELAXED);
  while (!__atomic_compare_exchange_n(a, &old, old >= limit ? 0u : old + 1u, true, __ATOMIC_RELAXED,
                                      __ATOMIC_RELAXED)) {
  }
  return old;
}
static inline unsigned atomicDec(unsigned* a, unsigned limit) {
  unsigned old = __atomic_load_n(a, __ATOMIC_RELAXED);
  while (!__atomic_compare_exchange_n(a, &old, (old == 0u || old > limit) ? limit : old - 1u, true,
                                      __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
  return old;
}

/* ---------------------------------------------------------------- math */
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
static inline double rsqrt(double x) { return 1.0 / sqrt(x); }
/* glibc declares (but does not export) __expf & co.; map the fast intrinsics to the correctly rounded functions. */
#define __expf(x) expf(x)
#define __logf(x) logf(x)
#define __log2f(x) log2f(x)
#define __log10f(x) log10f(x)
#define __exp10f(x) exp10f(x)
#define __powf(x, y) powf(x, y)
#define __sinf(x) sinf(x)
#define __cosf(x) cosf(x)
#define __tanf(x) tanf(x)
static inline float __fdividef(float a, float b) { return a / b; }
static inline float __frcp_rn(float x) { return 1.0f / x; }
static inline float __fsqrt_rn(float x) { return sqrtf(x); }
static inline float __frsqrt_rn(float x) { return 1.0f / sqrtf(x); }
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fsub_rn(float a, float b) { return a - b; }
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fdiv_rn(float a, float b) { return a / b; }
static inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
static inline float __saturatef(float x) { return x >= 1.0f ? 1.0f : (x > 0.0f ? x : 0.0f); } /* NaN -> 0 */
static inline float __int_as_float(int x) { return ::kiln_emu::from_bits<float>(static_cast<uint32_t>(x)); }
static inline int __float_as_int(float x) { return static_cast<int>(::kiln_emu::f2u(x)); }
static inline float __uint_as_float(unsigned x) { return ::kiln_emu::u2f(x); }
static inline unsigned __float_as_uint(float x) { return ::kiln_emu::f2u(x); }
static inline double __longlong_as_double(long long x) { return ::kiln_emu::from_bits<double>(static_cast<uint64_t>(x)); }
static inline long long __double_as_longlong(double x) { return static_cast<long long>(::kiln_emu::to_bits(x)); }
static inline int __float2int_rz(float x) {
  if (x != x) return 0;
  if (x >= 2147483648.0f) return 2147483647;
  if (x <= -2147483648.0f) return -2147483647 - 1;
  return static_cast<int>(x);
}
static inline int __float2int_rn(float x) { return __float2int_rz(nearbyintf(x)); }
static inline int __float2int_rd(float x) { return __float2int_rz(floorf(x)); }
static inline int __float2int_ru(float x) { return __float2int_rz(ceilf(x)); }
/* __dp4a (sm_61+): c + the dot product of the four bytes of a and b, signed or unsigned bytes, wrapping as on the GPU */
static inline int __dp4a(int a, int b, int c) {
  uint32_t s = static_cast<uint32_t>(c);
  for (int j = 0; j < 4; j++) {
    const int x = static_cast<int8_t>(static_cast<uint32_t>(a) >> (8 * j));
    const int y = static_cast<int8_t>(static_cast<uint32_t>(b) >> (8 * j));
    s += static_cast<uint32_t>(x * y);
  }
  return static_cast<int>(s);
}
static inline unsigned __dp4a(unsigned a, unsigned b, unsigned c) {
  for (int j = 0; j < 4; j++) c += ((a >> (8 * j)) & 255u) * ((b >> (8 * j)) & 255u);
  return c;
}
static inline unsigned __float2uint_rz(float x) {
  if (!(x > 0.0f)) return 0u;
  if (x >= 4294967296.0f) return 4294967295u;
  return static_cast<unsigned>(x);
}
static inline unsigned __float2uint_rn(float x) { return __float2uint_rz(nearbyintf(x)); }
static inline float __int2float_rn(int x) { return static_cast<float>(x); }
static inline float __uint2float_rn(unsigned x) { return static_cast<float>(x); }
static inline int __popc(unsigned x) { return __builtin_popcount(x); }
static inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
static inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(static_cast<unsigned>(x)); }
static inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll(static_cast<unsigned long long>(x)); }
static inline int __ffs(int x) { return __builtin_ffs(x); }
static inline int __ffsll(long long x) { return __builtin_ffsll(x); }
static inline unsigned __brev(unsigned x) {
  x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
  x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
  x = ((x >> 4) & 0x0f0f0f0fu) | ((x & 0x0f0f0f0fu) << 4);
  x = ((x >> 8) & 0x00ff00ffu) | ((x & 0x00ff00ffu) << 8);
  return (x >> 16) | (x << 16);
}
static inline unsigned __umulhi(unsigned a, unsigned b) {
  return static_cast<unsigned>((static_cast<unsigned long long>(a) * b) >> 32);
}
static inline int __mulhi(int a, int b) { return static_cast<int>((static_cast<long long>(a) * b) >> 32); }
static inline int __mul24(int a, int b) { return ((a << 8) >> 8) * ((b << 8) >> 8); }
static inline unsigned __umul24(unsigned a, unsigned b) { return (a & 0xffffffu) * (b & 0xffffffu); }
template <class T>
static inline T __ldg(const T* p) {
  return *p;
}

#define KILN_EMU_MINMAX(T, U, R)                                                 \
  static inline R min(T a, U b) { return static_cast<R>(a) < static_cast<R>(b) ? a : b; } \
  static inline R max(T a, U b) { return static_cast<R>(a) > static_cast<R>(b) ? a : b; }
KILN_EMU_MINMAX(int, int, int)
KILN_EMU_MINMAX(unsigned, unsigned, unsigned)
KILN_EMU_MINMAX(int, unsigned, unsigned)
KILN_EMU_MINMAX(unsigned, int, unsigned)
KILN_EMU_MINMAX(long, long, long)
KILN_EMU_MINMAX(unsigned long, unsigned long, unsigned long)
KILN_EMU_MINMAX(long long, long long, long long)
KILN_EMU_MINMAX(unsigned long long, unsigned long long, unsigned long long)
KILN_EMU_MINMAX(long long, unsigned long long, unsigned long long)
KILN_EMU_MINMAX(unsigned long long, long long, unsigned long long)
#undef KILN_EMU_MINMAX
static inline float min(float a, float b) { return fminf(a, b); }
static inline float max(float a, float b) { return fmaxf(a, b); }
static inline double min(double a, double b) { return fmin(a, b); }
static inline double max(double a, double b) { return fmax(a, b); }
static inline double min(float a, double b) { return fmin(a, b); }
static inline double max(float a, double b) { return fmax(a, b); }
static inline double min(double a, float b) { return fmin(a, b); }
static inline double max(double a, float b) { return fmax(a, b); }

/* ---------------------------------------------------------------- half / bfloat16 (cuda_fp16.h / cuda_bf16.h names) */
struct __half_raw {
  unsigned short x;
};
struct __nv_bfloat16_raw {
  unsigned short x;
};
struct __half {
  unsigned short __x;
  __half() = default;
  __half(const __half_raw& r) : __x(r.x) {}
  __half(float f) : __x(::kiln_emu::f32_to_f16_rn(f)) {}
  __half(double f) : __x(::kiln_emu::f32_to_f16_rn(static_cast<float>(f))) {}
  __half(int i) : __x(::kiln_emu::f32_to_f16_rn(static_cast<float>(i))) {}
  operator float() const { return ::kiln_emu::f16_to_f32(__x); }
  operator __half_raw() const { return __half_raw{__x}; }
};
struct __nv_bfloat16 {
  unsigned short __x;
  __nv_bfloat16() = default;
  __nv_bfloat16(const __nv_bfloat16_raw& r) : __x(r.x) {}
  __nv_bfloat16(float f) : __x(::kiln_emu::f32_to_bf16_rn(f)) {}
  __nv_bfloat16(double f) : __x(::kiln_emu::f32_to_bf16_rn(static_cast<float>(f))) {}
  __nv_bfloat16(int i) : __x(::kiln_emu::f32_to_bf16_rn(static_cast<float>(i))) {}
  operator float() const { return ::kiln_emu::bf16_to_f32(__x); }
  operator __nv_bfloat16_raw() const { return __nv_bfloat16_raw{__x}; }
};
typedef __half half;
typedef __nv_bfloat16 nv_bfloat16;

static inline __half __float2half(float f) { return __half_raw{::kiln_emu::f32_to_f16_rn(f)}; }
static inline __half __float2half_rn(float f) { return __half_raw{::kiln_emu::f32_to_f16_rn(f)}; }
static inline float __half2float(__half h) { return ::kiln_emu::f16_to_f32(h.__x); }
static inline __nv_bfloat16 __float2bfloat16(float f) { return __nv_bfloat16_raw{::kiln_emu::f32_to_bf16_rn(f)}; }
static inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __nv_bfloat16_raw{::kiln_emu::f32_to_bf16_rn(f)}; }
static inline float __bfloat162float(__nv_bfloat16 b) { return ::kiln_emu::bf16_to_f32(b.__x); }
static inline unsigned short __half_as_ushort(__half h) { return h.__x; }
static inline __half __ushort_as_half(unsigned short x) { return __half_raw{x}; }
static inline short __half_as_short(__half h) { return static_cast<short>(h.__x); }
static inline __half __short_as_half(short x) { return __half_raw{static_cast<unsigned short>(x)}; }
static inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 b) { return b.__x; }
static inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short x) { return __nv_bfloat16_raw{x}; }
static inline short __bfloat16_as_short(__nv_bfloat16 b) { return static_cast<short>(b.__x); }
static inline __nv_bfloat16 __short_as_bfloat16(short x) { return __nv_bfloat16_raw{static_cast<unsigned short>(x)}; }

/* Arithmetic is exact in float then rounded once (float has >= 2p+2 bits for both formats, so this equals a
 * correctly rounded half/bf16 operation for + - * /). */
#define KILN_EMU_HALF_OPS(H)                                                                                   \
  static inline H __hadd(H a, H b) { return H(static_cast<float>(a) + static_cast<float>(b)); }                \
  static inline H __hsub(H a, H b) { return H(static_cast<float>(a) - static_cast<float>(b)); }                \
  static inline H __hmul(H a, H b) { return H(static_cast<float>(a) * static_cast<float>(b)); }                \
  static inline H __hdiv(H a, H b) { return H(static_cast<float>(a) / static_cast<float>(b)); }                \
  static inline H __hneg(H a) {                                                                                \
    H r;                                                                                                       \
    r.__x = static_cast<unsigned short>(a.__x ^ 0x8000u);                                                      \
    return r;                                                                                                  \
  }                                                                                                            \
  static inline H __habs(H a) {                                                                                \
    H r;                                                                                                       \
    r.__x = static_cast<unsigned short>(a.__x & 0x7fffu);                                                      \
    return r;                                                                                                  \
  }                                                                                                            \
  static inline H __hfma(H a, H b, H c) {                                                                      \
    return H(fmaf(static_cast<float>(a), static_cast<float>(b), static_cast<float>(c)));                       \
  }                                                                                                            \
  static inline H __hmax(H a, H b) { return H(fmaxf(static_cast<float>(a), static_cast<float>(b))); }          \
  static inline H __hmin(H a, H b) { return H(fminf(static_cast<float>(a), static_cast<float>(b))); }          \
  static inline bool __heq(H a, H b) { return static_cast<float>(a) == static_cast<float>(b); }                \
  static inline bool __hlt(H a, H b) { return static_cast<float>(a) < static_cast<float>(b); }                 \
  static inline bool __hgt(H a, H b) { return static_cast<float>(a) > static_cast<float>(b); }                 \
  static inline bool __hisnan(H a) { return static_cast<float>(a) != static_cast<float>(a); }                  \
  static inline H operator+(H a, H b) { return __hadd(a, b); }                                                 \
  static inline H operator-(H a, H b) { return __hsub(a, b); }                                                 \
  static inline H operator*(H a, H b) { return __hmul(a, b); }                                                 \
  static inline H operator/(H a, H b) { return __hdiv(a, b); }                                                 \
  static inline H operator-(H a) { return __hneg(a); }                                                         \
  static inline H operator+(H a) { return a; }                                                                 \
  static inline H& operator+=(H& a, H b) { return a = __hadd(a, b); }                                          \
  static inline H& operator-=(H& a, H b) { return a = __hsub(a, b); }                                          \
  static inline H& operator*=(H& a, H b) { return a = __hmul(a, b); }                                          \
  static inline H& operator/=(H& a, H b) { return a = __hdiv(a, b); }                                          \
  static inline bool operator==(H a, H b) { return static_cast<float>(a) == static_cast<float>(b); }           \
  static inline bool operator!=(H a, H b) { return static_cast<float>(a) != static_cast<float>(b); }           \
  static inline bool operator<(H a, H b) { return static_cast<float>(a) < static_cast<float>(b); }             \
  static inline bool operator>(H a, H b) { return static_cast<float>(a) > static_cast<float>(b); }             \
  static inline bool operator<=(H a, H b) { return static_cast<float>(a) <= static_cast<float>(b); }           \
  static inline bool operator>=(H a, H b) { return static_cast<float>(a) >= static_cast<float>(b); }
KILN_EMU_HALF_OPS(__half)
KILN_EMU_HALF_OPS(__nv_bfloat16)
#undef KILN_EMU_HALF_OPS

#endif /* KILN_CUDA_EMU_H */
