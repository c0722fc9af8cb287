/* Stack capture on the hot path: the caller's frames (the library's own
 * left out), and their call site. */
#ifndef PG_STACK_H
#define PG_STACK_H

#include <stdint.h>

/* Finds the library's own text and warms the unwinder up. Safe to call
 * more than once. */
void pg_stack_init(void);

/* Return addresses of the caller's frames, at most max. Returns how many. */
int pg_stack_capture(uintptr_t *out, int max);

/* The frame of the wrapper (shim/interpose.c) the current hook runs in,
 * NULL outside one: stacks start at its return address, and the library's
 * own frames are never walked. */
extern __thread void *pg_stack_frame __attribute__((tls_model("initial-exec")));

/* The call site (shim/sites.h) of the caller's stack, max frames deep (0
 * when max is 0 or it cannot be stored). A repeated capture of this thread
 * is found in its cache (shim/unwind.c) without a walk or a lookup. */
uint32_t pg_stack_site(int max);

/* 1 when the caller runs inside a signal handler (a signal frame on its
 * stack, looked for up to 256 frames down). For decisions made once, such
 * as starting a thread (not async-signal-safe). */
int pg_stack_in_signal_handler(void);

/* Which unwinder is in use. */
const char *pg_stack_unwinder(void);

#endif
