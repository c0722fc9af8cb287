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
	double t_first, t_prev; /* the first and the latest reading */
	long frames; /* readings drawn */
	int ncols;
	int tty; /* stdout is a terminal (TERM not dumb): redraw in place */
	int stdin_tty; /* stdin is a terminal that still answers */
	int keys; /* q is read: stdin is the terminal, we its foreground */
	volatile sig_atomic_t alt; /* the alternate screen is on */
	volatile sig_atomic_t raw; /* the terminal's mode is ours; saved is the user's */
	int utf8;
	struct termios saved;
	struct pg_trend *trends;
};

static volatile sig_atomic_t quit_signal, redraw;
static struct pg_watch *the_watch; /* for the Ctrl-Z handler */

/* Signals that end the watch (the terminal restored, exit 0), unless the
 * watch inherited them ignored (nohup). */
static const int quit_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM };
#define PG_NQUIT ((int)(sizeof(quit_signals) / sizeof(*quit_signals)))

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Async-signal-safe (write, tcsetattr): the Ctrl-Z handler uses it.
 * SIGTTOU is blocked while watching, so neither stops us in the
 * background. */
static void term_leave(struct pg_watch *w)
{
	static const char leave[] = "\033[?7h\033[?25h\033[?1049l";

	if (w->alt) {
		w->alt = 0;
		if (write(STDOUT_FILENO, leave, sizeof(leave) - 1) < 0) {
			/* The terminal is gone; nothing to restore on it. */
		}
	}
	if (w->raw) {
		w->raw = 0;
		tcsetattr(STDIN_FILENO, TCSADRAIN, &w->saved);
	}
}

/* Before each frame: the screen ours, and keys read when we are the
 * terminal's foreground (started with &, then fg; or back from Ctrl-Z). */
