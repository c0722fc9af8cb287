/* portguard report: merge JSON reports by call site, print them as text (a
 * LeakSanitizer-like report), JSON (one report object, "pids" for "pid") or
 * folded stacks, or show what grew since an earlier dump (--diff). */
#include "tools/cli.h"
#include "tools/cmd.h"
#include "tools/html.h"
#include "tools/merge.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: portguard report [--text | --json | --folded | --html] [--diff OLD]... FILE...\n"
    "\n"
    "Reads JSON reports (format=json; one object per line, '-' for stdin) and\n"
    "merges them by call site (the frames' module+offset pairs). Of each process\n"
    "(a pid within one file) it takes the exit report, else its latest signal\n"
    "report; policy event lines are counted apart.\n"
    "\n"
    "  --text        a LeakSanitizer-like report, largest sites first (default)\n"
    "  --json        one report object of the library's schema, with \"pids\"\n"
    "  --folded      'frame;frame;frame count' per site, outermost frame first,\n"
    "                count = leaked sockets (for flamegraph.pl and the like)\n"
    "  --html        one self-contained HTML page (nothing fetched; open it from\n"
    "                a file): a flame graph of the leaked sockets (click to\n"
    "                zoom), the sites' table (sortable), double closes,\n"
    "                destinations and the processes merged\n"
    "  --diff OLD    compare OLD (earlier reports, merged the same way) with the\n"
    "                FILEs: the sites whose open sockets grew, largest growth\n"
    "                first; with --folded the count is the growth\n"
    "  -h, --help    this text\n"
    "\n"
    "Exit status: 0 done (whether or not anything leaked); 2 bad arguments, or\n"
    "a file that cannot be read or holds a line that is not a portguard report\n"
    "(the message names FILE:LINE).\n";

#define PG_TEXT_SOCKETS 20

enum { FMT_TEXT, FMT_JSON, FMT_FOLDED, FMT_HTML };

static void print_frames(const json_t *frames, const char *indent)
{
	size_t i;
	json_t *f;

	if (!frames || json_array_size(frames) == 0) {
		printf("%s<no stack>\n", indent);
		return;
	}
	json_array_foreach(frames, i, f)
	{
		const char *fn = pg_merge_str(f, "function"), *file = pg_merge_str(f, "file");
		const char *mod = pg_merge_str(f, "module"), *off = pg_merge_str(f, "offset");
		const char *addr = pg_merge_str(f, "addr");
		json_int_t line = pg_merge_int(f, "line");

		if (pg_merge_str(f, "language")) {
			printf("%s#%zu in %s", indent, i, fn ? fn : "?");
			if (file)
				printf(" %s", file);
			if (file && line)
				printf(":%lld", (long long)line);
			putchar('\n');
			continue;
		}
		printf("%s#%zu %s", indent, i, addr ? addr : "0x0");
		if (fn)
			printf(" in %s", fn);
		if (file && line)
			printf(" %s:%lld", file, (long long)line);
		else if (mod)
			printf(" (%s+%s)", mod, off ? off : "0x0");
		putchar('\n');
	}
}

