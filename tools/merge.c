#include "tools/merge.h"

#include "tools/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* One process as the library wrote it: reports of one pid in one file are
 * one process (a reused pid gets a file PATH.PID.N of its own), so the key
 * is (file, pid). A merged object (with "pids") is its own instance. */
struct pg_minst {
	struct {
		size_t file;
		long long pid; /* -line for a merged object */
	} key;
	json_t *report;
	int is_exit;
	long pid; /* -1 for a merged object */
	UT_hash_handle hh;
};

json_int_t pg_merge_int(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);

	return json_is_integer(v) ? json_integer_value(v) : 0;
}

const char *pg_merge_str(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

void pg_merge_init(struct pg_merge *m)
{
	memset(m, 0, sizeof(*m));
	m->events = json_object();
	m->totals = json_object();
	m->policy = json_object();
	m->double_closes = json_array();
	m->destinations = json_array();
	m->exes = json_array();
}

/* Checks the parts of a report that the merge relies on; NULL or a message
 * naming the offending member. */
static const char *check_frames(const json_t *frames, const char *what, char *msg, size_t size)
{
	size_t i;
	json_t *f;

	if (!frames)
		return NULL;
	if (!json_is_array(frames)) {
		snprintf(msg, size, "%s is not an array", what);
		return msg;
	}
	json_array_foreach(frames, i, f)
	{
		if (!json_is_object(f)) {
			snprintf(msg, size, "%s[%zu] is not an object", what, i);
			return msg;
		}
	}
	return NULL;
}

static const char *check_report(const json_t *r, char *msg, size_t size)
{
	static const char *const counts[] = { "open", "leaked", "created" };
	const json_t *sites = json_object_get(r, "sites"), *s, *v;
	char what[64];
	size_t i, k;

	v = json_object_get(r, "totals");
	if (v && !json_is_object(v))
		return "\"totals\" is not an object";
	v = json_object_get(r, "policy");
	if (v && !json_is_object(v))
		return "\"policy\" is not an object";
	v = json_object_get(r, "destinations");
	if (v && !json_is_array(v))
		return "\"destinations\" is not an array";
	v = json_object_get(r, "double_closes");
	if (v && !json_is_array(v))
		return "\"double_closes\" is not an array";
	if (!sites)
		return NULL;
	if (!json_is_array(sites))
		return "\"sites\" is not an array";
	json_array_foreach(sites, i, s)
	{
		if (!json_is_object(s)) {
			snprintf(msg, size, "sites[%zu] is not an object", i);
			return msg;
		}
		for (k = 0; k < sizeof(counts) / sizeof(counts[0]); k++) {
			v = json_object_get(s, counts[k]);
			if (v && !json_is_integer(v)) {
				snprintf(msg, size, "sites[%zu].%s is not an integer", i,
					 counts[k]);
				return msg;
			}
		}
		snprintf(what, sizeof(what), "sites[%zu].frames", i);
		if (check_frames(json_object_get(s, "frames"), what, msg, size))
			return msg;
		snprintf(what, sizeof(what), "sites[%zu].sockets", i);
		if (check_frames(json_object_get(s, "sockets"), what, msg, size))
			return msg;
	}
	return NULL;
}

static void add_inst(struct pg_merge *m, size_t file, long long key, long pid, json_t *r,
		     int is_exit)
{
	struct pg_minst probe, *in;

	memset(&probe, 0, sizeof(probe));
	probe.key.file = file;
	probe.key.pid = key;
	HASH_FIND(hh, m->insts, &probe.key, sizeof(probe.key), in);
	if (in) {
		/* The exit report, else the latest signal report. */
		if (in->is_exit && !is_exit) {
			json_decref(r);
			return;
		}
		json_decref(in->report);
		in->report = r;
		in->is_exit = is_exit;
		return;
	}
	in = pg_cli_calloc(1, sizeof(*in));
	in->key = probe.key;
	in->report = r;
	in->is_exit = is_exit;
	in->pid = pid;
	HASH_ADD(hh, m->insts, key, sizeof(in->key), in);
}

static int bad(const char *path, size_t line, const char *fmt, const char *what)
{
	fprintf(stderr, "%s: %s:%zu: ", pg_cli_prog, path, line);
	fprintf(stderr, fmt, what);
	fputc('\n', stderr);
	return -1;
}

/* One line: a report, an event, or a merged report. */
static int load_line(struct pg_merge *m, size_t file, const char *path, size_t lineno, char *line,
		     size_t len)
{
	const char *reason, *why;
	json_error_t err;
	json_t *r, *v;
	char msg[256];

	r = json_loadb(line, len, 0, &err);
	if (!r) {
		/* The library's text format is the usual mistake. */
		if (strncmp(line, "==", 2) == 0 || strncmp(line, "SUMMARY:", 8) == 0 ||
		    strncmp(line, "portguard:", 10) == 0)
			return bad(path, lineno, "%s",
				   "a text report; this reads JSON ones (format=json, portguard "
				   "run --json)");
		snprintf(msg, sizeof(msg), "%s (column %d)", err.text, err.column);
		return bad(path, lineno, "not JSON: %s", msg);
	}
	if (!json_is_object(r)) {
		json_decref(r);
		return bad(path, lineno, "%s", "not a JSON object");
	}
	v = json_object_get(r, "portguard");
	if (!json_is_integer(v)) {
		json_decref(r);
		return bad(path, lineno, "%s", "not a portguard report (no \"portguard\": 1)");
	}
	if (json_integer_value(v) != 1) {
		snprintf(msg, sizeof(msg), "%lld", (long long)json_integer_value(v));
		json_decref(r);
		return bad(path, lineno, "report schema version %s; this tool reads version 1",
			   msg);
	}
	v = json_object_get(r, "event");
	if (v) {
		const char *kind = json_string_value(v);
		if (!kind) {
			json_decref(r);
			return bad(path, lineno, "%s", "\"event\" is not a string");
		}
		json_object_set_new(m->events, kind,
				    json_integer(pg_merge_int(m->events, kind) + 1));
		json_decref(r);
		return 0;
	}
	why = check_report(r, msg, sizeof(msg));
	if (why) {
		json_decref(r);
		return bad(path, lineno, "%s", why);
	}
	reason = pg_merge_str(r, "reason");
	if (!reason) {
		json_decref(r);
		return bad(path, lineno, "%s",
			   "neither a report (\"reason\") nor an event (\"event\")");
	}
	m->nreports++;
	if (json_is_array(json_object_get(r, "pids"))) {
		/* Output of `portguard report --json`: already one per pid. */
		add_inst(m, file, -(long long)lineno, -1, r, strcmp(reason, "exit") == 0);
		return 0;
	}
	if (strcmp(reason, "exit") && strcmp(reason, "signal") && strcmp(reason, "dump")) {
		bad(path, lineno, "unknown \"reason\": \"%s\"", reason);
		json_decref(r);
		return -1;
	}
	v = json_object_get(r, "pid");
	if (!json_is_integer(v) || json_integer_value(v) <= 0) {
		json_decref(r);
		return bad(path, lineno, "%s", "report without a \"pid\"");
	}
	add_inst(m, file, json_integer_value(v), (long)json_integer_value(v), r,
		 strcmp(reason, "exit") == 0);
	return 0;
}

/* One line of f into *buf (NUL-terminated, newline kept), at most max
 * bytes: 1, 0 at end of file, -1 for a longer line (the rest of the file is
 * not read: a report line is never that long, and memory stays bounded). */
static int read_line(FILE *f, char **buf, size_t *cap, size_t max, size_t *len)
{
	*len = 0;
	for (;;) {
		size_t got;

		if (*cap - *len < 2) {
			if (*cap >= max + 2)
				return -1;
			*cap = *cap ? *cap * 2 : 65536;
			if (*cap > max + 2)
				*cap = max + 2;
			*buf = pg_cli_realloc(*buf, *cap);
		}
		if (!fgets(*buf + *len, (int)(*cap - *len < INT_MAX ? *cap - *len : INT_MAX), f))
			return *len > 0;
		got = strlen(*buf + *len);
		*len += got;
		if (*len && (*buf)[*len - 1] == '\n')
			return 1;
		if (got == 0) /* a NUL byte: not a report line; let the parser say */
			return 1;
	}
}

/* Opens a report file: a regular file, a pipe or FIFO (portguard report
 * <(...)), never a device or directory, and never a blocking open (a FIFO
 * without a writer reads as empty). */
static FILE *open_report(const char *path)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY), fl;
	FILE *f;

	if (fd < 0) {
		pg_cli_warn("cannot read %s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) < 0 || (!S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode))) {
		pg_cli_warn("cannot read %s: %s", path,
			    S_ISDIR(st.st_mode) ? "it is a directory"
						: "not a regular file or pipe");
		close(fd);
		return NULL;
	}
	fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
	f = fdopen(fd, "r");
	if (!f) {
		pg_cli_warn("cannot read %s: %s", path, strerror(errno));
		close(fd);
	}
	return f;
}

