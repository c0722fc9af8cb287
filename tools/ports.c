/* portguard ports: who is eating the ephemeral ports, system-wide.
 *
 * A connect() without bind() takes a local port from ip_local_port_range
 * that no other socket uses toward the same (local IP, remote IP, remote
 * port); so each such tuple has the whole range to itself, and that is what
 * runs out. We count, per tuple, TCP sockets in any state but LISTEN whose
 * local port is in the range and is not a listening port (those are the
 * server ends of accepted connections, which take no ephemeral port). */
#include "common/names.h"
#include "tools/cli.h"
#include "tools/cmd.h"
#include "tools/ports.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static const char usage[] =
    "usage: portguard ports [--json | --openmetrics | --watch [S]] [--warn PCT] [--crit PCT]\n"
    "                       [--pid PID]\n"
    "\n"
    "Shows, for each (local IP, remote IP, remote port), how many ports of the\n"
    "ephemeral range (net.ipv4.ip_local_port_range) its TCP sockets hold and in\n"
    "which states, who owns them, and which processes are near RLIMIT_NOFILE.\n"
    "\n"
    "  --json        one JSON object instead of tables\n"
    "  --openmetrics the same figures in the Prometheus/OpenMetrics text format\n"
    "                (node_exporter's textfile collector); exit 0 whenever\n"
    "                they were printed, the status being one of them\n"
    "  --watch [S]   a live view, redrawn every S seconds (default 1; 0.1 to\n"
    "                3600) with each busy tuple's trend over the last minute;\n"
    "                q or Ctrl-C quits; plain lines when stdout is no terminal\n"
    "  --warn PCT    WARNING at this percentage of the range or of a process's\n"
    "                descriptor limit (default 60; decimals allowed)\n"
    "  --crit PCT    CRITICAL likewise (default 80)\n"
    "  --pid PID     only sockets that process PID holds (TIME_WAIT sockets\n"
    "                belong to no process and are then not counted)\n"
    "  -h, --help    this text\n"
    "\n"
    "Exit status, as monitoring plugins use it: 0 OK, 1 WARNING, 2 CRITICAL,\n"
    "3 the socket table, the port range or PID could not be read. Bad\n"
    "arguments: 2 with this text on stderr. --watch: 0 when quit, 3 when a\n"
    "reading fails.\n"
    "Owners come from /proc/*/fd: without root, other users' processes show no\n"
    "owner and their number is reported.\n";

const char *const pg_ports_status_names[] = { "OK", "WARNING", "CRITICAL" };

static int status_of(const struct pg_ports *p, double percent)
{
	if (percent >= p->crit)
		return PG_CRITICAL;
	if (percent >= p->warn)
		return PG_WARNING;
	return PG_OK;
}

static int read_range(struct pg_ports *p)
{
	char buf[64];
	long r;

	r = pg_cli_read_small("/proc/sys/net/ipv4/ip_local_port_range", buf, sizeof(buf));
	if (r < 0) {
		pg_cli_warn("cannot read /proc/sys/net/ipv4/ip_local_port_range: %s",
			    strerror((int)-r));
		return -1;
	}
	if (sscanf(buf, "%ld %ld", &p->low, &p->high) != 2 || p->low < 1 || p->high > 65535 ||
	    p->low > p->high) {
		pg_cli_warn("cannot make sense of ip_local_port_range '%s'", buf);
		return -1;
	}
	p->size = p->high - p->low + 1;
	return 0;
}

static int read_sockets(struct pg_ports *p)
{
	const char *src = getenv("PORTGUARD_PORTS_SOURCE");
	int r = -EPROTONOSUPPORT;

	/* PORTGUARD_PORTS_SOURCE=proc forces the fallback (tests, odd kernels). */
	if (!src || strcmp(src, "proc") != 0)
		r = pg_socktab_read_diag(&p->tab);
	if (r < 0)
		r = pg_socktab_read_proc(&p->tab);
	if (r < 0) {
		pg_cli_warn(
		    "cannot read the TCP socket table (sock_diag netlink nor /proc/net/tcp): %s",
		    strerror(-r));
		return -1;
	}
	return 0;
}

static int cmp_hit(const void *a, const void *b)
{
	const struct pg_hit *x = a, *y = b;

	if (x->tuple != y->tuple)
		return x->tuple < y->tuple ? -1 : 1;
	return (x->pid > y->pid) - (x->pid < y->pid);
}

static int cmp_towner(const void *a, const void *b)
{
	const struct pg_towner *x = a, *y = b;

	if (x->sockets != y->sockets)
		return x->sockets > y->sockets ? -1 : 1;
	return (x->pid > y->pid) - (x->pid < y->pid);
}

