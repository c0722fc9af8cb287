/* The leak report: a cut of the registry (every descriptor and count at one
 * moment), reconciled with the kernel, grouped by call site, written as
 * text or JSON. Runs in the library's thread (shim/reporter.c), or directly
 * in tests and benches. */
#ifndef PG_REPORT_H
#define PG_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "shim/config.h"

enum pg_reason { PG_REASON_EXIT, PG_REASON_SIGNAL, PG_REASON_DUMP };

struct pg_suppress;

struct pg_report_opts {
	const struct pg_config *cfg;
	int symbolize; /* as cfg->symbolize: 0 names, else file:line */
	enum pg_reason reason;
	int pid;
	const char *exe;
	const char *argv0; /* may be NULL or "" */
	int64_t now_ns;
	int fd; /* where to write; -1: ask open_fd, only when there is something to say */
	int (*open_fd)(void *arg);
	void *open_arg;
	int quiet_if_clean; /* write nothing when nothing leaked and nothing else happened */
	int kernel; /* 0: synthetic registry (benches): no reconciliation, no queries */
	struct pg_suppress *supp; /* may be NULL */
	int policy; /* the policy's sections (shim/enforce.c) */
	int events; /* policy events happened: a clean exit report to a stream still prints */
	/* Working memory, set aside beforehand (the exit report must come out
	 * when malloc has nothing left); NULL: taken from the arena. */
	void *mem;
	size_t mem_size;
};

/* Bytes of working memory a report of n descriptors needs. */
size_t pg_report_mem_for(size_t n);

struct pg_report_result {
	uint64_t open, leaked, suppressed, untracked;
	uint64_t sites_leaking;
	int written; /* 0: nothing to say, nothing written */
};

int pg_report_write(const struct pg_report_opts *o, struct pg_report_result *res);

#endif
