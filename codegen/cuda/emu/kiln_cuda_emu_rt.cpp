/*
 * kiln_cuda_emu_rt.cpp — the CPU emulator's runtime and generic host driver (see kiln_cuda_emu.h).
 *
 * Compiled once (cached as an object file) and linked with a kernel translation unit that was compiled with
 * `-include kiln_cuda_emu.h`. The executable reads a binary plan from stdin, runs its launches and writes the
 * requested buffers to stdout. Kernel printf output goes to stderr (stdout carries the binary result).
 *
 * Plan (stdin), all integers little-endian, no padding:
 *   "KLNP" u32 version(=1)
 *   u32 nbuffers; per buffer: u64 bytes, u8 init (0 zeros | 1 fill: u8 byte | 2 contents: `bytes` bytes)
 *   u32 nlaunches; per launch:
 *     u32 nameLen, name (UTF-8); u32 grid.x grid.y grid.z; u32 block.x block.y block.z; u32 dynamicSharedBytes;
 *     u32 flags (bit0: reverse thread order, bit1: forward order; neither: KILN_EMU_ORDER)
 *     u32 nargs; per arg: u8 kind, then
 *       1 ptr: u32 bufferIndex (0xffffffff = null), u64 byteOffset | 2 i32, 3 u32, 4 f32: 4 bytes |
 *       5 i64, 6 u64, 7 f64: 8 bytes
 *   u32 noutputs; u32 bufferIndex * noutputs
 * Result (stdout):
 *   "KLNR" u32 version(=1); u32 nlaunches; f64 milliseconds * nlaunches;
 *   u32 noutputs; per output: u32 bufferIndex, u64 bytes, bytes
 * `kernel_exe --list` prints one line per registered kernel: name<TAB>kind codes (e.g. "vec_add\t1,1,1,2").
 *
 * Environment: KILN_EMU_THREADS (worker threads), KILN_EMU_ORDER=reverse, KILN_EMU_STACK (fiber stack bytes,
 * suffix k/m allowed; default 64k), KILN_EMU_STATIC_SHARED_LIMIT (default 48k), KILN_EMU_DYNAMIC_SHARED_LIMIT
 * (default 227k).
 * Exit codes: 0 ok, 2 plan / launch error, 3 kernel error, 4 crash (signal).
 */
#include "kiln_cuda_emu.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

/* ---------------------------------------------------------------- context switch */
extern "C" void kiln_emu_switch(void** save_sp, void* new_sp);
extern "C" void kiln_emu_trampoline();
asm(R"(
  .text
  .globl kiln_emu_switch
  .type kiln_emu_switch, @function
  .p2align 4
kiln_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size kiln_emu_switch, .-kiln_emu_switch

  .globl kiln_emu_trampoline
  .type kiln_emu_trampoline, @function
  .p2align 4
kiln_emu_trampoline:
  movq %r12, %rdi
  callq *%r13
  ud2
  .size kiln_emu_trampoline, .-kiln_emu_trampoline
)");