static int cmp_tuple(const void *a, const void *b)
{
	const struct pg_tuple *x = *(struct pg_tuple *const *)a, *y = *(struct pg_tuple *const *)b;
	int c;

	if (x->used != y->used)
		return x->used > y->used ? -1 : 1;
	if (x->key.family != y->key.family)
		return x->key.family < y->key.family ? -1 : 1;
	c = memcmp(x->key.laddr, y->key.laddr, 16);
	if (!c)
		c = memcmp(x->key.raddr, y->key.raddr, 16);
	if (!c)
		c = (x->key.rport > y->key.rport) - (x->key.rport < y->key.rport);
	return c;
}

static struct pg_procinfo *pinfo_of(struct pg_ports *p, int pid)
{
	const struct pg_proc *pr = pg_procscan_find(&p->scan, pid);

	return pr ? &p->pinfo[pr - p->scan.procs] : NULL;
}

static const char *comm_of(struct pg_ports *p, int pid)
{
	struct pg_procinfo *pi = pinfo_of(p, pid);

	if (!pi)
		return "?";
	if (!pi->comm[0])
		pg_procscan_comm(pid, pi->comm, sizeof(pi->comm));
	return pi->comm;
}

static void count(struct pg_ports *p)
{
	static uint8_t listening[65536 / 8];
	struct pg_hit *hits = NULL;
	size_t nhits = 0, caphits = 0;

	memset(listening, 0, sizeof(listening));
	for (size_t i = 0; i < p->tab.n; i++)
		if (p->tab.v[i].state == TCP_LISTEN)
			listening[p->tab.v[i].lport / 8] |=
			    (uint8_t)(1u << (p->tab.v[i].lport % 8));

	for (size_t i = 0; i < p->tab.n; i++) {
		const struct pg_tcpsock *s = &p->tab.v[i];
		struct pg_tuple *t;
		struct pg_tkey key;
		size_t first, n;

		if (s->state == TCP_LISTEN || s->state == 0 || s->state >= PG_NSTATES)
			continue;
		if (s->lport < p->low || s->lport > p->high)
			continue;
		if (listening[s->lport / 8] & (1u << (s->lport % 8)))
			continue;
		n = s->inode ? pg_procscan_owners_of(&p->scan, s->inode, &first) : 0;
		/* With --pid the scan saw only that process: what it does not
		 * hold is not counted. */
		if (p->only_pid && !n)
			continue;
		memset(&key, 0, sizeof(key));
		key.family = s->family;
		key.rport = s->rport;
		memcpy(key.laddr, s->laddr, 16);
		memcpy(key.raddr, s->raddr, 16);
		HASH_FIND(hh, p->hash, &key, sizeof(key), t);
		if (!t) {
			t = pg_cli_calloc(1, sizeof(*t));
			t->key = key;
			HASH_ADD(hh, p->hash, key, sizeof(key), t);
			p->tuples =
			    pg_cli_realloc(p->tuples, (p->ntuples + 1) * sizeof(*p->tuples));
			/* Until sorted, the index is kept in nowners. */
			t->nowners = p->ntuples;
			p->tuples[p->ntuples++] = t;
		}
		t->used++;
		t->states[s->state]++;
		if (s->state == TCP_TIME_WAIT)
			p->any_time_wait = 1;
		for (size_t k = 0; k < n; k++) {
			if (nhits == caphits) {
				caphits = caphits ? caphits * 2 : 1024;
				hits = pg_cli_realloc(hits, caphits * sizeof(*hits));
			}
			hits[nhits].tuple = t->nowners;
			hits[nhits].pid = p->scan.owners[first + k].pid;
			nhits++;
		}
	}
	for (size_t i = 0; i < p->ntuples; i++)
		p->tuples[i]->nowners = 0;

	/* Owners per tuple: sockets held by each pid. */
	if (nhits)
		qsort(hits, nhits, sizeof(*hits), cmp_hit);
	for (size_t i = 0; i < nhits;) {
		struct pg_tuple *t = p->tuples[hits[i].tuple];
		size_t j = i;
		struct pg_procinfo *pi;

		while (j < nhits && hits[j].tuple == hits[i].tuple && hits[j].pid == hits[i].pid)
			j++;
		t->owners = pg_cli_realloc(t->owners, (t->nowners + 1) * sizeof(*t->owners));
		t->owners[t->nowners].pid = hits[i].pid;
		t->owners[t->nowners].sockets = (long)(j - i);
		t->nowners++;
		pi = pinfo_of(p, hits[i].pid);
		if (pi)
			pi->listed = 1;
		i = j;
	}
	free(hits);

	for (size_t i = 0; i < p->ntuples; i++) {
		struct pg_tuple *t = p->tuples[i];
		if (t->nowners)
			qsort(t->owners, t->nowners, sizeof(*t->owners), cmp_towner);
		t->percent = 100.0 * (double)t->used / (double)p->size;
		t->status = status_of(p, t->percent);
		if (t->status > p->status)
			p->status = t->status;
	}
	if (p->ntuples)
		qsort(p->tuples, p->ntuples, sizeof(*p->tuples), cmp_tuple);

	for (size_t i = 0; i < p->scan.nprocs; i++) {
		const struct pg_proc *pr = &p->scan.procs[i];
		struct pg_procinfo *pi = &p->pinfo[i];

		pi->percent = pr->fd_limit > 0 ? 100.0 * (double)pr->fds / (double)pr->fd_limit : 0;
		pi->status = pr->fd_limit > 0 ? status_of(p, pi->percent) : PG_OK;
		if (pi->status != PG_OK || p->only_pid)
			pi->listed = 1;
		if (pi->status > p->status)
			p->status = pi->status;
	}
}

