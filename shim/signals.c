/* The report signal.
 *
 * Our handler stays installed; the program's own action for that signal is
 * emulated: sigaction() and friends store it and hand back the previous one,
 * and our handler calls it after asking for a report. SIG_IGN is honoured by
 * really ignoring the signal. The handler only does async-signal-safe work
 * (sem_post); the report is written by our own thread, which blocks every
 * signal so that they all go to the program's threads. */
#include "shim/signals.h"

#include "shim/common.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <string.h>

static int report_sig;
static struct sigaction prog; /* the program's action for report_sig */
static sem_t sem;
static int thread_state; /* 0 none, 1 running */
static int pending; /* a request that came before the thread */
static int requested; /* the signal asked for a report */
static void (*wake_fn)(int report);
static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER;

static void on_signal(int sig, siginfo_t *si, void *uc)
{
	int saved = errno;
	struct sigaction p = prog;

	__atomic_store_n(&requested, 1, __ATOMIC_RELEASE);
	if (__atomic_load_n(&thread_state, __ATOMIC_ACQUIRE))
		sem_post(&sem);
	else
		__atomic_store_n(&pending, 1, __ATOMIC_RELEASE);
	if (p.sa_handler != SIG_DFL && p.sa_handler != SIG_IGN) {
		/* SA_RESETHAND: the program's action is reset on delivery, to
		 * SIG_DFL, which for us means "report only". */
		if (p.sa_flags & SA_RESETHAND)
			prog.sa_handler = SIG_DFL;
		errno = saved;
		if (p.sa_flags & SA_SIGINFO)
			p.sa_sigaction(sig, si, uc);
		else
			p.sa_handler(sig);
		saved = errno;
	}
	errno = saved;
}

/* The kernel-level action that stands for the program's action p. */
static int install(const struct sigaction *p)
{
	struct sigaction a;

	if (p->sa_handler == SIG_IGN)
		return pg_real.sigaction(report_sig, p, NULL);
	memset(&a, 0, sizeof(a));
	a.sa_sigaction = on_signal;
	a.sa_mask = p->sa_mask;
	a.sa_flags = SA_SIGINFO | SA_RESTART | (p->sa_flags & (SA_ONSTACK | SA_NODEFER));
	return pg_real.sigaction(report_sig, &a, NULL);
}

void pg_signals_init(int sig, void (*on_wake)(int report))
{
	struct sigaction cur;

	wake_fn = on_wake;
	sem_init(&sem, 0, 0);
	if (sig <= 0 || pg_real.sigaction(sig, NULL, &cur) < 0)
		return;
	report_sig = sig;
	prog = cur;
	/* Ignored since before exec: the user asked for no signal here. */
	if (cur.sa_handler == SIG_IGN && !(cur.sa_flags & SA_SIGINFO))
		return;
	install(&prog);
}

static void *report_thread(void *arg)
{
	(void)arg;
	for (;;) {
		while (sem_wait(&sem) < 0 && errno == EINTR)
			;
		/* Requests that came meanwhile are answered by this report. */
		while (sem_trywait(&sem) == 0)
			;
		pg_inside++;
		wake_fn(__atomic_exchange_n(&requested, 0, __ATOMIC_ACQ_REL));
		pg_inside--;
	}
	return NULL;
}

void pg_signals_start_thread(void)
{
	pthread_t t;
	pthread_attr_t attr;
	sigset_t all, old;

	if (PG_LIKELY(__atomic_load_n(&thread_state, __ATOMIC_ACQUIRE)) || !report_sig)
		return;
	pthread_mutex_lock(&start_lock);
	if (!thread_state) {
		/* The thread inherits this mask: it takes no signal at all. */
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		/* libdw walks DWARF scopes recursively during a signal report;
		 * address space only, nothing resident until used. */
		pthread_attr_setstacksize(&attr, 2 << 20);
		if (pthread_create(&t, &attr, report_thread, NULL) == 0) {
			pthread_setname_np(t, "portguard");
			__atomic_store_n(&thread_state, 1, __ATOMIC_RELEASE);
			if (__atomic_exchange_n(&pending, 0, __ATOMIC_ACQ_REL))
				sem_post(&sem);
		}
		pthread_attr_destroy(&attr);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	pthread_mutex_unlock(&start_lock);
}

int pg_signals_wake(void)
{
	if (!__atomic_load_n(&thread_state, __ATOMIC_ACQUIRE))
		return -ESRCH;
	sem_post(&sem);
	return 0;
}

int pg_signals_sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
	sigset_t block, saved;
	struct sigaction prev;

	if (!report_sig || sig != report_sig)
		return -1;
	/* Our handler must not read prog half-written. */
	sigemptyset(&block);
	sigaddset(&block, sig);
	pthread_sigmask(SIG_BLOCK, &block, &saved);
	prev = prog;
	if (act) {
		if (install(act) < 0) {
			int err = errno;
			pthread_sigmask(SIG_SETMASK, &saved, NULL);
			errno = err;
			return -2;
		}
		prog = *act;
	}
	pthread_sigmask(SIG_SETMASK, &saved, NULL);
	if (old)
		*old = prev;
	return 0;
}

int pg_signals_signal(int sig, pg_sighandler_t h, enum pg_sigflavor flavor, pg_sighandler_t *prev)
{
	struct sigaction a, old;
	sigset_t set, was;
	int blocked = 0;

	if (!report_sig || sig != report_sig)
		return -1;
	memset(&a, 0, sizeof(a));
	a.sa_handler = h;
	switch (flavor) {
	case PG_SIG_BSD: /* glibc signal(): BSD semantics */
		sigaddset(&a.sa_mask, sig);
		a.sa_flags = SA_RESTART;
		break;
	case PG_SIG_SYSV: a.sa_flags = SA_RESETHAND | SA_NODEFER; break;
	case PG_SIG_SET: /* sigset(): the signal is unblocked, or held */
		sigemptyset(&set);
		sigaddset(&set, sig);
		pthread_sigmask(SIG_BLOCK, NULL, &was);
		blocked = sigismember(&was, sig);
		if (h == SIG_HOLD) {
			pthread_sigmask(SIG_BLOCK, &set, NULL);
			pg_signals_sigaction(sig, NULL, &old);
			*prev = blocked ? SIG_HOLD : old.sa_handler;
			return 0;
		}
		sigaddset(&a.sa_mask, sig);
		break;
	}
	if (pg_signals_sigaction(sig, &a, &old) < 0) {
		*prev = SIG_ERR;
		return 0;
	}
	if (flavor == PG_SIG_SET) {
		pthread_sigmask(SIG_UNBLOCK, &set, NULL);
		*prev = blocked ? SIG_HOLD : old.sa_handler;
		return 0;
	}
	*prev = old.sa_handler;
	return 0;
}

void pg_signals_fork_child(void)
{
	int had = thread_state;

	/* Only the forking thread survives fork: start ours again. */
	thread_state = 0;
	pending = 0;
	requested = 0;
	/* Another thread of the parent may have held it at fork. */
	pthread_mutex_init(&start_lock, NULL);
	sem_init(&sem, 0, 0);
	if (had)
		pg_signals_start_thread();
}
