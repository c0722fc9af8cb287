/* Reading JSON reports and merging them by call site (SPEC section 6,
 * `portguard report`). A call site is the list of its frames' (module,
 * offset) pairs: addresses differ between processes, offsets do not. */
#ifndef PG_MERGE_H
#define PG_MERGE_H

#include <jansson.h>
#include <stddef.h>
#include <uthash.h>

struct pg_msite {
	char *key; /* frames' (module, offset) pairs, see merge.c */
	size_t keylen;
	json_t *frames; /* of the first report that had this site */
	json_int_t open, leaked, created, finalized;
	json_t *sockets; /* every socket of every process, each with "pid" */
	long *pids; /* processes with sockets or creations here */
	size_t npids;
	size_t order; /* first seen */
	UT_hash_handle hh;
};

struct pg_minst; /* one process's report, as chosen */

struct pg_merge {
	struct pg_minst *insts; /* hash by (file, pid) in order of first sight */
	struct pg_msite *sites; /* hash by key, filled by pg_merge_build */
	size_t nsites;
	size_t nfiles;
	struct pg_mfile *files;
	json_t *events; /* kind -> count */
	json_t *totals, *policy, *double_closes, *destinations, *exes;
	long *pids; /* sorted, distinct */
	size_t npids;
	size_t nexit, nsignal; /* reports merged, by reason */
	size_t nreports; /* report lines read */
};

struct pg_mfile {
	unsigned long long dev, ino;
	char *path;
};

/* The longest report line read: a JSON report of 1,000,000 sockets is
 * about 250 MiB on one line. */
#define PG_MERGE_MAX_LINE (512 << 20)

void pg_merge_init(struct pg_merge *m);
/* Reads one file ("-": stdin). Returns 0, or -1 after printing one line
 * "FILE:LINE: what is wrong" (or why the file cannot be read). */
int pg_merge_load(struct pg_merge *m, const char *path);
/* Merges the chosen reports: sites, totals, pids, ... */
void pg_merge_build(struct pg_merge *m);
/* Sites largest first: leaked, then open, then created, then first seen.
 * Caller frees the array. */
struct pg_msite **pg_merge_sorted(struct pg_merge *m);
struct pg_msite *pg_merge_find(struct pg_merge *m, const char *key, size_t keylen);
void pg_merge_free(struct pg_merge *m);
/* The reports merged, one object each in order of first sight: "pid" (or
 * "pids" for a merged report), "exe", "reason", "file", "totals". */
json_t *pg_merge_processes(const struct pg_merge *m);

/* Integer member, 0 when absent or not an integer. */
json_int_t pg_merge_int(const json_t *o, const char *key);
/* String member, NULL when absent or not a string. */
const char *pg_merge_str(const json_t *o, const char *key);

#endif
