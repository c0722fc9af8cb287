/* Stack capture by DWARF CFI (.eh_frame), x86_64, with a process-wide cache
 * of unwind rules keyed by return address (static, 8192 slots, never
 * evicted). Holds no descriptor, makes no system call and no allocation, not
 * even on a cache miss (_dl_find_object). Reads, besides the loaded objects'
 * .eh_frame, only the calling thread's stack: from its rsp up to the stack's
 * top (pthread_self() for a thread, __libc_stack_end for the main thread),
 * at most 64 MiB. Thread-safe; not async-signal-safe (the fallback lookup,
 * dl_iterate_phdr(), takes the loader's lock). */
#ifndef PG_UNWIND_H
#define PG_UNWIND_H

#include <stdint.h>

/* Optional: finds how to look up CFI. Idempotent, cheap; holds nothing.
 * pg_unwind_backtrace() calls it itself when needed. */
void pg_unwind_init(void);

/* Fills out[] with return addresses, innermost first, and returns how many
 * (0 if max <= 0). Same convention as glibc's backtrace():
 *   out[0] = the return address of this very call to pg_unwind_backtrace,
 *            i.e. an address inside the function that called it, just after
 *            its call instruction;
 *   out[1] = the return address into that function's caller, and so on.
 * So if f() calls both backtrace() and pg_unwind_backtrace(), the two lists
 * differ at [0] only (two call sites in f) and are equal from [1] on.
 * The walk stops early, keeping what it found, at: a frame without CFI (JIT
 * code, stripped .eh_frame, code registered only with __register_frame), a
 * rule it does not follow (CFA or return address given by a DWARF
 * expression or a register other than rsp/rbp), a signal frame (the
 * sa_restorer's address, e.g. __restore_rt, is the last entry), the
 * outermost frame (_start, clone3: return address undefined), or a return
 * address of 0, or a CFA that does not rise or leaves the thread's stack. */
int pg_unwind_backtrace(uintptr_t *out, int max);

/* pg_unwind_backtrace through this thread's cache of its last captures
 * (shim/unwind.c): on a hit, the same frames at a fraction of the cost, and
 * t->tag is what pg_unwind_set_tag stored with them (0: nothing yet; the
 * caller's call-site id); a hit with a tag fills in no frames. t->signal: the walk ended at a signal frame (the
 * capture runs inside a signal handler). */
struct pg_unwind_trace {
	uint32_t tag;
	int slot;
	int signal;
};
int pg_unwind_capture(uintptr_t *out, int max, struct pg_unwind_trace *t);
/* The same from a frame with a frame pointer (__builtin_frame_address(0)
 * of a function up the stack): its return address is the first frame. */
int pg_unwind_capture_from(uintptr_t *out, int max, void *frame, struct pg_unwind_trace *t);
void pg_unwind_set_tag(const struct pg_unwind_trace *t, uint32_t tag);

/* The function holding pc, as its CFI (FDE) gives it: [*begin, *begin +
 * *size). 0, or -1 when pc has no CFI. Lock-free where _dl_find_object is. */
int pg_unwind_function(uintptr_t pc, uintptr_t *begin, uintptr_t *size);

/* Return addresses in [lo, hi) are walked through but neither stored nor
 * counted (the library's own code). Set once, before captures; 0, 0: none. */
void pg_unwind_skip(uintptr_t lo, uintptr_t hi);

#endif