static void print_socket(const json_t *s)
{
	const char *proto = pg_merge_str(s, "protocol"), *local = pg_merge_str(s, "local");
	const char *remote = pg_merge_str(s, "remote"), *state = pg_merge_str(s, "state");
	const json_t *age = json_object_get(s, "age_ms"), *leaked = json_object_get(s, "leaked");
	json_int_t handles = pg_merge_int(s, "handles");

	if (pg_merge_str(s, "closed_by")) {
		/* SPEC section 2: closed, never by the program. */
		printf(
		    "  pid %lld: closed by the interpreter's finalizer, never by the program: %s",
		    (long long)pg_merge_int(s, "pid"),
		    proto                       ? proto
		    : pg_merge_str(s, "family") ? pg_merge_str(s, "family")
						: "?");
		if (json_is_integer(age))
			printf(", open %lld ms", (long long)json_integer_value(age));
		puts(json_is_false(leaked) ? " [not counted as leaked]" : "");
		return;
	}
	printf("  pid %lld fd %lld: %s", (long long)pg_merge_int(s, "pid"),
	       (long long)pg_merge_int(s, "fd"),
	       proto                       ? proto
	       : pg_merge_str(s, "family") ? pg_merge_str(s, "family")
					   : "?");
	printf(" %s", local ? local : "(unbound)");
	if (remote)
		printf(" -> %s", remote);
	if (json_is_true(json_object_get(s, "listening")))
		printf(" LISTEN");
	else if (state)
		printf(" %s", state);
	if (json_is_integer(age))
		printf(", age %lld ms", (long long)json_integer_value(age));
	if (handles > 1)
		printf(", %lld descriptors", (long long)handles);
	if (json_is_true(json_object_get(s, "inherited")))
		printf(" [inherited]");
	else if (json_is_true(json_object_get(s, "untracked")))
		printf(" [untracked]");
	else if (json_is_true(json_object_get(s, "suppressed")))
		printf(" [suppressed]");
	else if (json_is_false(leaked))
		printf(" [not counted as leaked]");
	putchar('\n');
}

static int sock_leaked(const json_t *s)
{
	const json_t *l = json_object_get(s, "leaked");

	if (l)
		return json_is_true(l);
	return !json_is_true(json_object_get(s, "inherited")) &&
	       !json_is_true(json_object_get(s, "untracked")) &&
	       !json_is_true(json_object_get(s, "suppressed"));
}

/* Leaked sockets first: the reader came for them. */
static void print_sockets(const json_t *socks)
{
	size_t i, shown = 0, total = json_array_size(socks);
	json_t *s;

	for (int pass = 0; pass < 2; pass++)
		json_array_foreach(socks, i, s)
		{
			if (sock_leaked(s) != (pass == 0))
				continue;
			if (shown++ < PG_TEXT_SOCKETS)
				print_socket(s);
		}
	if (total > PG_TEXT_SOCKETS)
		printf("  ... and %zu more (the JSON output lists every one)\n",
		       total - PG_TEXT_SOCKETS);
}

static void print_pids(const long *pids, size_t n)
{
	for (size_t i = 0; i < n && i < 8; i++)
		printf("%s%ld", i ? "," : "", pids[i]);
	if (n > 8)
		printf(",...(%zu in all)", n);
}

