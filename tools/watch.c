/* portguard ports --watch: the ports view, redrawn in place every S
 * seconds, with each busy tuple's ports over the last minute as a
 * sparkline, so an operator sees TIME_WAIT climb and who causes it.
 *
 * On a terminal: the alternate screen (the shell's screen comes back on
 * quit), no cursor, no line wrap; each frame is rendered to memory and
 * written at once over the last (home, each line cleared to its end, the
 * rest of the screen cleared), cut to the terminal's height. Keys: q quits
 * (the terminal in non-canonical mode, signals kept: Ctrl-C is SIGINT).
 * Not a terminal: each frame as plain lines, a blank line between them.
 * SIGINT, SIGTERM, SIGHUP quit cleanly (exit 0, the terminal restored);
 * Ctrl-Z restores the terminal before stopping and takes it back on fg. */
#include "tools/cli.h"
#include "tools/ports.h"

#include <errno.h>
#include <langinfo.h>
#include <locale.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define PG_TREND_SECONDS 60.0
#define PG_TREND_COLS 20 /* at most; fewer when the interval is long */
#define PG_WATCH_PROCS 5 /* process rows on a terminal */

/* One tuple's last minute: per column (a slice of the minute) the most
 * ports held at any reading in it, and its first reading (for the change
 * over the window). */
struct pg_trend {
	struct pg_tkey key;
	long max[PG_TREND_COLS]; /* -1: no reading in that column */
	long first[PG_TREND_COLS];
	double first_t[PG_TREND_COLS];
	long long last_col; /* absolute column of the newest reading */
	long now; /* ports held at the newest reading (0: gone) */
	UT_hash_handle hh;
};

struct pg_watch {
	double interval, col_seconds, t0;
	int ncols;
	int tty; /* stdout is a terminal: redraw in place */
	int keys; /* stdin is read for q */
	int raw; /* the terminal's mode was changed (restore it) */
	int utf8;
	struct termios saved;
	struct pg_trend *trends;
};

static volatile sig_atomic_t quit_signal, redraw;
static struct pg_watch *the_watch; /* for the Ctrl-Z handler */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Async-signal-safe (write, tcsetattr): the Ctrl-Z handler uses it. */
static void term_leave(struct pg_watch *w)
{
	static const char leave[] = "\033[?7h\033[?25h\033[?1049l";

	if (w->tty && write(STDOUT_FILENO, leave, sizeof(leave) - 1) < 0) {
		/* The terminal is gone; nothing to restore on it. */
	}
	if (w->raw)
		tcsetattr(STDIN_FILENO, TCSADRAIN, &w->saved);
}

static void term_enter(struct pg_watch *w)
{
	static const char enter[] = "\033[?1049h\033[?25l\033[?7l";

	if (w->raw) {
		struct termios t = w->saved;
		t.c_lflag &= (tcflag_t) ~(ICANON | ECHO);
		t.c_cc[VMIN] = 1;
		t.c_cc[VTIME] = 0;
		tcsetattr(STDIN_FILENO, TCSADRAIN, &t);
	}
	if (w->tty && write(STDOUT_FILENO, enter, sizeof(enter) - 1) < 0) {
		/* Reported by the first frame's write. */
	}
}

static void on_quit(int sig)
{
	quit_signal = sig;
}

static void on_winch(int sig)
{
	(void)sig;
	redraw = 1;
}

static void on_tstp(int sig)
{
	int e = errno;
	sigset_t set;

	term_leave(the_watch);
	signal(SIGTSTP, SIG_DFL);
	sigemptyset(&set);
	sigaddset(&set, SIGTSTP);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	raise(sig);
	/* Continued (fg): take the terminal back, draw again. */
	signal(SIGTSTP, on_tstp);
	term_enter(the_watch);
	redraw = 1;
	errno = e;
}

static void handle(int sig, void (*fn)(int))
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = fn;
	sigemptyset(&sa.sa_mask);
	/* No SA_RESTART: poll() returns at once with EINTR. */
	sigaction(sig, &sa, NULL);
}

/* ---- the last minute, per tuple ---- */

static void trend_reading(struct pg_watch *w, struct pg_trend *tr, long long col, double t,
			  long used)
{
	int i;

	if (col > tr->last_col) {
		long long from = col - tr->last_col > w->ncols ? col - w->ncols : tr->last_col;
		for (long long c = from + 1; c <= col; c++)
			tr->max[c % w->ncols] = -1;
		tr->last_col = col;
	}
	i = (int)(col % w->ncols);
	if (tr->max[i] < 0) {
		tr->first[i] = used;
		tr->first_t[i] = t;
	}
	if (used > tr->max[i])
		tr->max[i] = used;
	tr->now = used;
}