/* Listed processes, most loaded first. */
static size_t listed_procs(struct pg_ports *p, size_t **out)
{
	size_t *idx = pg_cli_calloc(p->scan.nprocs + 1, sizeof(*idx)), n = 0;

	for (size_t i = 0; i < p->scan.nprocs; i++)
		if (p->pinfo[i].listed)
			idx[n++] = i;
	/* Insertion sort: the list is short (owners and processes at risk). */
	for (size_t i = 1; i < n; i++) {
		size_t v = idx[i], j = i;
		while (j > 0 && (p->pinfo[idx[j - 1]].percent < p->pinfo[v].percent ||
				 (p->pinfo[idx[j - 1]].percent == p->pinfo[v].percent &&
				  p->scan.procs[idx[j - 1]].pid > p->scan.procs[v].pid))) {
			idx[j] = idx[j - 1];
			j--;
		}
		idx[j] = v;
	}
	*out = idx;
	return n;
}

/* Percentages are never negative; no libm needed (the Makefile links the
 * tool with jansson alone). */
double pg_ports_round2(double v)
{
	return (double)(long long)(v * 100.0 + 0.5) / 100.0;
}

void pg_ports_tuple_strings(const struct pg_tuple *t, char *local, size_t lsize, char *remote,
			    size_t rsize)
{
	char ip[64];

	pg_socktab_addr_str(t->key.family, t->key.laddr, local, lsize);
	pg_socktab_addr_str(t->key.family, t->key.raddr, ip, sizeof(ip));
	if (t->key.family == 6)
		snprintf(remote, rsize, "[%s]:%u", ip, t->key.rport);
	else
		snprintf(remote, rsize, "%s:%u", ip, t->key.rport);
}

/* States by count, largest first; ties in the kernel's order. */
static size_t sorted_states(const struct pg_tuple *t, int *order)
{
	size_t n = 0;

	for (int s = 1; s < PG_NSTATES; s++)
		if (t->states[s])
			order[n++] = s;
	for (size_t i = 1; i < n; i++) {
		int v = order[i];
		size_t j = i;
		while (j > 0 && t->states[order[j - 1]] < t->states[v]) {
			order[j] = order[j - 1];
			j--;
		}
		order[j] = v;
	}
	return n;
}