int pg_merge_load(struct pg_merge *m, const char *path)
{
	char *line = NULL;
	size_t cap = 0, lineno = 0, len;
	struct stat st;
	int r = 0, got;
	FILE *f;

	if (strcmp(path, "-") == 0) {
		f = stdin;
	} else {
		f = open_report(path);
		if (!f)
			return -1;
	}
	/* The same file named twice (a glob and a name) counts once. */
	if (f != stdin && fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode)) {
		for (size_t i = 0; i < m->nfiles; i++)
			if (m->files[i].dev == st.st_dev && m->files[i].ino == st.st_ino) {
				fclose(f);
				return 0;
			}
		m->files = pg_cli_realloc(m->files, (m->nfiles + 1) * sizeof(*m->files));
		m->files[m->nfiles].dev = st.st_dev;
		m->files[m->nfiles].ino = st.st_ino;
	} else {
		m->files = pg_cli_realloc(m->files, (m->nfiles + 1) * sizeof(*m->files));
		m->files[m->nfiles].dev = m->files[m->nfiles].ino = ~0ull;
	}
	m->files[m->nfiles].path = pg_cli_strdup(path);
	m->nfiles++;
	while ((got = read_line(f, &line, &cap, PG_MERGE_MAX_LINE, &len)) > 0) {
		lineno++;
		while (len && (line[len - 1] == '\n' || line[len - 1] == '\r' ||
			       line[len - 1] == ' ' || line[len - 1] == '\t'))
			len--;
		if (!len || strspn(line, " \t") == len)
			continue;
		r = load_line(m, m->nfiles - 1, path, lineno, line, len);
		if (r)
			break;
	}
	if (!r && got < 0) {
		pg_cli_warn("%s:%zu: a line longer than %d MiB; not a report", path, lineno + 1,
			    PG_MERGE_MAX_LINE >> 20);
		r = -1;
	}
	if (!r && ferror(f)) {
		pg_cli_warn("cannot read %s: %s", path, strerror(errno));
		r = -1;
	}
	free(line);
	if (f != stdin)
		fclose(f);
	return r;
}