static void print_text(struct pg_merge *m)
{
	struct pg_msite **v = pg_merge_sorted(m);
	json_int_t leaked = 0, sites = 0;
	const json_t *t = m->totals;
	const char *k;
	size_t i;
	json_t *x;
	int first;

	if (m->npids) {
		printf("==");
		print_pids(m->pids, m->npids);
	}
	printf("==portguard: merged report of %zu process(es)", m->npids);
	if (json_array_size(m->exes) == 1)
		printf(" of %s", json_string_value(json_array_get(m->exes, 0)));
	else if (json_array_size(m->exes) > 1)
		printf(" of %zu programs", json_array_size(m->exes));
	printf(": %zu exit, %zu signal report(s)\n\n", m->nexit, m->nsignal);

	for (i = 0; i < m->nsites; i++) {
		const struct pg_msite *s = v[i];
		if (!s->open && !s->leaked && !s->finalized)
			continue;
		if (s->leaked)
			printf("Leak of %lld socket(s) (%lld open, ", (long long)s->leaked,
			       (long long)s->open);
		else if (!s->open)
			printf("Closed only by the interpreter's finalizer: %lld socket(s) (",
			       (long long)s->finalized);
		else
			printf("Open, not counted as leaked: %lld socket(s) (", (long long)s->open);
		if (s->finalized && (s->leaked || s->open))
			printf("%lld finalized, ", (long long)s->finalized);
		if (json_array_size(s->frames))
			printf("%lld created here) in %zu process(es), from:\n",
			       (long long)s->created, s->npids);
		else
			printf("no creation stack) in %zu process(es):\n", s->npids);
		print_frames(s->frames, "    ");
		print_sockets(s->sockets);
		putchar('\n');
		if (s->leaked) {
			leaked += s->leaked;
			sites++;
		}
	}
	json_array_foreach(m->double_closes, i, x)
	{
		printf("Double close of fd %lld in pid %lld (%lld time(s)); closed again at:\n",
		       (long long)pg_merge_int(x, "fd"), (long long)pg_merge_int(x, "pid"),
		       (long long)(pg_merge_int(x, "count") ? pg_merge_int(x, "count") : 1));
		print_frames(json_object_get(x, "closed_again"), "    ");
		printf("  first closed at:\n");
		print_frames(json_object_get(x, "closed"), "    ");
		printf("  created at:\n");
		print_frames(json_object_get(x, "created"), "    ");
		putchar('\n');
	}
	if (json_array_size(m->destinations)) {
		printf("Destinations of outgoing connections:\n");
		json_array_foreach(m->destinations, i, x) printf(
		    "  %s: %lld connect(s), %lld active close(s), peak %lld/s, forecast %s\n",
		    pg_merge_str(x, "remote") ? pg_merge_str(x, "remote") : "?",
		    (long long)pg_merge_int(x, "connects"),
		    (long long)pg_merge_int(x, "active_closes"),
		    (long long)pg_merge_int(x, "peak_per_sec"),
		    pg_merge_str(x, "forecast") ? pg_merge_str(x, "forecast") : "?");
		putchar('\n');
	}
	if (pg_merge_str(m->policy, "error"))
		printf("Policy error: %s\n", pg_merge_str(m->policy, "error"));
	if (json_object_size(m->events)) {
		printf("Policy events:");
		first = 1;
		json_object_foreach(m->events, k, x)
		{
			printf("%s %s %lld", first ? "" : ",", k, (long long)json_integer_value(x));
			first = 0;
		}
		printf(".\n");
	}
	printf("Totals: %lld created, %lld inherited, %lld untracked; %lld closed, %lld closed "
	       "unseen; %lld open, %lld leaked, %lld suppressed; %lld double close(s)",
	       (long long)pg_merge_int(t, "created"), (long long)pg_merge_int(t, "inherited"),
	       (long long)pg_merge_int(t, "untracked"), (long long)pg_merge_int(t, "closed"),
	       (long long)pg_merge_int(t, "closed_unseen"), (long long)pg_merge_int(t, "open"),
	       (long long)pg_merge_int(t, "leaked"), (long long)pg_merge_int(t, "suppressed"),
	       (long long)pg_merge_int(t, "double_closes"));
	if (pg_merge_int(t, "finalized"))
		printf("; %lld of the closed by the interpreter's finalizer",
		       (long long)pg_merge_int(t, "finalized"));
	if (pg_merge_int(t, "lost"))
		printf("; %lld record(s) lost to memory exhaustion",
		       (long long)pg_merge_int(t, "lost"));
	printf(".\n\n");
	printf("SUMMARY: portguard: %lld socket(s) leaked from %lld call site(s).\n",
	       (long long)leaked, (long long)sites);
	free(v);
}

static json_t *pids_json(const long *pids, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_integer(pids[i]));
	return a;
}

/* The merge as one report object of the library's schema, "pids" for
 * "pid". */