namespace kiln_emu {

__thread FiberPublic* tls_fiber = nullptr;
__thread BlockPublic* tls_block = nullptr;

namespace {

constexpr unsigned char kFill = 0xff;  /* shared memory contents at block start (NaN for f32/f16/bf16) */
constexpr unsigned char kGuard = 0xa5; /* guard bytes */
constexpr size_t kGap = 64;            /* guard bytes between shared arrays */
constexpr size_t kTail = 1024;         /* guard bytes after the last shared array */
constexpr size_t kMaxSites = 64;
constexpr size_t kBufferAlign = 256;

enum State : unsigned char { kReady, kWaitBar, kWaitWarp, kDone };

const char* warp_op_name(int op) {
  switch (op) {
    case kShflIdx:
      return "__shfl_sync";
    case kShflUp:
      return "__shfl_up_sync";
    case kShflDown:
      return "__shfl_down_sync";
    case kShflXor:
      return "__shfl_xor_sync";
    case kBallot:
      return "__ballot_sync";
    case kAny:
      return "__any_sync";
    case kAll:
      return "__all_sync";
    case kSyncWarp:
      return "__syncwarp";
    default:
      return "warp operation";
  }
}
const char* bar_op_name(int op) {
  switch (op) {
    case kBarCount:
      return "__syncthreads_count";
    case kBarAnd:
      return "__syncthreads_and";
    case kBarOr:
      return "__syncthreads_or";
    default:
      return "__syncthreads";
  }
}

struct Fiber : FiberPublic {
  void* sp;
  unsigned char state;
  int bar_op;
  int wop;
  unsigned wmask;
  int wparam;
  int wwidth;
  uint64_t wval;
  uint64_t wres;
};

struct Warp {
  unsigned arrived;
  unsigned nlanes;
};

struct Launch {
  const KernelInfo* kernel;
  void* const* args;
  dim3 grid, block;
  size_t dyn;
  bool reverse;
  unsigned nthreads;
  uint64_t nblocks;
  std::atomic<uint64_t> next{0};
};

struct Region {
  const char* name; /* nullptr: the dynamic shared memory */
  const char* type;
  size_t off, size;
};

struct Worker;
struct Block : BlockPublic {
  Launch* launch;
  unsigned nthreads;
  unsigned done;
  unsigned bar_arrived;
  unsigned bar_count;
  int bar_result;
};

struct Worker {
  Block block;
  void* sched_sp = nullptr;
  std::vector<Fiber> fibers;
  std::vector<Warp> warps;
  std::vector<char*> stacks; /* each: guard page, then stack_size bytes */
  unsigned char* arena = nullptr;
  size_t arena_cap = 0; /* usable bytes; a PROT_NONE page follows */
  std::vector<const SharedSite*> sites;
  std::vector<Region> regions;
  size_t cursor = 0;
  size_t static_used = 0;
  char* altstack = nullptr;
};

struct Buffer {
  unsigned char* map = nullptr;
  size_t map_len = 0;
  unsigned char* data = nullptr;
  size_t size = 0;
  size_t padded = 0; /* size rounded up to kBufferAlign; the guard page starts at data + padded */
};

size_t g_page = 4096;
size_t g_stack_size = 64 * 1024;
size_t g_static_limit = 48 * 1024;
size_t g_dynamic_limit = 227 * 1024;
bool g_env_reverse = false;
unsigned g_threads = 1;
std::vector<Buffer> g_buffers;
std::vector<Worker*> g_workers;
KernelInfo* g_kernels = nullptr;
std::atomic<int> g_failing{0};
int g_result_fd = 1;
__thread Worker* tls_worker = nullptr;
__thread Fiber* tls_running = nullptr; /* the fiber executing now, nullptr in the scheduler */

size_t round_up(size_t v, size_t a) { return (v + a - 1) / a * a; }

/* ------------------------------------------------------------ error reporting */
int format_context(char* buf, size_t n) {
  Worker* w = tls_worker;
  if (!w || !w->block.launch) return snprintf(buf, n, "in the host driver");
  const Block& b = w->block;
  int len = snprintf(buf, n, "kernel '%s' block (%u,%u,%u)", b.launch->kernel->name, b.bid.x, b.bid.y, b.bid.z);
  if (tls_running && len >= 0 && static_cast<size_t>(len) < n) {
    const Fiber* f = tls_running;
    len += snprintf(buf + len, n - static_cast<size_t>(len), " thread (%u,%u,%u)", f->tid.x, f->tid.y, f->tid.z);
  }
  return len;
}

void write_all(int fd, const void* p, size_t n) {
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    const ssize_t k = write(fd, c, n);
    if (k < 0) {
      if (errno == EINTR) continue;
      return;
    }
    c += k;
    n -= static_cast<size_t>(k);
  }
}

[[noreturn]] void vfail(int code, const char* kind, bool with_context, const char* fmt, va_list ap) {
  if (g_failing.exchange(1) != 0) {
    /* another thread is already reporting; let it finish */
    for (;;) pause();
  }
  char buf[4096];
  int len = snprintf(buf, sizeof buf, "KILN_EMU_ERROR: %s: ", kind);
  if (with_context) {
    len += format_context(buf + len, sizeof buf - static_cast<size_t>(len));
    len += snprintf(buf + len, sizeof buf - static_cast<size_t>(len), ": ");
  }
  if (len < static_cast<int>(sizeof buf)) len += vsnprintf(buf + len, sizeof buf - static_cast<size_t>(len), fmt, ap);
  if (len > static_cast<int>(sizeof buf) - 2) len = static_cast<int>(sizeof buf) - 2;
  buf[len++] = '\n';
  fflush(stdout);
  fflush(stderr);
  write_all(2, buf, static_cast<size_t>(len));
  _exit(code);
}

[[noreturn]] __attribute__((format(printf, 2, 3))) void plan_fail(const char* kind, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfail(2, kind, false, fmt, ap);
}

/* a kernel error detected by the driver outside any block */
[[noreturn]] __attribute__((format(printf, 2, 3))) void driver_fail(const char* kind, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfail(3, kind, false, fmt, ap);
}

/* ------------------------------------------------------------ memory */
void* map_or_die(size_t len) {
  void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) plan_fail("resource", "mmap of %zu bytes failed: %s", len, strerror(errno));
  return p;
}

void ensure_capacity(Worker* w, unsigned nthreads, size_t dyn) {
  if (w->fibers.size() < nthreads) {
    w->fibers.resize(nthreads);
    w->warps.resize((nthreads + 31) / 32);
  }
  while (w->stacks.size() < nthreads) {
    char* base = static_cast<char*>(map_or_die(g_stack_size + g_page));
    mprotect(base, g_page, PROT_NONE);
    w->stacks.push_back(base);
  }
  const size_t need = round_up(dyn, 16) + g_static_limit + kMaxSites * (kGap + 256) + kTail;
  if (w->arena_cap < need) {
    if (w->arena) munmap(w->arena, w->arena_cap + g_page);
    const size_t cap = round_up(need, g_page);
    w->arena = static_cast<unsigned char*>(map_or_die(cap + g_page));
    mprotect(w->arena + cap, g_page, PROT_NONE);
    w->arena_cap = cap;
  }
}

/* ------------------------------------------------------------ scheduling */
inline void yield(Worker* w, Fiber* f) {
  tls_running = nullptr;
  kiln_emu_switch(&f->sp, w->sched_sp);
}

extern "C" [[noreturn]] void kiln_emu_fiber_main(Fiber* f) {
  Worker* w = tls_worker;
  w->block.launch->kernel->thunk(w->block.launch->args);
  f->state = kDone;
  ++w->block.done;
  tls_running = nullptr;
  kiln_emu_switch(&f->sp, w->sched_sp);
  __builtin_unreachable();
}