/* The site key: per frame "module\x1foffset\x1e", offsets normalised to
 * lower-case hex without leading zeros; a frame without module falls back
 * to its absolute address, which then only merges within one process. A
 * Python frame is "python:file\x1ffunction\x1fline\x1e". */
static char *site_key(const json_t *frames, size_t *len)
{
	size_t cap = 64, n = 0, i;
	char *k = pg_cli_alloc(cap);
	json_t *f;

	json_array_foreach(frames, i, f)
	{
		const char *mod = pg_merge_str(f, "module"), *off = pg_merge_str(f, "offset");
		const char *addr = pg_merge_str(f, "addr");
		char num[32];
		size_t need;

		if (pg_merge_str(f, "language")) {
			/* A frame of interpreted code: its file, function and line
			 * (SPEC section 6), the same in every process. */
			const char *file = pg_merge_str(f, "file"),
				   *fn = pg_merge_str(f, "function");
			char *py = pg_cli_asprintf(
			    "%s:%s\x1f%s\x1f%lld", pg_merge_str(f, "language"), file ? file : "",
			    fn ? fn : "", (long long)pg_merge_int(f, "line"));
			need = strlen(py) + 2;
			while (n + need > cap) {
				cap *= 2;
				k = pg_cli_realloc(k, cap);
			}
			n += (size_t)sprintf(k + n, "%s\x1e", py);
			free(py);
			continue;
		}
		if (mod && off) {
			snprintf(num, sizeof(num), "%llx", strtoull(off, NULL, 16));
		} else {
			mod = "";
			snprintf(num, sizeof(num), "@%llx", addr ? strtoull(addr, NULL, 16) : 0ull);
		}
		need = strlen(mod) + strlen(num) + 3;
		while (n + need > cap) {
			cap *= 2;
			k = pg_cli_realloc(k, cap);
		}
		n += (size_t)sprintf(k + n, "%s\x1f%s\x1e", mod, num);
	}
	*len = n;
	return k;
}