static json_t *report_object(struct pg_merge *m)
{
	struct pg_msite **v = pg_merge_sorted(m);
	json_t *o = json_object(), *sites = json_array();
	const char *reason = "mixed";

	if (!m->nsignal)
		reason = "exit";
	else if (!m->nexit)
		reason = "signal";
	json_object_set_new(o, "portguard", json_integer(1));
	json_object_set_new(o, "pids", pids_json(m->pids, m->npids));
	json_object_set(o, "exe",
			json_array_size(m->exes) ? json_array_get(m->exes, 0) : json_null());
	if (json_array_size(m->exes) > 1)
		json_object_set(o, "exes", m->exes);
	json_object_set_new(o, "reason", json_string(reason));
	json_object_set_new(
	    o, "reports",
	    json_pack("{sIsI}", "exit", (json_int_t)m->nexit, "signal", (json_int_t)m->nsignal));
	json_object_set(o, "totals", m->totals);
	for (size_t i = 0; i < m->nsites; i++) {
		const struct pg_msite *s = v[i];
		json_t *so = json_object();
		json_object_set_new(so, "open", json_integer(s->open));
		json_object_set_new(so, "leaked", json_integer(s->leaked));
		json_object_set_new(so, "created", json_integer(s->created));
		if (s->finalized)
			json_object_set_new(so, "finalized", json_integer(s->finalized));
		json_object_set_new(so, "pids", pids_json(s->pids, s->npids));
		json_object_set(so, "frames", s->frames);
		json_object_set(so, "sockets", s->sockets);
		json_array_append_new(sites, so);
	}
	json_object_set_new(o, "sites", sites);
	json_object_set(o, "double_closes", m->double_closes);
	json_object_set(o, "destinations", m->destinations);
	json_object_set(o, "policy", m->policy);
	json_object_set(o, "events", m->events);
	free(v);
	return o;
}

static void print_json(struct pg_merge *m)
{
	json_t *o = report_object(m);

	json_dumpf(o, stdout, 0);
	putchar('\n');
	json_decref(o);
}

/* The page: the merged report and the processes it was made of, drawn by
 * the page's own script (tools/html.c, tools/report.html). */
static void print_html(struct pg_merge *m)
{
	json_t *o = report_object(m);

	json_object_set_new(o, "processes", pg_merge_processes(m));
	pg_html_report(o, stdout);
	json_decref(o);
}

/* Folded stacks: one line per distinct stack, counts of identical lines
 * (sites that differ only in offsets within the same functions) summed. */
struct pg_fold {
	char *line;
	long long count;
	UT_hash_handle hh;
};

/* Appends a frame's name to the line being built (amortised linear: the
 * buffer doubles). */
static void fold_name(char **buf, size_t *len, size_t *cap, const json_t *f)
{
	const char *fn = pg_merge_str(f, "function"), *mod = pg_merge_str(f, "module");
	const char *off = pg_merge_str(f, "offset"), *addr = pg_merge_str(f, "addr");
	const char *file = pg_merge_str(f, "file");
	char *name, *p;
	size_t n;

	if (fn && file && pg_merge_str(f, "language"))
		name =
		    pg_cli_asprintf("%s (%s:%lld)", fn, file, (long long)pg_merge_int(f, "line"));
	else if (fn)
		name = pg_cli_strdup(fn);
	else if (mod)
		name = pg_cli_asprintf("%s+%s", strrchr(mod, '/') ? strrchr(mod, '/') + 1 : mod,
				       off ? off : "0x0");
	else
		name = pg_cli_strdup(addr ? addr : "[unknown]");
	/* ';' separates frames and a newline ends the record. */
	for (p = name; *p; p++)
		if (*p == ';' || *p == '\n' || *p == '\r')
			*p = '_';
	n = strlen(name);
	if (*len + n + 2 > *cap) {
		while (*len + n + 2 > *cap)
			*cap = *cap ? *cap * 2 : 256;
		*buf = pg_cli_realloc(*buf, *cap);
	}
	if (*len)
		(*buf)[(*len)++] = ';';
	memcpy(*buf + *len, name, n + 1);
	*len += n;
	free(name);
}

static void fold_add(struct pg_fold **h, const json_t *frames, long long count)
{
	char *line = NULL;
	size_t len = 0, cap = 0, n = json_array_size(frames);
	struct pg_fold *f;

	for (size_t i = n; i > 0; i--)
		fold_name(&line, &len, &cap, json_array_get(frames, i - 1));
	if (!n) {
		free(line);
		line = pg_cli_strdup("[no stack]");
		len = strlen(line);
	}
	HASH_FIND(hh, *h, line, len, f);
	if (f) {
		f->count += count;
		free(line);
		return;
	}
	f = pg_cli_calloc(1, sizeof(*f));
	f->line = line;
	f->count = count;
	HASH_ADD_KEYPTR(hh, *h, f->line, len, f);
}