static int print_json(struct pg_ports *p)
{
	json_t *root = json_object(), *tuples = json_array(), *procs = json_array();
	size_t *idx, n;
	int r;

	json_object_set_new(root, "range",
			    json_pack("{sIsIsI}", "low", (json_int_t)p->low, "high",
				      (json_int_t)p->high, "size", (json_int_t)p->size));
	json_object_set_new(root, "status", json_string(pg_ports_status_names[p->status]));
	for (size_t i = 0; i < p->ntuples; i++) {
		const struct pg_tuple *t = p->tuples[i];
		json_t *o = json_object(), *states = json_object(), *owners = json_array();
		char local[64], remote[80];
		int order[PG_NSTATES];
		size_t ns = sorted_states(t, order);

		pg_ports_tuple_strings(t, local, sizeof(local), remote, sizeof(remote));
		json_object_set_new(o, "local", json_string(local));
		json_object_set_new(o, "remote", json_string(remote));
		json_object_set_new(o, "used", json_integer(t->used));
		for (size_t k = 0; k < ns; k++)
			json_object_set_new(states, pg_names_tcp_state(order[k]),
					    json_integer(t->states[order[k]]));
		json_object_set_new(o, "states", states);
		json_object_set_new(o, "percent", json_real(pg_ports_round2(t->percent)));
		json_object_set_new(o, "status", json_string(pg_ports_status_names[t->status]));
		for (size_t k = 0; k < t->nowners; k++)
			json_array_append_new(owners,
					      json_pack("{sisssI}", "pid", t->owners[k].pid, "comm",
							comm_of(p, t->owners[k].pid), "sockets",
							(json_int_t)t->owners[k].sockets));
		json_object_set_new(o, "owners", owners);
		json_array_append_new(tuples, o);
	}
	json_object_set_new(root, "tuples", tuples);
	n = listed_procs(p, &idx);
	for (size_t i = 0; i < n; i++) {
		const struct pg_proc *pr = &p->scan.procs[idx[i]];
		const struct pg_procinfo *pi = &p->pinfo[idx[i]];
		json_t *o = json_pack("{sisssI}", "pid", pr->pid, "comm", comm_of(p, pr->pid),
				      "fds", (json_int_t)pr->fds);
		json_object_set_new(o, "fd_limit",
				    pr->fd_limit > 0 ? json_integer(pr->fd_limit) : json_null());
		json_object_set_new(o, "sockets", json_integer(pr->sockets));
		json_object_set_new(o, "percent", json_real(pg_ports_round2(pi->percent)));
		json_object_set_new(o, "status", json_string(pg_ports_status_names[pi->status]));
		json_array_append_new(procs, o);
	}
	free(idx);
	json_object_set_new(root, "processes", procs);
	json_object_set_new(root, "unreadable_pids", json_integer(p->scan.unreadable));
	json_object_set_new(root, "warn", json_real(p->warn));
	json_object_set_new(root, "crit", json_real(p->crit));
	json_object_set_new(root, "source", json_string(p->tab.source));
	r = json_dumpf(root, stdout, JSON_REAL_PRECISION(15));
	putchar('\n');
	json_decref(root);
	return r;
}

/* ---- OpenMetrics ---- */

/* A label value: backslash, double quote and newline escaped. */
static void om_label(const char *key, const char *v, int first)
{
	printf("%s%s=\"", first ? "" : ",", key);
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			printf("\\%c", *v);
		else if (*v == '\n')
			fputs("\\n", stdout);
		else
			putchar(*v);
	}
	putchar('"');
}

