/* Names and words that the library and the portguard tool must read and
 * write the same way: the PORTGUARD_OPTIONS tokenizer, signal names (with
 * the signals report_signal refuses) and the kernel's TCP state names.
 * Pure, as policy/ is: no I/O, no globals, no errno; both the shim and the
 * tool build it (the tool never links the shim). */
#ifndef PG_NAMES_H
#define PG_NAMES_H

#include <stddef.h>

/* PORTGUARD_OPTIONS: key=value pairs separated by ':' or white space; a
 * value may be quoted ('...' or "...") to hold ':' or blanks, as in
 * ASAN_OPTIONS. Calls pair() for each pair in order, and bad() with a
 * message (no prefix) for each piece that is not one (then goes on). Keys
 * longer than 63 bytes and values longer than vmax - 1 bytes are bad. An
 * unterminated quote ends the parse. */
struct pg_names_opt_cb {
	void (*pair)(const char *key, const char *value, void *arg);
	void (*bad)(const char *message, void *arg);
	void *arg;
};
void pg_names_options(const char *text, size_t vmax, const struct pg_names_opt_cb *cb);

/* "USR1", "SIGUSR1", "usr1", "RTMIN+3", "rtmax-1", "10" -> the signal
 * number; "0" -> 0; anything else -1. */
int pg_names_signal(const char *name);
/* Why sig may not be the report signal (KILL, STOP, the signals the kernel
 * sends on a fault, glibc's reserved 32 and 33), or NULL. */
const char *pg_names_signal_refused(int sig);
/* "USR1", "RTMIN+3", or the number; returns buf. */
const char *pg_names_signal_format(int sig, char *buf, size_t size);

/* The kernel's TCP state (include/net/tcp_states.h): 1 -> "ESTABLISHED",
 * ..., 12 -> "NEW_SYN_RECV"; NULL for anything else. */
const char *pg_names_tcp_state(int state);
#define PG_TCP_ESTABLISHED 1
#define PG_TCP_TIME_WAIT 6
#define PG_TCP_CLOSE 7
#define PG_TCP_LISTEN 10

#endif