static int cmp_fold(const void *a, const void *b)
{
	const struct pg_fold *x = *(struct pg_fold *const *)a, *y = *(struct pg_fold *const *)b;

	if (x->count != y->count)
		return x->count > y->count ? -1 : 1;
	return strcmp(x->line, y->line);
}

static void fold_print(struct pg_fold **h)
{
	size_t n = HASH_COUNT(*h), i = 0;
	struct pg_fold **v = pg_cli_calloc(n + 1, sizeof(*v)), *f, *tmp;

	HASH_ITER(hh, *h, f, tmp)
	v[i++] = f;
	qsort(v, n, sizeof(*v), cmp_fold);
	for (i = 0; i < n; i++)
		printf("%s %lld\n", v[i]->line, v[i]->count);
	HASH_ITER(hh, *h, f, tmp)
	{
		HASH_DEL(*h, f);
		free(f->line);
		free(f);
	}
	free(v);
}

static void print_folded(struct pg_merge *m)
{
	struct pg_fold *h = NULL;

	for (struct pg_msite *s = m->sites; s; s = s->hh.next)
		if (s->leaked > 0)
			fold_add(&h, s->frames, s->leaked);
	fold_print(&h);
}

/* --diff: sites whose open count grew from the old merge to the new one. */
struct pg_grown {
	const struct pg_msite *site;
	json_int_t before, after;
};

static int cmp_grown(const void *a, const void *b)
{
	const struct pg_grown *x = a, *y = b;
	json_int_t gx = x->after - x->before, gy = y->after - y->before;

	if (gx != gy)
		return gx > gy ? -1 : 1;
	if (x->after != y->after)
		return x->after > y->after ? -1 : 1;
	return (x->site->order > y->site->order) - (x->site->order < y->site->order);
}

/* A socket of the new report that the old one did not have (same pid and
 * inode): what the leak added. */
static int sock_is_new(const struct pg_msite *old, const json_t *s)
{
	json_int_t pid = pg_merge_int(s, "pid"), ino = pg_merge_int(s, "inode");
	size_t i;
	json_t *o;

	if (!old || !ino)
		return 1;
	json_array_foreach(old->sockets, i, o) if (pg_merge_int(o, "inode") == ino &&
						   pg_merge_int(o, "pid") == pid) return 0;
	return 1;
}

static void print_diff(struct pg_merge *old, struct pg_merge *cur, int fmt)
{
	struct pg_grown *g = pg_cli_calloc(cur->nsites + 1, sizeof(*g));
	size_t n = 0;
	long long total = 0;

	for (struct pg_msite *s = cur->sites; s; s = s->hh.next) {
		const struct pg_msite *o = pg_merge_find(old, s->key, s->keylen);
		json_int_t before = o ? o->open : 0;
		if (s->open > before) {
			g[n].site = s;
			g[n].before = before;
			g[n].after = s->open;
			total += s->open - before;
			n++;
		}
	}
	qsort(g, n, sizeof(*g), cmp_grown);

	if (fmt == FMT_JSON) {
		json_t *root = json_object(), *sites = json_array();
		for (size_t i = 0; i < n; i++) {
			json_t *so = json_object();
			json_object_set(so, "frames", g[i].site->frames);
			json_object_set_new(so, "open_before", json_integer(g[i].before));
			json_object_set_new(so, "open_after", json_integer(g[i].after));
			json_object_set_new(so, "grew", json_integer(g[i].after - g[i].before));
			json_array_append_new(sites, so);
		}
		json_object_set_new(root, "sites", sites);
		json_dumpf(root, stdout, 0);
		putchar('\n');
		json_decref(root);
	} else if (fmt == FMT_FOLDED) {
		struct pg_fold *h = NULL;
		for (size_t i = 0; i < n; i++)
			fold_add(&h, g[i].site->frames, g[i].after - g[i].before);
		fold_print(&h);
	} else {
		printf("==portguard: open sockets by call site, before (pids ");
		print_pids(old->pids, old->npids);
		printf(") and after (pids ");
		print_pids(cur->pids, cur->npids);
		printf(")==\n\n");
		for (size_t i = 0; i < n; i++) {
			const struct pg_msite *s = g[i].site,
					      *o = pg_merge_find(old, s->key, s->keylen);
			size_t k, shown = 0, fresh = 0;
			json_t *x;

			printf("Grew by %lld socket(s) (%lld -> %lld open) at:\n",
			       (long long)(g[i].after - g[i].before), (long long)g[i].before,
			       (long long)g[i].after);
			print_frames(s->frames, "    ");
			json_array_foreach(s->sockets, k, x)
			{
				if (!sock_is_new(o, x))
					continue;
				fresh++;
				if (shown++ < PG_TEXT_SOCKETS)
					print_socket(x);
			}
			if (fresh > PG_TEXT_SOCKETS)
				printf("  ... and %zu more new since before\n",
				       fresh - PG_TEXT_SOCKETS);
			putchar('\n');
		}
		printf("SUMMARY: portguard: open sockets grew by %lld at %zu call site(s).\n",
		       total, n);
	}
	free(g);
}