static void term_enter(struct pg_watch *w)
{
	static const char enter[] = "\033[?1049h\033[?25l\033[?7l";

	w->keys = w->stdin_tty && tcgetpgrp(STDIN_FILENO) == getpgrp();
	if (w->keys && w->tty && !w->raw && tcgetattr(STDIN_FILENO, &w->saved) == 0) {
		struct termios t = w->saved;
		t.c_lflag &= (tcflag_t) ~(ICANON | ECHO);
		t.c_cc[VMIN] = 1;
		t.c_cc[VTIME] = 0;
		if (tcsetattr(STDIN_FILENO, TCSADRAIN, &t) == 0)
			w->raw = 1;
	}
	/* Without our mode a q would wait for Enter and echo: not read. */
	if (w->tty && !w->raw)
		w->keys = 0;
	if (w->tty && !w->alt) {
		w->alt = 1;
		if (write(STDOUT_FILENO, enter, sizeof(enter) - 1) < 0) {
			/* Reported by the frame's write. */
		}
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

/* Ctrl-Z: the terminal given back, then stopped; continued, the next
 * frame takes it again (from the main loop: a terminal call here would
 * stop us again were we continued in the background). */
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
	signal(SIGTSTP, on_tstp);
	redraw = 1;
	errno = e;
}

/* Installs fn unless the signal was inherited ignored; adds it to set. */
static void handle(int sig, void (*fn)(int), sigset_t *set)
{
	struct sigaction sa, old;

	if (sigaction(sig, NULL, &old) == 0 && old.sa_handler == SIG_IGN)
		return;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = fn;
	sigemptyset(&sa.sa_mask);
	sigaction(sig, &sa, NULL);
	if (set)
		sigaddset(set, sig);
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

/* A tuple new in this reading was absent from the earlier ones: 0 in
 * their columns, so that a burst shows as one (its change from 0). */
static void trend_absent_before(struct pg_watch *w, struct pg_trend *tr, long long col)
{
	long long prev = (long long)((w->t_prev - w->t0) / w->col_seconds);
	long long from = col - w->ncols + 1;

	if (from < 0)
		from = 0;
	for (long long c = from; c <= prev && c <= col; c++) {
		int i = (int)(c % w->ncols);
		double start = w->t0 + (double)c * w->col_seconds;
		tr->max[i] = 0;
		tr->first[i] = 0;
		tr->first_t[i] = start > w->t_first ? start : w->t_first;
	}
	tr->last_col = prev < col ? prev : col;
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
			if (w->frames)
				trend_absent_before(w, tr, col);
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
	size_t n = HASH_COUNT(w->trends), k = 0, max_rows = n, listed = 0;
	struct pg_trend **v = pg_cli_calloc(n + 1, sizeof(*v)), *tr, *tmp;
	char clock[32];
	time_t wall = time(NULL);
	struct tm tm;

	localtime_r(&wall, &tm);
	strftime(clock, sizeof(clock), "%Y-%m-%d %H:%M:%S", &tm);
	printf("portguard ports --watch %gs  %s  (last %g s in %d columns of %g s)%s\n\n",
	       w->interval, clock, w->col_seconds * w->ncols, w->ncols, w->col_seconds,
	       w->keys  ? "  q or Ctrl-C quits"
	       : w->tty ? "  Ctrl-C quits"
			: "");
	pg_ports_print_head(p);
	HASH_ITER(hh, w->trends, tr, tmp) v[k++] = tr;
	if (n)
		qsort(v, n, sizeof(*v), cmp_trend);
	for (size_t i = 0; i < p->scan.nprocs; i++)
		listed += p->pinfo[i].listed != 0;
	if (rows > 0) {
		/* Header 2 and head 3 lines, the table's blank and header 2, its
		 * "more" 1; processes: blank, title, blank, header, rows, "more";
		 * the unreadable note 2. */
		int room = rows - 8;
		if (listed)
			room -= 4 + (int)(listed < PG_WATCH_PROCS ? listed : PG_WATCH_PROCS) +
				(listed > PG_WATCH_PROCS);
		if (p->scan.unreadable)
			room -= 2;
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
			double span;
			long change;

			HASH_FIND(hh, p->hash, &v[i]->key, sizeof(v[i]->key), tu);
			if (!tu) {
				memset(&gone, 0, sizeof(gone));
				gone.key = v[i]->key;
				tu = &gone;
			}
			change = trend_change(w, v[i], t, &span);
			char *row[10];
			pg_ports_tuple_cells(tu, row);
			row[5] = sparkline(w, v[i]);
			row[6] = pg_cli_asprintf("%+ld in %.0fs", change, span);
			row[7] = full_in_text(p, tu->used, change, span);
			row[8] = tu->used ? pg_ports_states_text(tu) : pg_cli_strdup("-");
			row[9] = pg_ports_owners_text(p, tu);
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
		mo = me ? open_memstream(&buf, &len) : NULL;
		if (!mo) {
			if (me)
				fclose(me);
			pg_cli_warn("out of memory");
			return 3;
		}
		stderr = me;
	}
	r = pg_ports_take(p);
	if (!r) {
		trends_update(w, p, t);
		if (!w->frames++)
			w->t_first = t;
		w->t_prev = t;
		if (w->tty) {
			stdout = mo; /* glibc: stdout is a variable one may set */
			render(w, p, t, screen_rows());
			stdout = saved_out;
			fflush(mo);
			/* Stopped (Ctrl-Z) while rendering: the screen is the
			 * shell's; the next frame draws on ours. */
			if (w->alt)
				r = draw_tty(buf, len, screen_rows()) ? 3 : 0;
		} else {
			render(w, p, t, 0);
			putchar('\n');
			r = fflush(stdout) != 0 || ferror(stdout) ? 3 : 0;
		}
		if (r)
			pg_cli_warn("cannot write the view: %s", strerror(errno));
	}
	pg_ports_release(p);
	if (w->tty) {
		/* Kept, and printed once the terminal is the shell's again. */
		stderr = saved_err;
		fclose(me);
		fclose(mo);
		free(buf);
	}
	return r;
}

/* q or Q among the bytes read: quit. A terminal that answers no more:
 * stop reading it. */
static int read_keys(struct pg_watch *w)
{
	char buf[64];
	ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));

	if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
		w->keys = w->stdin_tty = 0;
		return 0;
	}
	for (ssize_t i = 0; i < n; i++)
		if (buf[i] == 'q' || buf[i] == 'Q')
			return 1;
	return 0;
}

