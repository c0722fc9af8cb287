/* portguard ports: one reading of the kernel's socket tables, counted per
 * (local IP, remote IP, remote port), shared by the one-shot views
 * (ports.c) and the live one (watch.c). */
#ifndef PG_PORTS_H
#define PG_PORTS_H

#include "tools/procscan.h"
#include "tools/socktab.h"

#include <stddef.h>
#include <stdint.h>
#include <uthash.h>

enum { PG_OK, PG_WARNING, PG_CRITICAL };
extern const char *const pg_ports_status_names[];

#define PG_NSTATES 13
/* Text shows the busiest rows; a busy server has thousands of tuples. */
#define PG_TEXT_ROWS 20

struct pg_tkey {
	uint8_t family;
	uint8_t pad;
	uint16_t rport;
	uint8_t laddr[16];
	uint8_t raddr[16];
};

struct pg_towner {
	int pid;
	long sockets;
};

struct pg_tuple {
	struct pg_tkey key;
	long used;
	long states[PG_NSTATES];
	struct pg_towner *owners;
	size_t nowners;
	double percent;
	int status;
	UT_hash_handle hh;
};

struct pg_hit {
	size_t tuple;
	int pid;
};

struct pg_procinfo {
	char comm[32];
	double percent;
	int status;
	int listed;
};

struct pg_ports {
	long low, high, size;
	double warn, crit;
	int json, openmetrics, only_pid;
	struct pg_socktab tab;
	struct pg_procscan scan;
	struct pg_procinfo *pinfo; /* parallel to scan.procs */
	struct pg_tuple *hash;
	struct pg_tuple **tuples;
	size_t ntuples;
	int status;
	int any_time_wait;
};

/* One reading: the range, the sockets, the processes, counted. 0, or 3
 * (the exit status) with the reason printed. */
int pg_ports_take(struct pg_ports *p);
/* Frees what pg_ports_take made; p's options stay. */
void pg_ports_release(struct pg_ports *p);

/* The text view's parts. */
void pg_ports_print_head(struct pg_ports *p);
void pg_ports_print_procs(struct pg_ports *p, size_t max_rows);
void pg_ports_tuple_strings(const struct pg_tuple *t, char *local, size_t lsize, char *remote,
			    size_t rsize);
char *pg_ports_states_text(const struct pg_tuple *t);
/* A tuple's first five cells: LOCAL, REMOTE, USED, %, STATUS. */
void pg_ports_tuple_cells(const struct pg_tuple *t, char **cells);
char *pg_ports_owners_text(struct pg_ports *p, const struct pg_tuple *t);
double pg_ports_round2(double v);

/* A text table: columns sized to their widest cell (in characters, UTF-8
 * counted as such); numbers right-aligned. Cells are malloc'ed strings,
 * freed when printed. */
struct pg_table {
	size_t ncols, nrows;
	char **cells; /* nrows x ncols */
	const char *align; /* 'l' or 'r' per column */
};
void pg_table_add(struct pg_table *tb, char **row);
void pg_table_print(struct pg_table *tb);

/* ports --watch: redraws every interval seconds until q, Ctrl-C or
 * SIGTERM; the exit status. */
int pg_ports_watch(struct pg_ports *p, double interval);

#endif