struct pg_msite *pg_merge_find(struct pg_merge *m, const char *key, size_t keylen)
{
	struct pg_msite *s;

	HASH_FIND(hh, m->sites, key, keylen, s);
	return s;
}

static void site_add_pid(struct pg_msite *s, long pid)
{
	for (size_t i = 0; i < s->npids; i++)
		if (s->pids[i] == pid)
			return;
	s->pids = pg_cli_realloc(s->pids, (s->npids + 1) * sizeof(*s->pids));
	s->pids[s->npids++] = pid;
}

/* {"pid": PID, ...the object's own keys} (its own "pid" wins). */
static json_t *with_pid(const json_t *o, long pid)
{
	json_t *n = json_object();

	if (pid > 0)
		json_object_set_new(n, "pid", json_integer(pid));
	json_object_update(n, (json_t *)o);
	return n;
}

static void merge_site(struct pg_merge *m, const struct pg_minst *in, const json_t *site)
{
	const json_t *frames = json_object_get(site, "frames");
	json_t *empty = NULL, *sock, *sp;
	struct pg_msite *s;
	size_t keylen, i;
	char *key;

	if (!frames)
		frames = empty = json_array();
	key = site_key(frames, &keylen);
	s = pg_merge_find(m, key, keylen);
	if (!s) {
		s = pg_cli_calloc(1, sizeof(*s));
		s->key = key;
		s->keylen = keylen;
		s->frames = json_deep_copy(frames);
		s->sockets = json_array();
		s->order = m->nsites++;
		HASH_ADD_KEYPTR(hh, m->sites, s->key, s->keylen, s);
	} else {
		free(key);
	}
	json_decref(empty);
	s->open += pg_merge_int(site, "open");
	s->leaked += pg_merge_int(site, "leaked");
	s->created += pg_merge_int(site, "created");
	s->finalized += pg_merge_int(site, "finalized");
	json_array_foreach(json_object_get(site, "sockets"), i, sock)
	    json_array_append_new(s->sockets, with_pid(sock, in->pid));
	if (in->pid > 0) {
		site_add_pid(s, in->pid);
	} else {
		json_array_foreach(json_object_get(site, "pids"), i, sp) if (json_is_integer(sp))
		    site_add_pid(s, (long)json_integer_value(sp));
	}
}

/* Sums every integer member of src into dst; keeps the first string. */
static void sum_object(json_t *dst, const json_t *src)
{
	const char *k;
	json_t *v;

	json_object_foreach((json_t *)src, k, v)
	{
		if (json_is_integer(v))
			json_object_set_new(
			    dst, k, json_integer(pg_merge_int(dst, k) + json_integer_value(v)));
		else if (!json_object_get(dst, k))
			json_object_set(dst, k, v);
	}
}