/* Every tuple of this reading, and every one seen in the last minute
 * (now 0); those with nothing in the window are forgotten. */
static void trends_update(struct pg_watch *w, struct pg_ports *p, double t)
{
	long long col = (long long)((t - w->t0) / w->col_seconds);
	struct pg_trend *tr, *tmp;

	for (size_t i = 0; i < p->ntuples; i++) {
		const struct pg_tuple *tu = p->tuples[i];
		HASH_FIND(hh, w->trends, &tu->key, sizeof(tu->key), tr);
		if (!tr) {
			tr = pg_cli_calloc(1, sizeof(*tr));
			tr->key = tu->key;
			for (int k = 0; k < PG_TREND_COLS; k++)
				tr->max[k] = -1;
			tr->last_col = col;
			HASH_ADD(hh, w->trends, key, sizeof(tr->key), tr);
		}
		trend_reading(w, tr, col, t, tu->used);
	}
	HASH_ITER(hh, w->trends, tr, tmp)
	{
		struct pg_tuple *tu;
		int busy = 0;

		HASH_FIND(hh, p->hash, &tr->key, sizeof(tr->key), tu);
		if (!tu)
			trend_reading(w, tr, col, t, 0);
		for (int k = 0; k < w->ncols; k++)
			busy |= tr->max[k] > 0;
		if (!busy) {
			HASH_DEL(w->trends, tr);
			free(tr);
		}
	}
}

/* Oldest column first; the newest is the last character. */
static char *sparkline(const struct pg_watch *w, const struct pg_trend *tr)
{
	static const char *const bars[] = { "\u2581", "\u2582", "\u2583", "\u2584",
					    "\u2585", "\u2586", "\u2587", "\u2588" };
	static const char ascii[] = "_.:-=+*#";
	char *s = pg_cli_calloc((size_t)w->ncols * 4 + 1, 1), *e = s;
	long hi = 0;

	for (int k = 0; k < w->ncols; k++)
		if (tr->max[k] > hi)
			hi = tr->max[k];
	for (long long c = tr->last_col - w->ncols + 1; c <= tr->last_col; c++) {
		long v = c < 0 ? -1 : tr->max[c % w->ncols];
		int level = v <= 0 || hi <= 0 ? 0 : (int)((v * 7 + hi - 1) / hi);
		if (v < 0)
			*e++ = ' ';
		else if (w->utf8)
			e = stpcpy(e, bars[level]);
		else
			*e++ = ascii[level];
	}
	return s;
}

/* The oldest reading still in the window: how much the tuple grew since,
 * and over how long. */
static long trend_change(const struct pg_watch *w, const struct pg_trend *tr, double t,
			 double *span)
{
	for (long long c = tr->last_col - w->ncols + 1; c <= tr->last_col; c++) {
		int i;
		if (c < 0)
			continue;
		i = (int)(c % w->ncols);
		if (tr->max[i] < 0)
			continue;
		*span = t - tr->first_t[i];
		return tr->now - tr->first[i];
	}
	*span = 0;
	return 0;
}

static char *duration_text(double s)
{
	if (s < 120)
		return pg_cli_asprintf("%.0fs", s);
	if (s < 7200)
		return pg_cli_asprintf("%.0fm", s / 60);
	if (s < 172800)
		return pg_cli_asprintf("%.0fh", s / 3600);
	return pg_cli_asprintf("%.0fd", s / 86400);
}

/* At the rate of the last minute, when the tuple's range would be full. */
static char *full_in_text(const struct pg_ports *p, long used, long change, double span)
{
	if (used >= p->size)
		return pg_cli_strdup("now");
	if (change <= 0 || span < 1)
		return pg_cli_strdup("-");
	return duration_text((double)(p->size - used) * span / (double)change);
}

static int cmp_trend(const void *a, const void *b)
{
	const struct pg_trend *x = *(struct pg_trend *const *)a, *y = *(struct pg_trend *const *)b;

	if (x->now != y->now)
		return x->now > y->now ? -1 : 1;
	return memcmp(&x->key, &y->key, sizeof(x->key));
}

/* ---- one frame ---- */