static void trends_free(struct pg_watch *w)
{
	struct pg_trend *tr, *tmp;

	HASH_ITER(hh, w->trends, tr, tmp)
	{
		HASH_DEL(w->trends, tr);
		free(tr);
	}
}

int pg_ports_watch(struct pg_ports *p, double interval)
{
	struct pg_watch w = { .interval = interval };
	const char *cs, *term = getenv("TERM");
	sigset_t wait_mask, blocked, orig;
	char *err = NULL;
	size_t errlen = 0;
	double next;
	int r = 0;

	setlocale(LC_CTYPE, "");
	cs = nl_langinfo(CODESET);
	w.utf8 = cs && strcmp(cs, "UTF-8") == 0;
	/* Columns of 3 s, or one per reading when readings are further
	 * apart; two at least, so that a change shows. */
	w.col_seconds = interval > PG_TREND_SECONDS / PG_TREND_COLS
			    ? interval
			    : PG_TREND_SECONDS / PG_TREND_COLS;
	w.ncols = (int)(PG_TREND_SECONDS / w.col_seconds + 0.5);
	if (w.ncols < 2)
		w.ncols = 2;
	w.tty = isatty(STDOUT_FILENO) && term && *term && strcmp(term, "dumb") != 0;
	w.stdin_tty = isatty(STDIN_FILENO);
	w.t0 = now_s();
	the_watch = &w;

	/* The quit signals and SIGWINCH wait blocked, to be taken only in
	 * ppoll (no wake-up lost between a check and the wait); SIGTTOU is
	 * blocked throughout (a terminal call from the background must not
	 * stop us). */
	sigemptyset(&blocked);
	for (int i = 0; i < PG_NQUIT; i++)
		handle(quit_signals[i], on_quit, &blocked);
	handle(SIGWINCH, on_winch, &blocked);
	if (w.tty)
		handle(SIGTSTP, on_tstp, NULL);
	sigaddset(&blocked, SIGTTOU);
	sigprocmask(SIG_BLOCK, &blocked, &orig);
	wait_mask = orig;
	sigaddset(&wait_mask, SIGTTOU);

	next = w.t0;
	while (!quit_signal) {
		double t = now_s();
		struct pollfd pfd = { STDIN_FILENO, POLLIN, 0 };
		struct timespec ts;
		double left;

		if (t >= next || redraw) {
			redraw = 0;
			term_enter(&w);
			free(err);
			err = NULL;
			r = frame(&w, p, &err, &errlen);
			if (r)
				break;
			if (t >= next)
				next += interval * (double)(long long)((t - next) / interval + 1);
			continue;
		}
		left = next - t;
		ts.tv_sec = (time_t)left;
		ts.tv_nsec = (long)((left - (double)ts.tv_sec) * 1e9);
		if (ppoll(&pfd, w.keys ? 1 : 0, &ts, &wait_mask) > 0) {
			if (pfd.revents & (POLLNVAL | POLLERR))
				w.keys = w.stdin_tty = 0;
			else if ((pfd.revents & (POLLIN | POLLHUP)) && read_keys(&w))
				break;
		}
	}
	term_leave(&w);
	signal(SIGTSTP, SIG_DFL);
	sigprocmask(SIG_SETMASK, &orig, NULL);
	if (err && errlen)
		fwrite(err, 1, errlen, stderr);
	free(err);
	trends_free(&w);
	return r;
}
