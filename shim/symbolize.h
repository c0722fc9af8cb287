/* Return address -> module+offset, function, file:line (with inlined frames).
 * Used only while a report is written: a program that never reports pays
 * nothing. */
#ifndef PG_SYMBOLIZE_H
#define PG_SYMBOLIZE_H

#include <stdint.h>

struct pg_sym {
	const char *module; /* path of the object ("" never: "?" when unknown) */
	uintptr_t offset; /* address - the object's load base */
	const char *function; /* NULL when unknown */
	const char *file; /* NULL when unknown */
	int line; /* 0 when unknown */
	int inlined; /* 1: a frame inlined into the next entry */
};

struct pg_symbolizer;

/* debuginfo: 1 to use file:line information (libdw, loaded on first use),
 * 0 for function names from the symbol tables only. NULL on no memory. */
struct pg_symbolizer *pg_sym_open(int debuginfo);

/* Fills up to max entries for one frame, the innermost inlined frame first and
 * the function that really holds the address last; returns how many (>= 1).
 * return_address: look up addr - 1, so that the line is the call's. Strings
 * stay valid until pg_sym_close. When the chain is longer than max, the
 * innermost max - 1 entries and the real function are kept. s may be NULL
 * (pg_sym_open ran out of memory): then module "?", offset addr. max < 1:
 * returns 0. */
int pg_sym_lookup(struct pg_symbolizer *s, uintptr_t addr, int return_address, struct pg_sym *out,
		  int max);

/* Frees everything and leaves no descriptor open. libdw, once loaded, stays
 * mapped for the process's later reports (it holds no descriptor). */
void pg_sym_close(struct pg_symbolizer *s);

/* 1 when file:line information is in use (libdw loaded), else 0. */
int pg_sym_has_debuginfo(const struct pg_symbolizer *s);

/* The root of separate debug files, "/usr/lib/debug" unless set:
 * DIR/.build-id/xx/yyyy.debug and DIR/<module's directory>/<debuglink>.
 * For tests and relocated sysroots; call before the first lookup.
 * Returns 0, -EINVAL (s or dir NULL) or -ENOMEM. */
int pg_sym_set_debug_root(struct pg_symbolizer *s, const char *dir);

#endif