void init_fiber(Fiber* f, char* stack_base) {
  char* top = stack_base + g_page + g_stack_size;
  uint64_t* sp = reinterpret_cast<uint64_t*>(top - 80);
  sp[0] = 0x1f80ull | (0x037full << 32); /* MXCSR (all exceptions masked, RNE), x87 control word */
  sp[1] = 0;                              /* r15 */
  sp[2] = 0;                              /* r14 */
  sp[3] = reinterpret_cast<uint64_t>(&kiln_emu_fiber_main); /* r13 */
  sp[4] = reinterpret_cast<uint64_t>(f);                    /* r12 */
  sp[5] = 0;                                                /* rbx */
  sp[6] = 0;                                                /* rbp */
  sp[7] = reinterpret_cast<uint64_t>(&kiln_emu_trampoline); /* return address */
  f->sp = sp;
}

size_t first_changed(const unsigned char* p, size_t n, unsigned char v) {
  for (size_t i = 0; i < n; ++i)
    if (p[i] != v) return i;
  return n;
}

void check_shared_guards(Worker* w) {
  for (size_t i = 0; i < w->regions.size(); ++i) {
    const Region& r = w->regions[i];
    const size_t end = r.off + r.size;
    const size_t guard_end = i + 1 < w->regions.size() ? w->regions[i + 1].off : end + kTail;
    const size_t k = first_changed(w->arena + end, guard_end - end, kGuard);
    if (k == guard_end - end) continue;
    char what[256];
    if (r.name)
      snprintf(what, sizeof what, "shared array '%s' (%s, %zu bytes)", r.name, r.type, r.size);
    else
      snprintf(what, sizeof what, "the dynamic shared memory (%zu bytes requested at launch)", r.size);
    char next[256] = "";
    if (i + 1 < w->regions.size() && w->regions[i + 1].name)
      snprintf(next, sizeof next, " (or before the start of shared array '%s')", w->regions[i + 1].name);
    tls_running = nullptr;
    fail("shared-oob",
         "out-of-bounds shared-memory write: byte %zu past the end of %s%s was modified (detected when the block "
         "ended)",
         k, what, next);
  }
}

[[noreturn]] void diagnose_deadlock(Worker* w) {
  Block& b = w->block;
  const unsigned n = b.nthreads;
  unsigned at_bar = 0, at_warp = 0, done = 0;
  const Fiber *first_bar = nullptr, *first_warp = nullptr, *first_done = nullptr;
  for (unsigned i = 0; i < n; ++i) {
    const Fiber& f = w->fibers[i];
    if (f.state == kWaitBar) {
      ++at_bar;
      if (!first_bar) first_bar = &f;
    } else if (f.state == kWaitWarp) {
      ++at_warp;
      if (!first_warp) first_warp = &f;
    } else if (f.state == kDone) {
      ++done;
      if (!first_done) first_done = &f;
    }
  }
  tls_running = nullptr;
  if (at_bar > 0) {
    char other[256] = "";
    if (first_done)
      snprintf(other, sizeof other, "; e.g. thread (%u,%u,%u) has exited", first_done->tid.x, first_done->tid.y,
               first_done->tid.z);
    else if (first_warp)
      snprintf(other, sizeof other, "; e.g. thread (%u,%u,%u) waits at %s", first_warp->tid.x, first_warp->tid.y,
               first_warp->tid.z, warp_op_name(first_warp->wop));
    fail("barrier-divergence",
         "%u of %u threads wait at %s() (e.g. thread (%u,%u,%u)) while %u threads have exited and %u wait at a warp "
         "operation%s: __syncthreads() must be reached by every thread of the block",
         at_bar, n, bar_op_name(first_bar->bar_op), first_bar->tid.x, first_bar->tid.y, first_bar->tid.z, done,
         at_warp, other);
  }
  /* only warp waits left: find a warp with lanes still missing */
  for (size_t wi = 0; wi < w->warps.size() && wi * 32 < n; ++wi) {
    const Warp& wp = w->warps[wi];
    if (wp.arrived == 0 || wp.arrived == wp.nlanes) continue;
    const Fiber* waiting = nullptr;
    const Fiber* missing = nullptr;
    for (unsigned l = 0; l < wp.nlanes; ++l) {
      const Fiber& f = w->fibers[wi * 32 + l];
      if (f.state == kWaitWarp && !waiting) waiting = &f;
      if (f.state != kWaitWarp && !missing) missing = &f;
    }
    fail("warp-divergence",
         "in warp %zu, %u of %u lanes wait at %s (e.g. lane %u) but lane %u has %s: warp operations need every "
         "lane of the warp to be converged",
         wi, wp.arrived, wp.nlanes, waiting ? warp_op_name(waiting->wop) : "a warp operation",
         waiting ? waiting->linear % 32 : 0, missing ? missing->linear % 32 : 0,
         missing && missing->state == kDone ? "exited" : "not arrived");
  }
  fail("deadlock", "no thread of the block can make progress (%u threads, %u exited)", n, done);
}