static void render(struct pg_watch *w, struct pg_ports *p, double t, int rows)
{
	static const char align[] = "llrrlllrll";
	struct pg_table tb = { 10, 0, NULL, align };
	size_t n = HASH_COUNT(w->trends), k = 0, max_rows = n;
	struct pg_trend **v = pg_cli_calloc(n + 1, sizeof(*v)), *tr, *tmp;
	char clock[32];
	time_t wall = time(NULL);
	struct tm tm;

	localtime_r(&wall, &tm);
	strftime(clock, sizeof(clock), "%Y-%m-%d %H:%M:%S", &tm);
	printf("portguard ports --watch %gs  %s  (last %.0f s in %d columns of %g s)%s\n\n",
	       w->interval, clock, PG_TREND_SECONDS, w->ncols, w->col_seconds,
	       w->tty ? "  q or Ctrl-C quits" : "");
	pg_ports_print_head(p);
	HASH_ITER(hh, w->trends, tr, tmp) v[k++] = tr;
	if (n)
		qsort(v, n, sizeof(*v), cmp_trend);
	if (rows > 0) {
		/* Head 6 lines, table head 2, "more" 1, processes up to 5 + 4. */
		int room = rows - 9 - (p->scan.nprocs ? PG_WATCH_PROCS + 4 : 0);
		max_rows = room > 1 ? (size_t)room : 1;
	}
	if (n) {
		char *hdr[] = { pg_cli_strdup("LOCAL"),  pg_cli_strdup("REMOTE"),
				pg_cli_strdup("USED"),   pg_cli_strdup("%"),
				pg_cli_strdup("STATUS"), pg_cli_strdup("LAST MINUTE"),
				pg_cli_strdup("CHANGE"), pg_cli_strdup("FULL IN"),
				pg_cli_strdup("STATES"), pg_cli_strdup("OWNERS") };
		putchar('\n');
		pg_table_add(&tb, hdr);
		for (size_t i = 0; i < n && i < max_rows; i++) {
			struct pg_tuple *tu, gone;
			char local[64], remote[80];
			double span;
			long change;

			HASH_FIND(hh, p->hash, &v[i]->key, sizeof(v[i]->key), tu);
			if (!tu) {
				memset(&gone, 0, sizeof(gone));
				gone.key = v[i]->key;
				tu = &gone;
			}
			change = trend_change(w, v[i], t, &span);
			pg_ports_tuple_strings(tu, local, sizeof(local), remote, sizeof(remote));
			char *row[] = { pg_cli_strdup(local),
					pg_cli_strdup(remote),
					pg_cli_asprintf("%ld", tu->used),
					pg_cli_asprintf("%.2f", pg_ports_round2(tu->percent)),
					pg_cli_strdup(pg_ports_status_names[tu->status]),
					sparkline(w, v[i]),
					pg_cli_asprintf("%+ld in %.0fs", change, span),
					full_in_text(p, tu->used, change, span),
					tu->used ? pg_ports_states_text(tu) : pg_cli_strdup("-"),
					pg_ports_owners_text(p, tu) };
			pg_table_add(&tb, row);
		}
		pg_table_print(&tb);
		if (n > max_rows)
			printf("... and %zu more tuple(s)\n", n - max_rows);
	}
	free(v);
	pg_ports_print_procs(p, rows > 0 ? PG_WATCH_PROCS : 20);
	if (p->scan.unreadable)
		printf("\nThe descriptors of %ld process(es) of other users could not be read: "
		       "their sockets show no owner (run as root to see them).\n",
		       p->scan.unreadable);
}

/* The frame over the last one: home, each line cleared to its end, cut
 * to the screen's height, the rest of the screen cleared; one write. */
static int draw_tty(const char *frame, size_t len, int rows)
{
	size_t cap = len + (size_t)rows * 4 + 16, o = 0;
	char *out = pg_cli_alloc(cap);
	int line = 0, r = 0;

	o += (size_t)sprintf(out, "\033[H");
	for (size_t i = 0; i < len && line < rows; i++) {
		if (frame[i] == '\n') {
			line++;
			memcpy(out + o, "\033[K", 3);
			o += 3;
			if (line < rows)
				out[o++] = '\n';
			continue;
		}
		out[o++] = frame[i];
	}
	memcpy(out + o, "\033[J", 3);
	o += 3;
	for (size_t done = 0; done < o;) {
		ssize_t k = write(STDOUT_FILENO, out + done, o - done);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			r = -1;
			break;
		}
		done += (size_t)k;
	}
	free(out);
	return r;
}

static int screen_rows(void)
{
	struct winsize ws;

	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0)
		return ws.ws_row;
	return 24;
}