enum { OPT_TEXT = 256, OPT_JSON, OPT_FOLDED, OPT_HTML, OPT_DIFF };

static const struct option longopts[] = {
	{ "text", no_argument, NULL, OPT_TEXT },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "folded", no_argument, NULL, OPT_FOLDED },
	{ "html", no_argument, NULL, OPT_HTML },
	{ "diff", required_argument, NULL, OPT_DIFF },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int load_all(struct pg_merge *m, char **paths, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (pg_merge_load(m, paths[i]) < 0)
			return -1;
	pg_merge_build(m);
	return 0;
}

int pg_cmd_report(int argc, char **argv)
{
	struct pg_merge cur, old;
	char **olds = NULL;
	size_t nolds = 0;
	int c, fmt = -1, r = 0;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_TEXT:
		case OPT_JSON:
		case OPT_FOLDED:
		case OPT_HTML: {
			int f = c == OPT_TEXT   ? FMT_TEXT
				: c == OPT_JSON ? FMT_JSON
				: c == OPT_HTML ? FMT_HTML
						: FMT_FOLDED;
			if (fmt >= 0 && fmt != f) {
				free(olds);
				return pg_cli_usage_error(usage,
							  "--text, --json, --folded and --html "
							  "exclude each other");
			}
			fmt = f;
			break;
		}
		case OPT_DIFF:
			olds = pg_cli_realloc(olds, (nolds + 1) * sizeof(*olds));
			olds[nolds++] = optarg;
			break;
		case 'h':
			free(olds);
			fputs(usage, stdout);
			return 0;
		case ':':
			free(olds);
			return pg_cli_usage_error(usage, "option '%s' needs an argument",
						  argv[optind - 1]);
		default:
			free(olds);
			return pg_cli_usage_error(usage, "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind >= argc) {
		free(olds);
		return pg_cli_usage_error(usage, "no report FILE given");
	}
	if (fmt < 0)
		fmt = FMT_TEXT;
	if (fmt == FMT_HTML && nolds) {
		free(olds);
		return pg_cli_usage_error(usage, "--html draws one merge: --diff goes with "
						 "--text, --json or --folded");
	}

	pg_merge_init(&cur);
	pg_merge_init(&old);
	if (load_all(&cur, argv + optind, (size_t)(argc - optind)) < 0 ||
	    load_all(&old, olds, nolds) < 0) {
		r = PG_EXIT_USAGE;
		goto out;
	}
	if (!cur.nreports)
		pg_cli_warn("no report in the input%s",
			    json_object_size(cur.events) ? " (policy events only)" : "");
	if (nolds)
		print_diff(&old, &cur, fmt);
	else if (fmt == FMT_JSON)
		print_json(&cur);
	else if (fmt == FMT_FOLDED)
		print_folded(&cur);
	else if (fmt == FMT_HTML)
		print_html(&cur);
	else
		print_text(&cur);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		pg_cli_warn("cannot write the output");
		r = PG_EXIT_USAGE;
	}
out:
	pg_merge_free(&cur);
	pg_merge_free(&old);
	free(olds);
	return r;
}