static void om_family(const char *name, const char *help)
{
	printf("# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
}

static void om_tuple_labels(const struct pg_tuple *t)
{
	char local[64], remote[96];

	pg_ports_tuple_strings(t, local, sizeof(local), remote, sizeof(remote));
	om_label("local", local, 1);
	om_label("remote", remote, 0);
}

static void om_proc_labels(struct pg_ports *p, size_t i)
{
	char pid[16];

	snprintf(pid, sizeof(pid), "%d", p->scan.procs[i].pid);
	om_label("pid", pid, 1);
	om_label("comm", comm_of(p, p->scan.procs[i].pid), 0);
}

/* Every family's samples together, each series once (tuples and
 * processes are unique by their labels), gauges only: a scrape is a
 * snapshot. */
static void print_openmetrics(struct pg_ports *p)
{
	size_t *idx, nprocs = listed_procs(p, &idx);
	int order[PG_NSTATES];

	om_family(
	    "portguard_status",
	    "Overall status of the ephemeral ports and descriptors: 0 OK, 1 WARNING, 2 CRITICAL.");
	printf("portguard_status %d\n", p->status);
	om_family("portguard_ephemeral_range_low", "Lowest port of net.ipv4.ip_local_port_range.");
	printf("portguard_ephemeral_range_low %ld\n", p->low);
	om_family("portguard_ephemeral_range_high",
		  "Highest port of net.ipv4.ip_local_port_range.");
	printf("portguard_ephemeral_range_high %ld\n", p->high);
	om_family("portguard_ephemeral_range_ports",
		  "Ports in the ephemeral range (high - low + 1).");
	printf("portguard_ephemeral_range_ports %ld\n", p->size);
	om_family("portguard_threshold_ratio", "The WARNING and CRITICAL thresholds, as fractions "
					       "of the range or of a descriptor limit.");
	printf("portguard_threshold_ratio{level=\"warning\"} %g\n", p->warn / 100.0);
	printf("portguard_threshold_ratio{level=\"critical\"} %g\n", p->crit / 100.0);
	om_family("portguard_tuple_ports",
		  "Ephemeral ports that TCP sockets from local to remote hold, by TCP state.");
	for (size_t i = 0; i < p->ntuples; i++) {
		const struct pg_tuple *t = p->tuples[i];
		size_t n = sorted_states(t, order);
		for (size_t k = 0; k < n; k++) {
			printf("portguard_tuple_ports{");
			om_tuple_labels(t);
			om_label("state", pg_names_tcp_state(order[k]), 0);
			printf("} %ld\n", t->states[order[k]]);
		}
	}
	om_family("portguard_tuple_used_ratio",
		  "Fraction of the ephemeral range that the tuple's sockets hold.");
	for (size_t i = 0; i < p->ntuples; i++) {
		printf("portguard_tuple_used_ratio{");
		om_tuple_labels(p->tuples[i]);
		printf("} %g\n", (double)p->tuples[i]->used / (double)(p->size > 0 ? p->size : 1));
	}
	om_family("portguard_tuple_status", "The tuple's status: 0 OK, 1 WARNING, 2 CRITICAL.");
	for (size_t i = 0; i < p->ntuples; i++) {
		printf("portguard_tuple_status{");
		om_tuple_labels(p->tuples[i]);
		printf("} %d\n", p->tuples[i]->status);
	}
	om_family(
	    "portguard_tuple_owner_sockets",
	    "Sockets of the tuple that each process holds (TIME_WAIT sockets have no owner).");
	for (size_t i = 0; i < p->ntuples; i++) {
		const struct pg_tuple *t = p->tuples[i];
		for (size_t k = 0; k < t->nowners; k++) {
			char pid[16];
			printf("portguard_tuple_owner_sockets{");
			om_tuple_labels(t);
			snprintf(pid, sizeof(pid), "%d", t->owners[k].pid);
			om_label("pid", pid, 0);
			om_label("comm", comm_of(p, t->owners[k].pid), 0);
			printf("} %ld\n", t->owners[k].sockets);
		}
	}
	om_family("portguard_process_fds",
		  "Open descriptors of the process (owners, and processes near their limit).");
	for (size_t k = 0; k < nprocs; k++) {
		printf("portguard_process_fds{");
		om_proc_labels(p, idx[k]);
		printf("} %ld\n", (long)p->scan.procs[idx[k]].fds);
	}
	om_family("portguard_process_fd_limit", "The process's RLIMIT_NOFILE soft limit.");
	for (size_t k = 0; k < nprocs; k++) {
		if (p->scan.procs[idx[k]].fd_limit <= 0)
			continue;
		printf("portguard_process_fd_limit{");
		om_proc_labels(p, idx[k]);
		printf("} %ld\n", (long)p->scan.procs[idx[k]].fd_limit);
	}
	om_family("portguard_process_sockets", "Sockets the process holds.");
	for (size_t k = 0; k < nprocs; k++) {
		printf("portguard_process_sockets{");
		om_proc_labels(p, idx[k]);
		printf("} %ld\n", (long)p->scan.procs[idx[k]].sockets);
	}
	om_family("portguard_process_status",
		  "The process's descriptor status: 0 OK, 1 WARNING, 2 CRITICAL.");
	for (size_t k = 0; k < nprocs; k++) {
		printf("portguard_process_status{");
		om_proc_labels(p, idx[k]);
		printf("} %d\n", p->pinfo[idx[k]].status);
	}
	om_family("portguard_unreadable_processes",
		  "Processes whose descriptors could not be read (other users', without root).");
	printf("portguard_unreadable_processes %ld\n", (long)p->scan.unreadable);
	printf("# EOF\n");
	free(idx);
}

void pg_table_add(struct pg_table *tb, char **row)
{
	tb->cells = pg_cli_realloc(tb->cells, (tb->nrows + 1) * tb->ncols * sizeof(char *));
	memcpy(tb->cells + tb->nrows * tb->ncols, row, tb->ncols * sizeof(char *));
	tb->nrows++;
}

/* Characters, not bytes: UTF-8 continuation bytes take no column. */
static size_t columns_of(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += ((unsigned char)*s & 0xc0) != 0x80;
	return n;
}

void pg_table_print(struct pg_table *tb)
{
	size_t w[16] = { 0 };

	for (size_t r = 0; r < tb->nrows; r++)
		for (size_t c = 0; c < tb->ncols; c++) {
			size_t l = columns_of(tb->cells[r * tb->ncols + c]);
			if (l > w[c])
				w[c] = l;
		}
	for (size_t r = 0; r < tb->nrows; r++) {
		for (size_t c = 0; c < tb->ncols; c++) {
			const char *s = tb->cells[r * tb->ncols + c];
			int pad = (int)(w[c] - columns_of(s)), last = c + 1 == tb->ncols;
			if (tb->align[c] == 'r')
				printf("%*s", pad, "");
			fputs(s, stdout);
			if (tb->align[c] != 'r' && !last)
				printf("%*s", pad, "");
			if (!last)
				fputs("  ", stdout);
			free(tb->cells[r * tb->ncols + c]);
		}
		putchar('\n');
	}
	free(tb->cells);
	tb->cells = NULL;
	tb->nrows = 0;
}

void pg_ports_tuple_cells(const struct pg_tuple *t, char **cells)
{
	char local[64], remote[80];

	pg_ports_tuple_strings(t, local, sizeof(local), remote, sizeof(remote));
	cells[0] = pg_cli_strdup(local);
	cells[1] = pg_cli_strdup(remote);
	cells[2] = pg_cli_asprintf("%ld", t->used);
	cells[3] = pg_cli_asprintf("%.2f", pg_ports_round2(t->percent));
	cells[4] = pg_cli_strdup(pg_ports_status_names[t->status]);
}

char *pg_ports_owners_text(struct pg_ports *p, const struct pg_tuple *t)
{
	size_t shown = t->nowners > 3 ? 3 : t->nowners;
	char *s, *n;

	if (!t->nowners)
		return pg_cli_strdup("-");
	s = pg_cli_strdup("");
	for (size_t k = 0; k < shown; k++) {
		n = pg_cli_asprintf("%s%s%d/%s (%ld)", s, k ? ", " : "", t->owners[k].pid,
				    comm_of(p, t->owners[k].pid), t->owners[k].sockets);
		free(s);
		s = n;
	}
	if (t->nowners > shown) {
		n = pg_cli_asprintf("%s and %zu more", s, t->nowners - shown);
		free(s);
		s = n;
	}
	return s;
}

char *pg_ports_states_text(const struct pg_tuple *t)
{
	int order[PG_NSTATES];
	size_t ns = sorted_states(t, order);
	char *s = pg_cli_strdup(""), *n;

	for (size_t k = 0; k < ns; k++) {
		n = pg_cli_asprintf("%s%s%s %ld", s, k ? ", " : "", pg_names_tcp_state(order[k]),
				    t->states[order[k]]);
		free(s);
		s = n;
	}
	return s;
}

/* The verdict line, as a monitoring plugin prints it, and the range's. */
void pg_ports_print_head(struct pg_ports *p)
{
	size_t *idx, n = listed_procs(p, &idx);
	long total = 0;

	printf("portguard ports: %s - ", pg_ports_status_names[p->status]);
	if (p->ntuples) {
		char local[64], remote[80];
		pg_ports_tuple_strings(p->tuples[0], local, sizeof(local), remote, sizeof(remote));
		printf("busiest %s -> %s holds %ld of %ld ephemeral ports (%.2f%%)", local, remote,
		       p->tuples[0]->used, p->size, pg_ports_round2(p->tuples[0]->percent));
	} else {
		printf("no TCP connection holds an ephemeral port%s",
		       p->only_pid ? " in this process" : "");
	}
	if (n) {
		const struct pg_proc *pr = &p->scan.procs[idx[0]];
		if (pr->fd_limit > 0)
			printf("; process %d/%s has %ld of %ld descriptors (%.2f%%)", pr->pid,
			       comm_of(p, pr->pid), pr->fds, pr->fd_limit,
			       pg_ports_round2(p->pinfo[idx[0]].percent));
	}
	free(idx);
	printf("\n\n");
	for (size_t i = 0; i < p->ntuples; i++)
		total += p->tuples[i]->used;
	printf(
	    "Ephemeral ports %ld-%ld (%ld); WARNING at %g%%, CRITICAL at %g%%; %zu TCP socket(s) "
	    "read from %s, %ld in %zu tuple(s).\n",
	    p->low, p->high, p->size, p->warn, p->crit, p->tab.n,
	    strcmp(p->tab.source, "proc") ? "sock_diag" : "/proc/net/tcp{,6}", total, p->ntuples);
}

void pg_ports_print_procs(struct pg_ports *p, size_t max_rows)
{
	static const char proc_align[] = "rlrrrrl";
	struct pg_table tb = { 7, 0, NULL, proc_align };
	size_t *idx, n = listed_procs(p, &idx);

	if (n) {
		char *hdr[] = { pg_cli_strdup("PID"),   pg_cli_strdup("COMMAND"),
				pg_cli_strdup("FDS"),   pg_cli_strdup("LIMIT"),
				pg_cli_strdup("%"),     pg_cli_strdup("SOCKETS"),
				pg_cli_strdup("STATUS") };
		printf(
		    "\nProcesses (owners of the sockets above, and any near RLIMIT_NOFILE):\n\n");
		pg_table_add(&tb, hdr);
		for (size_t i = 0; i < n && i < max_rows; i++) {
			const struct pg_proc *pr = &p->scan.procs[idx[i]];
			const struct pg_procinfo *pi = &p->pinfo[idx[i]];
			char *row[] = { pg_cli_asprintf("%d", pr->pid),
					pg_cli_strdup(comm_of(p, pr->pid)),
					pg_cli_asprintf("%ld", pr->fds),
					pr->fd_limit > 0 ? pg_cli_asprintf("%ld", pr->fd_limit)
							 : pg_cli_strdup("unlimited"),
					pg_cli_asprintf("%.2f", pg_ports_round2(pi->percent)),
					pg_cli_asprintf("%ld", pr->sockets),
					pg_cli_strdup(pg_ports_status_names[pi->status]) };
			pg_table_add(&tb, row);
		}
		pg_table_print(&tb);
		if (n > max_rows)
			printf("... and %zu more process(es); --json lists every one.\n",
			       n - max_rows);
	}
	free(idx);
}

static void print_text(struct pg_ports *p)
{
	static const char tuple_align[] = "llrrlll";
	struct pg_table tb = { 7, 0, NULL, tuple_align };

	pg_ports_print_head(p);
	if (p->ntuples) {
		char *hdr[] = { pg_cli_strdup("LOCAL"),  pg_cli_strdup("REMOTE"),
				pg_cli_strdup("USED"),   pg_cli_strdup("%"),
				pg_cli_strdup("STATUS"), pg_cli_strdup("STATES"),
				pg_cli_strdup("OWNERS") };
		putchar('\n');
		pg_table_add(&tb, hdr);
		for (size_t i = 0; i < p->ntuples && i < PG_TEXT_ROWS; i++) {
			const struct pg_tuple *t = p->tuples[i];
			char *row[7];
			pg_ports_tuple_cells(t, row);
			row[5] = pg_ports_states_text(t);
			row[6] = pg_ports_owners_text(p, t);
			pg_table_add(&tb, row);
		}
		pg_table_print(&tb);
		if (p->ntuples > PG_TEXT_ROWS) {
			long rest = 0;
			for (size_t i = PG_TEXT_ROWS; i < p->ntuples; i++)
				rest += p->tuples[i]->used;
			printf("... and %zu more tuple(s) holding %ld port(s); --json lists every "
			       "one.\n",
			       p->ntuples - PG_TEXT_ROWS, rest);
		}
	}
	pg_ports_print_procs(p, PG_TEXT_ROWS);
	if (p->any_time_wait && !p->only_pid)
		printf(
		    "\nTIME_WAIT sockets have no owner: the kernel keeps them for about 60 s after "
		    "the side that closed first (active close) let go of them.\n");
}

int pg_ports_take(struct pg_ports *p)
{
	int r;

	if (read_range(p) < 0 || read_sockets(p) < 0)
		return 3;
	r = pg_procscan_run(&p->scan, p->only_pid, (int)getpid());
	if (r < 0) {
		if (r == -ESRCH)
			pg_cli_warn("no process with pid %d", p->only_pid);
		else
			pg_cli_warn("cannot read the descriptors of pid %d: %s", p->only_pid,
				    strerror(-r));
		return 3;
	}
	p->pinfo = pg_cli_calloc(p->scan.nprocs + 1, sizeof(*p->pinfo));
	count(p);
	return 0;
}

void pg_ports_release(struct pg_ports *p)
{
	struct pg_tuple *t, *tmp;

	HASH_ITER(hh, p->hash, t, tmp)
	{
		HASH_DEL(p->hash, t);
		free(t->owners);
		free(t);
	}
	free(p->tuples);
	free(p->pinfo);
	pg_procscan_free(&p->scan);
	pg_socktab_free(&p->tab);
	p->hash = NULL;
	p->tuples = NULL;
	p->pinfo = NULL;
	p->ntuples = 0;
	p->status = PG_OK;
	p->any_time_wait = 0;
}

enum { OPT_JSON = 256, OPT_OPENMETRICS, OPT_WATCH, OPT_WARN, OPT_CRIT, OPT_PID };

static const struct option longopts[] = {
	{ "json", no_argument, NULL, OPT_JSON },
	{ "openmetrics", no_argument, NULL, OPT_OPENMETRICS },
	{ "watch", optional_argument, NULL, OPT_WATCH },
	{ "warn", required_argument, NULL, OPT_WARN },
	{ "crit", required_argument, NULL, OPT_CRIT },
	{ "pid", required_argument, NULL, OPT_PID },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* "--watch 2" as "--watch=2": getopt takes an optional argument only in
 * the second form, and the usage shows the first. A word after --watch
 * that looks like a number is its argument (and checked as one); any
 * other word stays a word of its own (and is refused). The joined words
 * are the caller's to free: *joined. */
static int number_like(const char *s)
{
	if (*s == '-' || *s == '+')
		s++;
	return (*s >= '0' && *s <= '9') || (*s == '.' && s[1] >= '0' && s[1] <= '9') ||
	       strncasecmp(s, "nan", 3) == 0 || strncasecmp(s, "inf", 3) == 0;
}

static char **join_watch_seconds(int argc, char **argv, int *out_argc, char ***joined)
{
	char **v = pg_cli_calloc((size_t)argc + 1, sizeof(*v));
	int n = 0, nj = 0;

	*joined = pg_cli_calloc((size_t)argc + 1, sizeof(**joined));
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			while (i < argc)
				v[n++] = argv[i++];
			break;
		}
		if (strcmp(argv[i], "--watch") == 0 && i + 1 < argc && number_like(argv[i + 1])) {
			v[n++] = (*joined)[nj++] = pg_cli_asprintf("--watch=%s", argv[i + 1]);
			i++;
			continue;
		}
		v[n++] = argv[i];
	}
	*out_argc = n;
	return v;
}