/* One reading and its frame. On a terminal, what the reading writes to
 * stderr is kept until the terminal is ours no more (it would be drawn
 * over). 0, or the exit status. */
static int frame(struct pg_watch *w, struct pg_ports *p, char **err, size_t *errlen)
{
	FILE *saved_out = stdout, *saved_err = stderr, *mo = NULL, *me = NULL;
	char *buf = NULL;
	size_t len = 0;
	double t = now_s();
	int r;

	if (w->tty) {
		me = open_memstream(err, errlen);
		mo = open_memstream(&buf, &len);
		if (!me || !mo) {
			pg_cli_warn("out of memory");
			return 3;
		}
		stderr = me;
	}
	r = pg_ports_take(p);
	if (w->tty) {
		stderr = saved_err;
		fclose(me);
	}
	if (r) {
		if (mo)
			fclose(mo);
		free(buf);
		pg_ports_release(p);
		return r;
	}
	trends_update(w, p, t);
	if (w->tty) {
		stdout = mo; /* glibc: stdout is a variable one may set */
		render(w, p, t, screen_rows());
		stdout = saved_out;
		fclose(mo);
		r = draw_tty(buf, len, screen_rows()) ? 3 : 0;
		free(buf);
	} else {
		render(w, p, t, 0);
		putchar('\n');
		r = fflush(stdout) != 0 || ferror(stdout) ? 3 : 0;
	}
	pg_ports_release(p);
	if (r)
		pg_cli_warn("cannot write the view: %s", strerror(errno));
	return r;
}

/* q or Q among the bytes read: quit. EOF: stop reading. */
static int read_keys(struct pg_watch *w)
{
	char buf[64];
	ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));

	if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
		w->keys = 0;
		return 0;
	}
	for (ssize_t i = 0; i < n; i++)
		if (buf[i] == 'q' || buf[i] == 'Q')
			return 1;
	return 0;
}

int pg_ports_watch(struct pg_ports *p, double interval)
{
	struct pg_watch w = { .interval = interval };
	char *err = NULL;
	size_t errlen = 0;
	double next;
	int r = 0, stdin_tty = isatty(STDIN_FILENO);
	const char *cs;

	setlocale(LC_CTYPE, "");
	cs = nl_langinfo(CODESET);
	w.utf8 = cs && strcmp(cs, "UTF-8") == 0;
	w.col_seconds = interval > PG_TREND_SECONDS / PG_TREND_COLS
			    ? interval
			    : PG_TREND_SECONDS / PG_TREND_COLS;
	w.ncols = (int)(PG_TREND_SECONDS / w.col_seconds + 0.5);
	if (w.ncols < 1)
		w.ncols = 1;
	w.tty = isatty(STDOUT_FILENO);
	/* Keys from a terminal we are in the foreground of (a background job
	 * reading it would be stopped), or from whatever else stdin is. */
	w.keys = stdin_tty ? tcgetpgrp(STDIN_FILENO) == getpgrp() : 1;
	w.raw = w.keys && stdin_tty && w.tty && tcgetattr(STDIN_FILENO, &w.saved) == 0;
	w.t0 = now_s();
	the_watch = &w;

	handle(SIGINT, on_quit);
	handle(SIGTERM, on_quit);
	handle(SIGHUP, on_quit);
	handle(SIGWINCH, on_winch);
	if (w.raw)
		handle(SIGTSTP, on_tstp);
	term_enter(&w);
	next = w.t0;
	while (!quit_signal) {
		double t = now_s();
		struct pollfd pfd = { STDIN_FILENO, POLLIN, 0 };
		int ms;

		if (t >= next || redraw) {
			redraw = 0;
			free(err);
			err = NULL;
			r = frame(&w, p, &err, &errlen);
			if (r)
				break;
			if (t >= next)
				next += interval * (double)(long long)((t - next) / interval + 1);
			continue;
		}
		ms = (int)((next - t) * 1000) + 1;
		if (poll(&pfd, w.keys ? 1 : 0, ms) > 0 && (pfd.revents & (POLLIN | POLLHUP)) &&
		    read_keys(&w))
			break;
	}
	term_leave(&w);
	signal(SIGTSTP, SIG_DFL);
	if (err && errlen)
		fwrite(err, 1, errlen, stderr);
	free(err);
	{
		struct pg_trend *tr, *tmp;
		HASH_ITER(hh, w.trends, tr, tmp)
		{
			HASH_DEL(w.trends, tr);
			free(tr);
		}
	}
	return r;
}