void run_block(Worker* w, Launch* L, uint64_t linear_block) {
  Block& b = w->block;
  const unsigned gx = L->grid.x, gy = L->grid.y;
  b.bid = uint3{static_cast<unsigned>(linear_block % gx), static_cast<unsigned>((linear_block / gx) % gy),
                static_cast<unsigned>(linear_block / (static_cast<uint64_t>(gx) * gy))};
  b.bdim = L->block;
  b.gdim = L->grid;
  b.launch = L;
  b.nthreads = L->nthreads;
  b.done = 0;
  b.bar_arrived = 0;
  b.bar_count = 0;
  b.bar_result = 0;
  b.dyn_shared = w->arena;

  /* shared memory: dynamic region first, then static arrays allocated on first use */
  memset(w->arena, kFill, L->dyn);
  memset(w->arena + L->dyn, kGuard, kTail);
  w->sites.clear();
  w->regions.clear();
  w->regions.push_back(Region{nullptr, nullptr, 0, L->dyn});
  w->cursor = L->dyn;
  w->static_used = 0;

  const unsigned n = L->nthreads;
  const unsigned bx = L->block.x, by = L->block.y;
  for (unsigned i = 0; i < (n + 31) / 32; ++i) w->warps[i] = Warp{0, (n - i * 32) < 32 ? n - i * 32 : 32};
  for (unsigned t = 0; t < n; ++t) {
    Fiber& f = w->fibers[t];
    f.tid = uint3{t % bx, (t / bx) % by, t / (bx * by)};
    f.linear = t;
    f.state = kReady;
    f.bar_op = kBarPlain;
    init_fiber(&f, w->stacks[t]);
  }

  tls_block = &b;
  for (;;) {
    bool progressed = false;
    for (unsigned k = 0; k < n; ++k) {
      Fiber& f = w->fibers[L->reverse ? n - 1 - k : k];
      if (f.state != kReady) continue;
      tls_fiber = &f;
      tls_running = &f;
      kiln_emu_switch(&w->sched_sp, f.sp);
      progressed = true;
    }
    if (b.done == n) break;
    if (!progressed) diagnose_deadlock(w);
  }
  tls_running = nullptr;
  check_shared_guards(w);
}

void worker_main(Worker* w, Launch* L) {
  tls_worker = w;
  stack_t ss{};
  ss.ss_sp = w->altstack;
  ss.ss_size = 64 * 1024;
  sigaltstack(&ss, nullptr);
  for (;;) {
    const uint64_t i = L->next.fetch_add(1, std::memory_order_relaxed);
    if (i >= L->nblocks) break;
    run_block(w, L, L->reverse ? L->nblocks - 1 - i : i);
  }
  w->block.launch = nullptr;
  tls_block = nullptr;
  tls_fiber = nullptr;
}

/* ------------------------------------------------------------ signals */
const char* signal_name(int sig) {
  switch (sig) {
    case SIGSEGV:
      return "SIGSEGV";
    case SIGBUS:
      return "SIGBUS";
    case SIGFPE:
      return "SIGFPE";
    case SIGILL:
      return "SIGILL";
    case SIGABRT:
      return "SIGABRT";
    case SIGTRAP:
      return "SIGTRAP";
    default:
      return "signal";
  }
}

void on_signal(int sig, siginfo_t* si, void*) {
  if (g_failing.exchange(1) != 0) {
    for (;;) pause();
  }
  const uintptr_t addr = reinterpret_cast<uintptr_t>(si->si_addr);
  char ctx[512];
  format_context(ctx, sizeof ctx);
  char buf[1536];
  int len = 0;
  Worker* w = tls_worker;
  const char* kind = "crash";
  char detail[768];
  snprintf(detail, sizeof detail, "%s (invalid memory access at address 0x%lx)", signal_name(sig),
           static_cast<unsigned long>(addr));
  if (sig == SIGSEGV || sig == SIGBUS) {
    bool classified = false;
    if (w) {
      for (char* base : w->stacks) {
        const uintptr_t lo = reinterpret_cast<uintptr_t>(base);
        if (addr >= lo && addr < lo + g_page) {
          kind = "stack-overflow";
          snprintf(detail, sizeof detail, "fiber stack overflow (%zu bytes per CUDA thread; set KILN_EMU_STACK)",
                   g_stack_size);
          classified = true;
        }
      }
      const uintptr_t ag = reinterpret_cast<uintptr_t>(w->arena) + w->arena_cap;
      if (!classified && w->arena && addr >= ag && addr < ag + g_page) {
        kind = "shared-oob";
        snprintf(detail, sizeof detail,
                 "out-of-bounds shared-memory access %lu bytes past the end of the block's shared memory arena",
                 static_cast<unsigned long>(addr - reinterpret_cast<uintptr_t>(w->arena)));
        classified = true;
      }
    }
    for (size_t i = 0; !classified && i < g_buffers.size(); ++i) {
      const Buffer& bf = g_buffers[i];
      const uintptr_t end = reinterpret_cast<uintptr_t>(bf.data) + bf.padded;
      if (addr >= end && addr < end + g_page) {
        kind = "global-oob";
        snprintf(detail, sizeof detail, "out-of-bounds access to buffer %zu (%zu bytes) at byte offset %lu", i,
                 bf.size, static_cast<unsigned long>(addr - reinterpret_cast<uintptr_t>(bf.data)));
        classified = true;
      }
    }
    if (!classified && addr < 65536)
      snprintf(detail, sizeof detail, "%s: null-pointer access (address 0x%lx)", signal_name(sig),
               static_cast<unsigned long>(addr));
  } else if (sig == SIGFPE) {
    snprintf(detail, sizeof detail, "SIGFPE (integer division by zero or overflow)");
  } else if (sig == SIGABRT) {
    kind = "abort";
    snprintf(detail, sizeof detail, "abort() called (a failed assert?)");
  } else if (sig == SIGILL || sig == SIGTRAP) {
    snprintf(detail, sizeof detail, "%s (illegal instruction or trap)", signal_name(sig));
  }
  len = snprintf(buf, sizeof buf, "KILN_EMU_ERROR: %s: %s: %s\n", kind, ctx, detail);
  if (len > static_cast<int>(sizeof buf) - 1) len = static_cast<int>(sizeof buf) - 1;
  write_all(2, buf, static_cast<size_t>(len));
  _exit(4);
}

