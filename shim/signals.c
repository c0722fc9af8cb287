/* The report signal.
 *
 * While the program's action for it is the default, the kernel holds the
 * library's handler, which asks for a report; the program is shown, in
 * every read-back, the default action exactly as the kernel would return it
 * (captured from the kernel itself, flags, SA_RESTORER and sa_restorer as
 * glibc fills them in). While the program has a handler of its own, or
 * ignores the signal, the kernel holds the program's action, untouched: the
 * signal is the program's alone (SPEC section 4; memcached stops on SIGUSR1,
 * postgres signals its backends with it). The handler only does
 * async-signal-safe work (sem_post) on the request channel that the
 * library's thread (shim/reporter.c) waits on; that thread blocks every
 * signal, so that they all go to the program's threads. */
#include "shim/signals.h"

#include "shim/common.h"
#include "shim/locks.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <string.h>
#include <time.h>

static int report_sig;
/* The program's default action as the kernel returns it, shown while the
 * kernel holds ours. Written under PG_LOCK_ACTION, with every signal blocked
 * on the writing thread. */
static struct sigaction dfl;
static sem_t sem;
static unsigned requests; /* PG_REQ_* bits not yet taken */

static void on_signal(int sig, siginfo_t *si, void *uc)
{
	int saved = errno;

	(void)sig;
	(void)si;
	(void)uc;
	__atomic_or_fetch(&requests, PG_REQ_REPORT, __ATOMIC_RELEASE);
	sem_post(&sem);
	errno = saved;
}

static int is_ours(pg_sighandler_t h)
{
	return h == (pg_sighandler_t)(void (*)(void))on_signal;
}

/* Caller holds PG_LOCK_ACTION (or is init). The kernel's action is SIG_DFL as
 * the program set it: remember it as the kernel returns it, then put ours
 * in front. SA_RESTART: a program that never asked for a signal sees no
 * EINTR because of ours. */
static void install_ours(void)
{
	struct sigaction a;

	if (pg_real.sigaction(report_sig, NULL, &dfl) < 0)
		return;
	memset(&a, 0, sizeof(a));
	a.sa_sigaction = on_signal;
	a.sa_flags = SA_SIGINFO | SA_RESTART;
	pg_real.sigaction(report_sig, &a, NULL);
}

void pg_signals_init(int sig)
{
	struct sigaction cur;

	sem_init(&sem, 0, 0);
	if (sig <= 0 || pg_real.sigaction(sig, NULL, &cur) < 0)
		return;
	report_sig = sig;
	/* Ignored since before exec, or handled by a constructor that ran
	 * before ours: the program's. */
	if (cur.sa_handler == SIG_DFL)
		install_ours();
}

/* The read-back the program would get without the library: glibc fills
 * in handler, mask, flags and restorer from the kernel's answer. */
static void show(struct sigaction *old, const struct sigaction *from)
{
	old->sa_handler = from->sa_handler;
	old->sa_mask = from->sa_mask;
	old->sa_flags = from->sa_flags;
	old->sa_restorer = from->sa_restorer;
}

/* Every signal blocked on this thread while the action changes: a handler
 * of the program's that calls sigaction itself cannot run here while we
 * hold PG_LOCK_ACTION. */
static void enter(sigset_t *saved)
{
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, saved);
	pg_lock_take(PG_LOCK_ACTION, -1);
}

static void leave(const sigset_t *saved)
{
	pg_lock_give(PG_LOCK_ACTION);
	pthread_sigmask(SIG_SETMASK, saved, NULL);
}

int pg_signals_sigaction(int sig, const struct sigaction *act, struct sigaction *old, int vforked)
{
	struct sigaction prev;
	sigset_t saved;
	int rc, err;

	if (!report_sig || sig != report_sig)
		return 1;
	if (vforked) {
		/* The child's actions are its own; ours stay as they are. */
		rc = pg_real.sigaction(sig, act, old);
		if (rc == 0 && old && is_ours(old->sa_handler))
			show(old, &dfl);
		return rc;
	}
	enter(&saved);
	rc = pg_real.sigaction(sig, NULL, &prev);
	if (rc == 0 && act)
		rc = pg_real.sigaction(sig, act, NULL);
	err = errno;
	if (rc == 0 && act && act->sa_handler == SIG_DFL)
		install_ours();
	leave(&saved);
	if (rc == 0 && old)
		show(old, is_ours(prev.sa_handler) ? &dfl : &prev);
	errno = err;
	return rc;
}

int pg_signals_signal(int sig, pg_sighandler_t h, pg_sighandler_t (*real)(int, pg_sighandler_t),
		      pg_sighandler_t *prev, int vforked)
{
	sigset_t saved;
	int err;

	if (!report_sig || sig != report_sig)
		return 1;
	/* The real call sets what the program asked for, with exactly glibc's
	 * flags for this flavour (siginterrupt's effect included); what was
	 * ours reads back as the default. */
	if (!vforked)
		enter(&saved);
	*prev = real(sig, h);
	err = errno;
	if (!vforked && *prev != SIG_ERR && h == SIG_DFL)
		install_ours();
	if (!vforked)
		leave(&saved);
	if (is_ours(*prev))
		*prev = dfl.sa_handler;
	errno = err;
	return 0;
}

/* glibc's sigset() step by step (sysdeps/posix/sigset.c), with the action
 * going through pg_signals_sigaction: the real sigset() would change this
 * thread's mask, which enter() has to hold still. */
int pg_signals_sigset(int sig, pg_sighandler_t h, pg_sighandler_t *prev, int vforked)
{
	struct sigaction act, oact;
	sigset_t set, oset;

	if (!report_sig || sig != report_sig)
		return 1;
	*prev = SIG_ERR;
	sigemptyset(&set);
	sigaddset(&set, sig);
	if (h == SIG_HOLD) {
		if (sigprocmask(SIG_BLOCK, &set, &oset) < 0)
			return 0;
		if (sigismember(&oset, sig)) {
			*prev = SIG_HOLD;
			return 0;
		}
		if (pg_signals_sigaction(sig, NULL, &oact, vforked) == 0)
			*prev = oact.sa_handler;
		return 0;
	}
	memset(&act, 0, sizeof(act));
	act.sa_handler = h;
	sigemptyset(&act.sa_mask);
	if (pg_signals_sigaction(sig, &act, &oact, vforked) < 0 ||
	    sigprocmask(SIG_UNBLOCK, &set, &oset) < 0)
		return 0;
	*prev = sigismember(&oset, sig) ? SIG_HOLD : oact.sa_handler;
	return 0;
}

void pg_signals_post(unsigned req)
{
	int saved = errno;

	__atomic_or_fetch(&requests, req, __ATOMIC_RELEASE);
	sem_post(&sem);
	errno = saved;
}

unsigned pg_signals_wait(int timeout_ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	while (sem_timedwait(&sem, &ts) < 0 && errno == EINTR)
		;
	/* Requests that came meanwhile are answered together. */
	while (sem_trywait(&sem) == 0)
		;
	return __atomic_exchange_n(&requests, 0, __ATOMIC_ACQ_REL);
}

void pg_signals_fork_child(void)
{
	/* The parent's requests are the parent's. */
	requests = 0;
	sem_init(&sem, 0, 0);
}