static int ports_main(int argc, char **argv);

int pg_cmd_ports(int argc, char **argv)
{
	char **joined, **v = join_watch_seconds(argc, argv, &argc, &joined);
	int r = ports_main(argc, v);

	for (char **j = joined; *j; j++)
		free(*j);
	free(joined);
	free(v);
	return r;
}

static int ports_main(int argc, char **argv)
{
	struct pg_ports p = { .warn = 60, .crit = 80 };
	double interval = 0;
	long pid;
	int c, r;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_JSON: p.json = 1; break;
		case OPT_OPENMETRICS: p.openmetrics = 1; break;
		case OPT_WATCH:
			interval = 1;
			if (optarg && pg_cli_parse_double(optarg, 0.1, 3600, &interval))
				return pg_cli_usage_error(
				    usage, "--watch '%s': not a number of seconds from 0.1 to 3600",
				    optarg);
			break;
		case OPT_WARN:
		case OPT_CRIT:
			if (pg_cli_parse_double(optarg, 0, 100, c == OPT_WARN ? &p.warn : &p.crit))
				return pg_cli_usage_error(
				    usage, "%s '%s': not a percentage from 0 to 100",
				    c == OPT_WARN ? "--warn" : "--crit", optarg);
			break;
		case OPT_PID:
			if (pg_cli_parse_long(optarg, 1, INT32_MAX, &pid))
				return pg_cli_usage_error(usage, "--pid '%s': not a process id",
							  optarg);
			p.only_pid = (int)pid;
			break;
		case 'h': fputs(usage, stdout); return 0;
		case ':':
			return pg_cli_usage_error(usage, "option '%s' needs an argument",
						  argv[optind - 1]);
		default: return pg_cli_usage_error(usage, "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return pg_cli_usage_error(usage, "unexpected argument '%s'", argv[optind]);
	if (p.json + p.openmetrics + (interval > 0) > 1)
		return pg_cli_usage_error(usage, "--json, --openmetrics and --watch: one of them");
	if (p.warn > p.crit)
		return pg_cli_usage_error(usage, "--warn %g is above --crit %g", p.warn, p.crit);

	if (interval > 0)
		return pg_ports_watch(&p, interval);
	r = pg_ports_take(&p);
	if (r)
		return r;
	if (p.json)
		print_json(&p);
	else if (p.openmetrics)
		print_openmetrics(&p);
	else
		print_text(&p);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		pg_cli_warn("cannot write the output: %s", strerror(errno));
		return 3;
	}
	if (p.scan.unreadable)
		pg_cli_warn(
		    "could not read the descriptors of %ld process(es) of other users: their "
		    "sockets show no owner (run as root to see them)",
		    p.scan.unreadable);
	r = p.openmetrics ? 0 : p.status;
	pg_ports_release(&p);
	/* Metrics printed: the status is one of them (a textfile collector's
	 * "ports --openmetrics > f.tmp && mv f.tmp f.prom" keeps updating). */
	return r;
}
