/* The leak report: reads the registry, reconciles it with the kernel, and
 * writes text or JSON. */
#ifndef PG_REPORT_H
#define PG_REPORT_H

#include <stdint.h>

#include "shim/config.h"

enum pg_reason { PG_REASON_EXIT, PG_REASON_SIGNAL };

struct pg_out;
struct pg_suppress;

struct pg_report_opts {
	const struct pg_config *cfg;
	enum pg_reason reason;
	int pid;
	const char *exe;
	int64_t now_ns;
	int fd; /* where to write */
	int quiet_if_clean; /* write nothing when nothing leaked and nothing else happened */
	int kernel; /* 0: synthetic registry (benches): no reconciliation, no queries */
	int (*close_fn)(int); /* the real close, for the report's own descriptors */
	struct pg_suppress *supp; /* may be NULL */
	/* Optional extra sections (policy, destinations): called inside the
	 * JSON object after the standard keys, and before SUMMARY in text. */
	void (*extra)(void *arg, struct pg_out *o, int json);
	void *extra_arg;
	int extra_events; /* policy events happened: a clean exit report still prints */
};

struct pg_report_result {
	uint64_t open, leaked, suppressed, untracked;
	uint64_t sites_leaking;
	int written; /* 0: nothing to say, nothing written */
};

int pg_report_write(const struct pg_report_opts *o, struct pg_report_result *res);

#endif