static int forecast_rank(const char *f)
{
	if (!f)
		return -1;
	if (strcmp(f, "exhaustion") == 0)
		return 2;
	if (strcmp(f, "warning") == 0)
		return 1;
	return 0;
}

/* Per destination: connects and active closes add up; a peak rate does not
 * (the processes' peaks need not coincide), so the highest one is kept, as
 * is the gravest forecast. */
static void merge_destination(struct pg_merge *m, const json_t *d)
{
	const char *remote = pg_merge_str(d, "remote");
	const char *k;
	json_t *have = NULL, *x, *v;
	size_t i;

	json_array_foreach(m->destinations, i,
			   x) if (remote && pg_merge_str(x, "remote") &&
				  strcmp(pg_merge_str(x, "remote"), remote) == 0) have = x;
	if (!have) {
		json_array_append_new(m->destinations, json_deep_copy(d));
		return;
	}
	json_object_foreach((json_t *)d, k, v)
	{
		if (strcmp(k, "peak_per_sec") == 0 && json_is_integer(v)) {
			if (json_integer_value(v) > pg_merge_int(have, k))
				json_object_set(have, k, v);
		} else if (strcmp(k, "forecast") == 0) {
			if (forecast_rank(json_string_value(v)) >
			    forecast_rank(pg_merge_str(have, k)))
				json_object_set(have, k, v);
		} else if (json_is_integer(v)) {
			json_object_set_new(
			    have, k, json_integer(pg_merge_int(have, k) + json_integer_value(v)));
		} else if (!json_object_get(have, k)) {
			json_object_set(have, k, v);
		}
	}
}

static void add_pid(struct pg_merge *m, long pid)
{
	m->pids = pg_cli_realloc(m->pids, (m->npids + 1) * sizeof(*m->pids));
	m->pids[m->npids++] = pid;
}

static int cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;

	return (x > y) - (x < y);
}

void pg_merge_build(struct pg_merge *m)
{
	struct pg_minst *in;
	json_t *v, *x;
	size_t i, k;

	for (in = m->insts; in; in = in->hh.next) {
		const json_t *r = in->report;
		const char *exe = pg_merge_str(r, "exe"), *reason = pg_merge_str(r, "reason");
		int seen = 0;

		if (in->pid < 0) {
			/* A merged report says how many of each it was made of. */
			const json_t *n = json_object_get(r, "reports");
			m->nexit += (size_t)pg_merge_int(n, "exit");
			m->nsignal += (size_t)pg_merge_int(n, "signal");
		} else if (strcmp(reason, "exit") == 0) {
			m->nexit++;
		} else {
			m->nsignal++;
		}
		if (in->pid > 0)
			add_pid(m, in->pid);
		json_array_foreach(json_object_get(r, "pids"), i, v) if (json_is_integer(v))
		    add_pid(m, (long)json_integer_value(v));
		json_array_foreach(m->exes, i, x) seen |=
		    exe && strcmp(json_string_value(x), exe) == 0;
		if (exe && !seen)
			json_array_append_new(m->exes, json_string(exe));
		json_array_foreach(json_object_get(r, "exes"), i, v)
		{
			seen = 0;
			json_array_foreach(m->exes, k, x) seen |=
			    json_is_string(v) &&
			    strcmp(json_string_value(x), json_string_value(v)) == 0;
			if (json_is_string(v) && !seen)
				json_array_append(m->exes, v);
		}
		if (json_is_object(json_object_get(r, "totals")))
			sum_object(m->totals, json_object_get(r, "totals"));
		if (json_is_object(json_object_get(r, "policy")))
			sum_object(m->policy, json_object_get(r, "policy"));
		if (json_is_object(json_object_get(r, "events")))
			sum_object(m->events, json_object_get(r, "events"));
		json_array_foreach(json_object_get(r, "sites"), i, v) merge_site(m, in, v);
		json_array_foreach(json_object_get(r, "double_closes"), i, v)
		    json_array_append_new(m->double_closes, with_pid(v, in->pid));
		json_array_foreach(json_object_get(r, "destinations"), i, v)
		    merge_destination(m, v);
	}
	if (m->npids)
		qsort(m->pids, m->npids, sizeof(*m->pids), cmp_long);
	for (i = 0, k = 0; i < m->npids; i++)
		if (!k || m->pids[k - 1] != m->pids[i])
			m->pids[k++] = m->pids[i];
	m->npids = k;
}