void install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_sigaction = on_signal;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP}) sigaction(sig, &sa, nullptr);
}

/* ------------------------------------------------------------ plan reading */
struct Reader {
  const unsigned char* p;
  size_t n, pos = 0;
  void need(size_t k, const char* what) {
    if (n - pos < k) plan_fail("plan", "truncated plan while reading %s (offset %zu)", what, pos);
  }
  template <class T>
  T get(const char* what) {
    need(sizeof(T), what);
    T v;
    memcpy(&v, p + pos, sizeof(T));
    pos += sizeof(T);
    return v;
  }
  const unsigned char* bytes(size_t k, const char* what) {
    need(k, what);
    const unsigned char* r = p + pos;
    pos += k;
    return r;
  }
};

std::vector<unsigned char> read_stdin() {
  std::vector<unsigned char> data;
  size_t len = 0;
  data.resize(1 << 16);
  for (;;) {
    if (len == data.size()) data.resize(data.size() * 2);
    const ssize_t k = read(0, data.data() + len, data.size() - len);
    if (k < 0) {
      if (errno == EINTR) continue;
      plan_fail("plan", "reading stdin failed: %s", strerror(errno));
    }
    if (k == 0) break;
    len += static_cast<size_t>(k);
  }
  data.resize(len);
  return data;
}

size_t parse_size(const char* s, size_t dflt) {
  if (!s || !*s) return dflt;
  char* end = nullptr;
  unsigned long long v = strtoull(s, &end, 10);
  if (end && (*end == 'k' || *end == 'K')) v *= 1024;
  if (end && (*end == 'm' || *end == 'M')) v *= 1024 * 1024;
  return static_cast<size_t>(v);
}

const char* kind_name(unsigned char k) {
  switch (k) {
    case kPtr:
      return "pointer";
    case kI32:
      return "i32";
    case kU32:
      return "u32";
    case kF32:
      return "f32";
    case kI64:
      return "i64";
    case kU64:
      return "u64";
    case kF64:
      return "f64";
    default:
      return "?";
  }
}

std::string signature(const KernelInfo* k) {
  std::string s = std::string(k->name) + "(";
  for (int i = 0; i < k->nparams; ++i) {
    if (i) s += ", ";
    s += kind_name(k->kinds[i]);
  }
  return s + ")";
}

const KernelInfo* find_kernel(const std::string& name) {
  for (const KernelInfo* k = g_kernels; k; k = k->next)
    if (name == k->name) return k;
  return nullptr;
}

Buffer make_buffer(size_t size) {
  Buffer b;
  b.size = size;
  b.padded = round_up(size, kBufferAlign);
  const size_t body = round_up(b.padded, g_page);
  b.map_len = body + g_page;
  b.map = static_cast<unsigned char*>(map_or_die(b.map_len));
  mprotect(b.map + body, g_page, PROT_NONE);
  b.data = b.map + (body - b.padded);
  memset(b.map, kGuard, body - b.padded);      /* before the start */
  memset(b.data + size, kGuard, b.padded - size); /* tail slack */
  return b;
}

/* Checks the guards of the buffers a launch could write (its pointer arguments): scanning every buffer after every
 * launch made a graph of N launches over N buffers quadratic. */
void check_buffer_guards(size_t launch_index, const char* kernel, const std::vector<uint32_t>& touched) {
  for (const uint32_t i : touched) {
    const Buffer& b = g_buffers[i];
    const size_t body = b.map_len - g_page;
    size_t k = first_changed(b.data + b.size, b.padded - b.size, kGuard);
    if (k != b.padded - b.size)
      driver_fail("global-oob",
                "kernel '%s' (launch %zu) wrote byte %zu past the end of buffer %zu (%zu bytes) (detected after the "
                "launch)",
                kernel, launch_index, k, i, b.size);
    const size_t before = body - b.padded;
    k = first_changed(b.map, before, kGuard);
    if (k != before)
      driver_fail("global-oob", "kernel '%s' (launch %zu) wrote %zu bytes before the start of buffer %zu", kernel,
                launch_index, before - k, i);
  }
}

}  // namespace

/* ---------------------------------------------------------------- runtime entry points used by kernels */
void register_kernel(KernelInfo* info) {
  info->next = g_kernels;
  g_kernels = info;
}

void fail(const char* kind, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfail(3, kind, true, fmt, ap);
}

void syncthreads() { (void)syncthreads_op(kBarPlain, 0); }

