/* Stack capture on the hot path. */
#ifndef PG_STACK_H
#define PG_STACK_H

#include <stdint.h>

/* Loads the unwinder and warms it up (its first call allocates). Safe to
 * call more than once. */
void pg_stack_init(void);

/* Return addresses of the caller's frames, the library's own frames left
 * out; at most max. Returns how many. */
int pg_stack_capture(uintptr_t *out, int max);

/* Which unwinder is in use: "libunwind" or "backtrace". */
const char *pg_stack_unwinder(void);

#endif