/* A path or program name need not be UTF-8; JSON strings must be. */
static json_t *string_or(const char *s, const char *fallback)
{
	json_t *v = s ? json_string(s) : NULL;

	return v ? v : json_string(fallback);
}

json_t *pg_merge_processes(const struct pg_merge *m)
{
	static const char *const keys[] = { "created", "open",      "leaked",
					    "closed",  "finalized", "double_closes" };
	json_t *a = json_array();

	for (const struct pg_minst *in = m->insts; in; in = in->hh.next) {
		const json_t *r = in->report, *t = json_object_get(r, "totals");
		json_t *o = json_object(), *tot = json_object();

		if (in->pid > 0) {
			json_object_set_new(o, "pid", json_integer(in->pid));
		} else {
			/* A merged report: its processes and programs. */
			json_object_set(o, "pids", json_object_get(r, "pids"));
			if (json_is_array(json_object_get(r, "exes")))
				json_object_set(o, "exes", json_object_get(r, "exes"));
		}
		json_object_set_new(o, "exe", string_or(pg_merge_str(r, "exe"), "?"));
		json_object_set_new(o, "reason", string_or(pg_merge_str(r, "reason"), "?"));
		if (in->key.file < m->nfiles)
			json_object_set_new(o, "file",
					    string_or(m->files[in->key.file].path, "(not UTF-8)"));
		for (size_t k = 0; k < sizeof(keys) / sizeof(*keys); k++)
			json_object_set_new(tot, keys[k], json_integer(pg_merge_int(t, keys[k])));
		json_object_set_new(o, "totals", tot);
		json_array_append_new(a, o);
	}
	return a;
}

static int cmp_site(const void *a, const void *b)
{
	const struct pg_msite *x = *(struct pg_msite *const *)a, *y = *(struct pg_msite *const *)b;

	if (x->leaked != y->leaked)
		return x->leaked > y->leaked ? -1 : 1;
	if (x->open != y->open)
		return x->open > y->open ? -1 : 1;
	if (x->created != y->created)
		return x->created > y->created ? -1 : 1;
	return (x->order > y->order) - (x->order < y->order);
}

struct pg_msite **pg_merge_sorted(struct pg_merge *m)
{
	struct pg_msite **v = pg_cli_calloc(m->nsites + 1, sizeof(*v)), *s;
	size_t n = 0;

	for (s = m->sites; s; s = s->hh.next)
		v[n++] = s;
	qsort(v, n, sizeof(*v), cmp_site);
	for (size_t i = 0; i < n; i++)
		if (v[i]->npids)
			qsort(v[i]->pids, v[i]->npids, sizeof(long), cmp_long);
	return v;
}

void pg_merge_free(struct pg_merge *m)
{
	struct pg_minst *in, *itmp;
	struct pg_msite *s, *stmp;

	HASH_ITER(hh, m->insts, in, itmp)
	{
		HASH_DEL(m->insts, in);
		json_decref(in->report);
		free(in);
	}
	HASH_ITER(hh, m->sites, s, stmp)
	{
		HASH_DEL(m->sites, s);
		free(s->key);
		free(s->pids);
		json_decref(s->frames);
		json_decref(s->sockets);
		free(s);
	}
	json_decref(m->events);
	json_decref(m->totals);
	json_decref(m->policy);
	json_decref(m->double_closes);
	json_decref(m->destinations);
	json_decref(m->exes);
	free(m->pids);
	for (size_t i = 0; i < m->nfiles; i++)
		free(m->files[i].path);
	free(m->files);
	memset(m, 0, sizeof(*m));
}