int syncthreads_op(int op, int pred) {
  Worker* w = tls_worker;
  Fiber* f = static_cast<Fiber*>(tls_fiber);
  Block& b = w->block;
  f->state = kWaitBar;
  f->bar_op = op;
  if (pred) ++b.bar_count;
  if (++b.bar_arrived == b.nthreads) {
    for (unsigned i = 0; i < b.nthreads; ++i) {
      Fiber& o = w->fibers[i];
      if (o.bar_op != op)
        fail("barrier-divergence", "threads of the block wait at different barriers: %s() and thread (%u,%u,%u) at %s()",
             bar_op_name(op), o.tid.x, o.tid.y, o.tid.z, bar_op_name(o.bar_op));
      o.state = kReady;
    }
    const unsigned c = b.bar_count;
    b.bar_result = op == kBarCount ? static_cast<int>(c)
                   : op == kBarAnd ? (c == b.nthreads ? 1 : 0)
                                   : (c > 0 ? 1 : 0);
    b.bar_arrived = 0;
    b.bar_count = 0;
  }
  yield(w, f);
  tls_running = f;
  return b.bar_result;
}

uint64_t warp_op(int op, unsigned mask, uint64_t value, int param, int width) {
  Worker* w = tls_worker;
  Fiber* f = static_cast<Fiber*>(tls_fiber);
  f->wop = op;
  f->wmask = mask;
  f->wval = value;
  f->wparam = param;
  f->wwidth = width;
  const unsigned wi = f->linear >> 5;
  Warp& wp = w->warps[wi];
  if (++wp.arrived < wp.nlanes) {
    f->state = kWaitWarp;
    yield(w, f);
    tls_running = f;
    return f->wres;
  }
  /* last lane to arrive: complete the operation for the whole warp */
  wp.arrived = 0;
  Fiber* lanes = &w->fibers[wi * 32];
  const unsigned n = wp.nlanes;
  const unsigned existing = n >= 32 ? 0xffffffffu : ((1u << n) - 1u);
  for (unsigned l = 0; l < n; ++l) {
    const Fiber& o = lanes[l];
    if (o.wop != op)
      fail("warp-divergence", "lanes of warp %u execute different warp operations: lane %u at %s, lane %u at %s", wi,
           f->linear % 32, warp_op_name(op), l, warp_op_name(o.wop));
    if ((o.wmask & existing) != existing)
      fail("shuffle",
           "%s in warp %u with mask 0x%08x (lane %u): the emulator supports only warp operations in which all %u "
           "lanes of the warp participate (mask 0x%08x)",
           warp_op_name(op), wi, o.wmask, l, n, existing);
  }
  switch (op) {
    case kSyncWarp:
      break;
    case kBallot:
    case kAny:
    case kAll: {
      unsigned bits = 0;
      for (unsigned l = 0; l < n; ++l)
        if (lanes[l].wval) bits |= 1u << l;
      const uint64_t r = op == kBallot ? bits : op == kAny ? (bits != 0) : (bits == existing);
      for (unsigned l = 0; l < n; ++l) lanes[l].wres = r;
      break;
    }
    default: {
      for (unsigned l = 0; l < n; ++l) {
        const Fiber& o = lanes[l];
        const unsigned wd = static_cast<unsigned>(o.wwidth);
        if (o.wwidth < 1 || o.wwidth > 32 || (wd & (wd - 1)) != 0)
          fail("shuffle", "%s with width %d (lane %u): width must be a power of two in [1, 32]", warp_op_name(op),
               o.wwidth, l);
        const unsigned group = l & ~(wd - 1);
        const unsigned lw = l & (wd - 1);
        unsigned src = l;
        const unsigned p = static_cast<unsigned>(o.wparam);
        if (op == kShflIdx)
          src = group + (p & (wd - 1));
        else if (op == kShflUp)
          src = lw >= p ? l - p : l;
        else if (op == kShflDown)
          src = (p < wd && lw + p < wd) ? l + p : l;
        else if (op == kShflXor)
          src = ((l ^ p) < group + wd) ? (l ^ p) : l;
        if (src >= n)
          fail("shuffle",
               "%s in warp %u: lane %u reads lane %u, which does not exist (this warp has only %u threads; "
               "the block size should be a multiple of 32)",
               warp_op_name(op), wi, l, src, n);
        lanes[l].wres = lanes[src].wval;
      }
      break;
    }
  }
  for (unsigned l = 0; l < n; ++l)
    if (lanes[l].state == kWaitWarp) lanes[l].state = kReady;
  return f->wres;
}

void* shared_alloc(const SharedSite* site) {
  Worker* w = tls_worker;
  for (size_t i = 0; i < w->sites.size(); ++i)
    if (w->sites[i] == site) return w->arena + w->regions[i + 1].off;
  const size_t align = site->align > 16 ? site->align : 16;
  const size_t off = round_up(w->cursor + kGap, align);
  if (w->static_used + site->size > g_static_limit)
    fail("shared-limit",
         "static shared memory exceeds the limit: '%s' (%s, %zu bytes) brings the block's total to %zu bytes > %zu "
         "(KILN_EMU_STATIC_SHARED_LIMIT)",
         site->name, site->type, site->size, w->static_used + site->size, g_static_limit);
  if (w->sites.size() >= kMaxSites || off + site->size + kTail > w->arena_cap)
    fail("shared-limit", "too many shared arrays in one block (at '%s')", site->name);
  memset(w->arena + off, kFill, site->size);
  memset(w->arena + off + site->size, kGuard, kTail);
  w->sites.push_back(site);
  w->regions.push_back(Region{site->name, site->type, off, site->size});
  w->cursor = off + site->size;
  w->static_used += site->size;
  return w->arena + off;
}

}  // namespace kiln_emu

/* ---------------------------------------------------------------- host driver */
using namespace kiln_emu;

int main(int argc, char** argv) {
  if (argc > 1 && strcmp(argv[1], "--list") == 0) {
    for (const KernelInfo* k = g_kernels; k; k = k->next) {
      printf("%s\t", k->name);
      for (int i = 0; i < k->nparams; ++i) printf(i ? ",%d" : "%d", k->kinds[i]);
      printf("\n");
    }
    return 0;
  }
  /* results go to a private copy of stdout; kernel printf output goes to stderr */
  g_result_fd = dup(1);
  dup2(2, 1);

  g_page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  g_stack_size = round_up(parse_size(getenv("KILN_EMU_STACK"), 64 * 1024), 4096);
  if (g_stack_size < 16 * 1024) g_stack_size = 16 * 1024;
  g_static_limit = parse_size(getenv("KILN_EMU_STATIC_SHARED_LIMIT"), 48 * 1024);
  g_dynamic_limit = parse_size(getenv("KILN_EMU_DYNAMIC_SHARED_LIMIT"), 227 * 1024);
  const char* order = getenv("KILN_EMU_ORDER");
  g_env_reverse = order && strcmp(order, "reverse") == 0;
  g_threads = std::thread::hardware_concurrency();
  if (const char* t = getenv("KILN_EMU_THREADS")) g_threads = static_cast<unsigned>(atoi(t));
  if (g_threads < 1) g_threads = 1;

  static char main_alt[64 * 1024];
  stack_t ss{};
  ss.ss_sp = main_alt;
  ss.ss_size = sizeof main_alt;
  sigaltstack(&ss, nullptr);
  install_signal_handlers();

  const std::vector<unsigned char> plan = read_stdin();
  Reader r{plan.data(), plan.size()};
  const unsigned char* magic = r.bytes(4, "magic");
  if (memcmp(magic, "KLNP", 4) != 0) plan_fail("plan", "bad magic (expected \"KLNP\")");
  const uint32_t version = r.get<uint32_t>("version");
  if (version != 1) plan_fail("plan", "unsupported plan version %u", version);

  const uint32_t nbuf = r.get<uint32_t>("buffer count");
  g_buffers.reserve(nbuf);
  for (uint32_t i = 0; i < nbuf; ++i) {
    const uint64_t size = r.get<uint64_t>("buffer size");
    const uint8_t init = r.get<uint8_t>("buffer init");
    if (size > (1ull << 40)) plan_fail("plan", "buffer %u is too large (%llu bytes)", i, (unsigned long long)size);
    Buffer b = make_buffer(static_cast<size_t>(size));
    if (init == 1) {
      memset(b.data, r.get<uint8_t>("fill byte"), b.size);
    } else if (init == 2) {
      memcpy(b.data, r.bytes(b.size, "buffer contents"), b.size);
    } else if (init != 0) {
      plan_fail("plan", "buffer %u: unknown init kind %u", i, init);
    }
    g_buffers.push_back(b);
  }

  struct PlannedLaunch {
    const KernelInfo* kernel;
    dim3 grid, block;
    uint32_t dyn, flags;
    std::vector<uint64_t> slots;
    std::vector<uint32_t> buffers; /* buffer indices passed as pointers */
  };
  const uint32_t nl = r.get<uint32_t>("launch count");
  std::vector<PlannedLaunch> launches(nl);
  for (uint32_t li = 0; li < nl; ++li) {
    PlannedLaunch& pl = launches[li];
    const uint32_t name_len = r.get<uint32_t>("kernel name length");
    const std::string name(reinterpret_cast<const char*>(r.bytes(name_len, "kernel name")), name_len);
    pl.kernel = find_kernel(name);
    if (!pl.kernel) {
      std::string known;
      for (const KernelInfo* k = g_kernels; k; k = k->next) known += (known.empty() ? "" : ", ") + std::string(k->name);
      plan_fail("plan", "launch %u: unknown kernel '%s' (registered: %s)", li, name.c_str(), known.c_str());
    }
    pl.grid.x = r.get<uint32_t>("grid");
    pl.grid.y = r.get<uint32_t>("grid");
    pl.grid.z = r.get<uint32_t>("grid");
    pl.block.x = r.get<uint32_t>("block");
    pl.block.y = r.get<uint32_t>("block");
    pl.block.z = r.get<uint32_t>("block");
    pl.dyn = r.get<uint32_t>("dynamic shared bytes");
    pl.flags = r.get<uint32_t>("flags");
    const uint32_t nargs = r.get<uint32_t>("argument count");
    if (static_cast<int>(nargs) != pl.kernel->nparams)
      plan_fail("plan", "launch %u: kernel '%s' takes %d parameters %s but the plan passes %u", li, name.c_str(),
                pl.kernel->nparams, signature(pl.kernel).c_str(), nargs);
    pl.slots.resize(nargs);
    for (uint32_t a = 0; a < nargs; ++a) {
      const uint8_t kind = r.get<uint8_t>("argument kind");
      if (kind != pl.kernel->kinds[a])
        plan_fail("plan", "launch %u: argument %u of kernel %s is %s but the plan passes %s", li, a,
                  signature(pl.kernel).c_str(), kind_name(pl.kernel->kinds[a]), kind_name(kind));
      uint64_t slot = 0;
      if (kind == kPtr) {
        const uint32_t bi = r.get<uint32_t>("buffer index");
        const uint64_t off = r.get<uint64_t>("buffer offset");
        if (bi == 0xffffffffu) {
          slot = 0;
        } else {
          if (bi >= g_buffers.size()) plan_fail("plan", "launch %u: argument %u names buffer %u of %u", li, a, bi, nbuf);
          if (off > g_buffers[bi].size)
            plan_fail("plan", "launch %u: argument %u: offset %llu is past the end of buffer %u (%zu bytes)", li, a,
                      (unsigned long long)off, bi, g_buffers[bi].size);
          const void* p = g_buffers[bi].data + off;
          memcpy(&slot, &p, sizeof p);
          pl.buffers.push_back(bi);
        }
      } else if (kind == kI32 || kind == kU32 || kind == kF32) {
        const uint32_t v = r.get<uint32_t>("scalar");
        slot = v;
      } else if (kind == kI64 || kind == kU64 || kind == kF64) {
        slot = r.get<uint64_t>("scalar");
      } else {
        plan_fail("plan", "launch %u: argument %u has unknown kind %u", li, a, kind);
      }
      pl.slots[a] = slot;
    }
    const dim3 g = pl.grid, bl = pl.block;
    if (g.x < 1 || g.y < 1 || g.z < 1 || g.x > 0x7fffffffu || g.y > 65535 || g.z > 65535)
      plan_fail("launch", "launch %u (kernel '%s'): invalid grid (%u,%u,%u)", li, name.c_str(), g.x, g.y, g.z);
    if (bl.x < 1 || bl.y < 1 || bl.z < 1 || bl.x > 1024 || bl.y > 1024 || bl.z > 64 ||
        static_cast<uint64_t>(bl.x) * bl.y * bl.z > 1024)
      plan_fail("launch", "launch %u (kernel '%s'): invalid block (%u,%u,%u): at most 1024 threads", li,
                name.c_str(), bl.x, bl.y, bl.z);
    if (pl.dyn > g_dynamic_limit)
      plan_fail("launch", "launch %u (kernel '%s'): %u bytes of dynamic shared memory exceed the limit of %zu",
                li, name.c_str(), pl.dyn, g_dynamic_limit);
  }
  const uint32_t nout = r.get<uint32_t>("output count");
  std::vector<uint32_t> outputs(nout);
  for (uint32_t i = 0; i < nout; ++i) {
    outputs[i] = r.get<uint32_t>("output index");
    if (outputs[i] >= g_buffers.size()) plan_fail("plan", "output %u names buffer %u of %u", i, outputs[i], nbuf);
  }
  if (r.pos != r.n) plan_fail("plan", "%zu unexpected bytes after the plan", r.n - r.pos);

  /* run */
  std::vector<double> times(nl);
  for (uint32_t li = 0; li < nl; ++li) {
    PlannedLaunch& pl = launches[li];
    std::vector<void*> argp(pl.slots.size());
    for (size_t a = 0; a < pl.slots.size(); ++a) argp[a] = &pl.slots[a];
    Launch L;
    L.kernel = pl.kernel;
    L.args = argp.data();
    L.grid = pl.grid;
    L.block = pl.block;
    L.dyn = pl.dyn;
    L.reverse = (pl.flags & 1u) ? true : (pl.flags & 2u) ? false : g_env_reverse;
    L.nthreads = pl.block.x * pl.block.y * pl.block.z;
    L.nblocks = static_cast<uint64_t>(pl.grid.x) * pl.grid.y * pl.grid.z;
    const unsigned nw = static_cast<unsigned>(L.nblocks < g_threads ? L.nblocks : g_threads);
    while (g_workers.size() < nw) {
      Worker* w = new Worker();
      w->altstack = static_cast<char*>(map_or_die(64 * 1024));
      g_workers.push_back(w);
    }
    for (unsigned i = 0; i < nw; ++i) ensure_capacity(g_workers[i], L.nthreads, L.dyn);
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> threads;
    for (unsigned i = 1; i < nw; ++i) threads.emplace_back(worker_main, g_workers[i], &L);
    worker_main(g_workers[0], &L);
    for (auto& t : threads) t.join();
    tls_worker = nullptr;
    times[li] = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    check_buffer_guards(li, pl.kernel->name, pl.buffers);
  }

  /* results */
  std::vector<unsigned char> out;
  auto put = [&out](const void* p, size_t n) {
    const unsigned char* c = static_cast<const unsigned char*>(p);
    out.insert(out.end(), c, c + n);
  };
  put("KLNR", 4);
  const uint32_t ver = 1;
  put(&ver, 4);
  put(&nl, 4);
  for (double t : times) put(&t, 8);
  put(&nout, 4);
  for (uint32_t idx : outputs) {
    const uint64_t size = g_buffers[idx].size;
    put(&idx, 4);
    put(&size, 8);
  }
  /* header first, then the contents straight from the buffers */
  size_t header_pos = 4 + 4 + 4 + 8 * static_cast<size_t>(nl) + 4;
  write_all(g_result_fd, out.data(), header_pos);
  for (uint32_t i = 0; i < nout; ++i) {
    write_all(g_result_fd, out.data() + header_pos + i * 12, 12);
    write_all(g_result_fd, g_buffers[outputs[i]].data, g_buffers[outputs[i]].size);
  }
  close(g_result_fd);
  return 0;
}
