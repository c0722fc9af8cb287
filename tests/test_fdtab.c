/* The registry (shim/fdtab.c) as pure bookkeeping: fake descriptors and
 * inodes, its cuts, its counts, threads, and memory running out. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "shim/arena.h"
#include "shim/common.h"
#include "shim/fdtab.h"
#include "shim/locks.h"
#include "shim/sites.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PGT_LEN_(a) (sizeof(a) / sizeof((a)[0]))

static double pgt_now_(void)
{
	return pg_now_ns() / 1e9;
}

static int reset(void **state)
{
	(void)state;
	pg_arena_set_fault(0);
	pg_fdtab_reset();
	pg_sites_reset();
	return 0;
}

static uint32_t site_of(uintptr_t a, uintptr_t b)
{
	uintptr_t f[2] = { a, b };

	return pg_sites_intern(f, 2);
}

static int add(int fd, uint64_t inode, uint32_t site, unsigned flags)
{
	struct pg_sock_facts f = { .inode = inode,
				   .created_ns = 1,
				   .site = site,
				   .domain = 2,
				   .type = 1,
				   .protocol = 0,
				   .flags = flags,
				   .via = PG_VIA_SOCKET };
	struct pg_fdtab_gone gone;

	return pg_fdtab_add(fd, &f, &gone);
}

/* at_ns > 0: the interpreter's finalizer closes it, at that time. */
static int close_as(int fd, enum pg_close_outcome how, uint32_t site, int64_t at_ns)
{
	struct pg_fdtab_close c;
	struct pg_fdtab_gone gone;
	int what = pg_fdtab_close_begin(fd, &c, 0);

	if (at_ns > 0) {
		pg_fdtab_close_mark_finalizer(&c);
		c.closed_ns = at_ns;
	}
	pg_fdtab_close_end(&c, how, site, &gone);
	return what;
}

static int close_fd(int fd, enum pg_close_outcome how, uint32_t site)
{
	return close_as(fd, how, site, 0);
}

static struct pg_snap snap[4096];

static struct pg_cut cut(void)
{
	struct pg_cut c;

	pg_fdtab_cut(snap, PGT_LEN_(snap), &c);
	return c;
}
/* The identity every report relies on, at a cut. */
static int adds_up(const struct pg_cut *c)
{
	return c->n.created + c->n.inherited + c->n.received ==
	       c->n.closed + c->n.closed_unseen + c->sockets;
}

static void test_fdtab_sites_are_deduplicated(void **state)
{
	(void)state;
	assert_int_equal(site_of(1, 2), site_of(1, 2));
	assert_int_not_equal(site_of(1, 2), site_of(2, 1));
	assert_int_equal(pg_sites_intern(NULL, 0), 0);
	assert_int_equal(pg_sites_get(site_of(7, 8))->frames[1], 8);
	assert_int_equal(pg_sites_count(), 3);
}

static void test_fdtab_add_and_close(void **state)
{
	uint32_t s = site_of(1, 2), cs = site_of(3, 4);
	struct pg_cut c;

	(void)state;
	assert_int_equal(add(5, 100, s, 0), 0);
	c = cut();
	assert_int_equal(c.listed, 1);
	assert_int_equal(snap[0].fd, 5);
	assert_int_equal(snap[0].inode, 100);
	assert_int_equal(snap[0].site, s);
	assert_int_equal(c.n.created, 1);
	assert_int_equal(close_fd(5, PG_CLOSED, cs), PG_ENTRY_LIVE);
	c = cut();
	assert_int_equal(c.listed, 0);
	assert_int_equal(c.n.closed, 1);
	assert_true(adds_up(&c));
	/* untracked: nothing */
	assert_int_equal(close_fd(77, PG_CLOSED, cs), PG_ENTRY_NONE);
}

static void test_fdtab_dup_keeps_socket_open_until_last(void **state)
{
	uint32_t s = site_of(1, 2), d = site_of(9, 9);
	struct pg_fdtab_gone gone;
	struct pg_cut c;

	(void)state;
	add(3, 10, s, 0);
	assert_int_equal(pg_fdtab_dup(3, 20, d, PG_VIA_DUP2, &gone), 0);
	assert_int_equal(pg_fdtab_dup(99, 21, d, PG_VIA_DUP, &gone), -ENOENT);
	c = cut();
	assert_int_equal(c.listed, 2);
	assert_int_equal(c.sockets, 1);
	assert_int_equal(snap[1].fd, 20);
	assert_int_equal(snap[1].via, PG_VIA_DUP2);
	assert_int_equal(snap[1].desc_site, d);
	assert_ptr_equal(snap[0].sock, snap[1].sock);
	close_fd(3, PG_CLOSED, 0);
	c = cut();
	assert_int_equal(c.n.closed, 0); /* one descriptor is left */
	assert_int_equal(c.sockets, 1);
	close_fd(20, PG_CLOSED, 0);
	c = cut();
	assert_int_equal(c.n.closed, 1);
	assert_int_equal(c.sockets, 0);
	assert_true(adds_up(&c));
}

/* A finalizer's close (SPEC section 2): closed and finalized, kept with
 * its facts for the report, only when the socket itself went; a fork
 * child forgets its parent's. */
static void test_fdtab_finalized_kept_and_counted(void **state)
{
	uint32_t s = site_of(1, 2), t = site_of(5, 6);
	struct pg_fdtab_gone gone;
	struct pg_cut c;

	(void)state;
	add(5, 100, s, 0);
	add(6, 101, t, 0);
	assert_int_equal(pg_fdtab_dup(6, 9, t, PG_VIA_DUP, &gone), 0);
	assert_int_equal(close_as(5, PG_CLOSED, 0, 77), PG_ENTRY_LIVE);
	close_as(9, PG_CLOSED, 0, 78); /* 6 still names the socket: not gone */
	close_fd(6, PG_CLOSED, 0);
	c = cut();
	assert_int_equal(c.n.closed, 2);
	assert_int_equal(c.n.finalized, 1);
	assert_int_equal(c.fins_listed, 1);
	assert_true(adds_up(&c));
	for (int i = 0, seen = 0; i < PG_SHARDS; i++) {
		for (const struct pg_final *f = c.fins[i]; f; f = f->next) {
			assert_int_equal(seen++, 0);
			assert_int_equal(f->site, s);
			assert_int_equal(f->closed_ns, 77);
			assert_int_equal(f->created_ns, 1);
			assert_int_equal(f->domain, 2);
		}
	}
	pg_locks_fork_prepare();
	pg_fdtab_fork_child();
	pg_locks_fork_child();
	c = cut();
	assert_int_equal(c.n.finalized, 0);
	assert_int_equal(c.fins_listed, 0);
}

static void test_fdtab_reused_number_counts_closed_unseen(void **state)
{
	struct pg_cut c;

	(void)state;
	add(4, 1, 0, 0);
	/* closed where no wrapper saw it, and the number came back */
	add(4, 2, 0, 0);
	c = cut();
	assert_int_equal(c.n.created, 2);
	assert_int_equal(c.n.closed_unseen, 1);
	assert_int_equal(c.listed, 1);
	assert_int_equal(snap[0].inode, 2);
	assert_true(adds_up(&c));
}

static void test_fdtab_close_outcomes(void **state)
{
	struct pg_fdtab_close cl;
	struct pg_fdtab_gone gone;
	struct pg_cut c;

	(void)state;
	add(6, 1, 0, 0);
	/* dup2 that failed: still there */
	assert_int_equal(close_fd(6, PG_NOT_CLOSED, 0), PG_ENTRY_LIVE);
	assert_int_equal(cut().listed, 1);
	/* EBADF: it had been closed behind our back */
	close_fd(6, PG_WAS_GONE, 0);
	c = cut();
	assert_int_equal(c.n.closed_unseen, 1);
	assert_int_equal(c.n.closed, 0);
	/* A close under way is still open at a cut taken meanwhile. */
	add(7, 1, 0, 0);
	assert_int_equal(pg_fdtab_close_begin(7, &cl, 0), PG_ENTRY_LIVE);
	c = cut();
	assert_int_equal(c.listed, 1);
	assert_true(adds_up(&c));
	/* ... and a new socket on its number before the close ends (another
	 * thread's socket() right after the real close): the old one counted
	 * closed, once, by the new one's record (its close was claimed, so it
	 * did happen); the close's end leaves the new one alone. */
	add(7, 2, 0, 0);
	c = cut();
	assert_int_equal(c.n.closed, 1);
	assert_true(adds_up(&c));
	pg_fdtab_close_end(&cl, PG_CLOSED, 0, &gone);
	c = cut();
	assert_int_equal(c.n.closed, 1);
	assert_int_equal(c.n.closed_unseen, 1);
	assert_int_equal(c.listed, 1);
	assert_int_equal(snap[0].inode, 2);
	assert_true(adds_up(&c));
}

static void test_fdtab_double_close(void **state)
{
	uint32_t made = site_of(1, 1), first = site_of(2, 2), again = site_of(3, 3),
		 dupped = site_of(4, 4);
	struct pg_fdtab_gone gone;
	struct pg_cut c;

	(void)state;
	add(8, 1, made, 0);
	close_fd(8, PG_CLOSED, first);
	/* EBADF on a number we closed, nothing reopened since */
	assert_int_equal(close_fd(8, PG_WAS_GONE, again), PG_ENTRY_TOMB);
	c = cut();
	assert_int_equal(c.n.double_closes, 1);
	assert_int_equal(c.dcs[8]->created, made);
	assert_int_equal(c.dcs[8]->closed, first);
	assert_int_equal(c.dcs[8]->again, again);
	/* The "created" stack of a dup'ed descriptor is its dup. */
	add(9, 2, made, 0);
	pg_fdtab_dup(9, 73, dupped, PG_VIA_DUP, &gone);
	close_fd(73, PG_CLOSED, first);
	close_fd(73, PG_WAS_GONE, again);
	c = cut();
	assert_int_equal(c.dcs[73 % PG_SHARDS]->created, dupped);
	/* Reused by something untracked and closed: forgotten. */
	add(10, 3, made, 0);
	close_fd(10, PG_CLOSED, first);
	close_fd(10, PG_CLOSED, again);
	close_fd(10, PG_WAS_GONE, again);
	assert_int_equal(cut().n.double_closes, 2);
}

static void test_fdtab_reconcile(void **state)
{
	struct pg_fdtab_gone gone;
	struct pg_snap old;
	struct pg_cut c;
	int sock_gone;

	(void)state;
	add(11, 0, 0, 0);
	c = cut();
	old = snap[0];
	pg_fdtab_learn_inode(&old, 555);
	cut();
	assert_int_equal(snap[0].inode, 555);
	/* The kernel says it is gone: dropped, closed_unseen. */
	assert_int_equal(pg_fdtab_drop(&old, &sock_gone, &gone), 1);
	assert_true(sock_gone);
	c = cut();
	assert_int_equal(c.n.closed_unseen, 1);
	assert_true(adds_up(&c));
	/* Changed since the cut: left alone. */
	add(12, 1, 0, 0);
	cut();
	old = snap[0];
	close_fd(12, PG_CLOSED, 0);
	add(12, 2, 0, 0);
	assert_int_equal(pg_fdtab_drop(&old, &sock_gone, &gone), 0);
	assert_int_equal(cut().listed, 1);
}

/* A descriptor a close() has claimed is the close's: reconciliation
 * leaves it, and a new socket on the number counts it closed. */
static void test_fdtab_claimed_close(void **state)
{
	struct pg_fdtab_close cl;
	struct pg_fdtab_gone gone;
	struct pg_snap old;
	struct pg_cut c;
	int sock_gone;

	(void)state;
	add(13, 1, 0, 0);
	cut();
	old = snap[0];
	assert_int_equal(pg_fdtab_close_begin(13, &cl, 0), PG_ENTRY_LIVE);
	/* A second close of the same number meanwhile is not followed. */
	assert_int_equal(close_fd(13, PG_CLOSED, 0), PG_ENTRY_NONE);
	assert_int_equal(pg_fdtab_drop(&old, &sock_gone, &gone), 0);
	pg_fdtab_close_end(&cl, PG_CLOSED, 0, &gone);
	c = cut();
	assert_int_equal(c.n.closed, 1);
	assert_int_equal(c.n.closed_unseen, 0);
	assert_int_equal(c.listed, 0);
	/* Displaced while claimed, and then the close says it failed: the
	 * record is freed, nothing counted twice, the new socket stays. */
	add(14, 2, 0, 0);
	assert_int_equal(pg_fdtab_close_begin(14, &cl, 0), PG_ENTRY_LIVE);
	add(14, 3, 0, 0);
	pg_fdtab_close_end(&cl, PG_NOT_CLOSED, 0, &gone);
	c = cut();
	assert_int_equal(c.n.closed, 2);
	assert_int_equal(c.listed, 1);
	assert_int_equal(snap[0].inode, 3);
	assert_true(adds_up(&c));
	/* A failed close gives the descriptor back to reconciliation. */
	old = snap[0];
	assert_int_equal(close_fd(14, PG_NOT_CLOSED, 0), PG_ENTRY_LIVE);
	assert_int_equal(pg_fdtab_drop(&old, &sock_gone, &gone), 1);
	c = cut();
	assert_int_equal(c.n.closed_unseen, 1);
	assert_true(adds_up(&c));
}

static void test_fdtab_fds_in_range(void **state)
{
	int out[8];

	(void)state;
	add(3, 1, 0, 0);
	add(5, 2, 0, 0);
	add(5000, 3, 0, 0);
	assert_int_equal(pg_fdtab_fds_in(4, 6000, out, 8), 2);
	assert_int_equal(out[0], 5);
	assert_int_equal(out[1], 5000);
	assert_int_equal(pg_fdtab_fds_in(0, 1 << 29, out, 1), 3);
}

/* Scans stop at the highest slot a chunk ever had written: the last slot
 * of a chunk, the first of the next, a dup far up, and a number written
 * after a reset are all still found, by the cut and by a range. */
static void test_fdtab_scans_reach_each_chunks_top(void **state)
{
	struct pg_fdtab_gone gone;
	struct pg_cut c;
	int out[8];

	(void)state;
	add(4095, 1, 0, 0);
	add(4096, 2, 0, 0);
	assert_int_equal(pg_fdtab_dup(4096, 12287, 0, PG_VIA_DUP, &gone), 0);
	c = cut();
	assert_int_equal(c.listed, 3);
	assert_int_equal(snap[0].fd, 4095);
	assert_int_equal(snap[1].fd, 4096);
	assert_int_equal(snap[2].fd, 12287);
	assert_int_equal(pg_fdtab_fds_in(0, 1 << 20, out, 8), 3);
	assert_int_equal(out[2], 12287);
	pg_fdtab_reset();
	assert_int_equal(cut().listed, 0);
	add(4000, 3, 0, 0);
	c = cut();
	assert_int_equal(c.listed, 1);
	assert_int_equal(snap[0].fd, 4000);
}

static void test_fdtab_fork_child_inherits(void **state)
{
	struct pg_fdtab_close cl;
	struct pg_fdtab_gone gone;
	struct pg_cut c;

	(void)state;
	add(3, 1, site_of(1, 2), 0);
	pg_fdtab_dup(3, 4, 0, PG_VIA_DUP, &gone);
	add(6, 2, 0, 0);
	close_fd(6, PG_CLOSED, 0);
	add(7, 3, 0, 0);
	pg_fdtab_close_begin(7, &cl, 0); /* another thread was closing it at fork */
	pg_locks_fork_prepare();
	pg_fdtab_fork_child();
	pg_locks_fork_child();
	c = cut();
	assert_int_equal(c.n.created, 0);
	assert_int_equal(c.n.closed, 0);
	assert_int_equal(c.n.inherited, 2); /* sockets, not descriptors */
	assert_int_equal(c.sockets, 2);
	assert_true(snap[0].flags & PG_SOCK_INHERITED);
	assert_int_equal(snap[0].site, site_of(1, 2)); /* stacks kept */
	assert_true(adds_up(&c));
	/* the parent's close of 6 is not the child's */
	assert_int_equal(close_fd(6, PG_WAS_GONE, 0), PG_ENTRY_NONE);
}

static void test_fdtab_out_of_memory_is_counted(void **state)
{
	struct pg_cut c;
	int failed = 0;

	(void)state;
	pg_arena_set_fault(2);
	for (int i = 0; i < 2000; i++)
		failed += add(100 + i, (uint64_t)i + 1, 0, 0) < 0;
	pg_arena_set_fault(0);
	c = cut();
	print_message("%d of 2000 not recorded, %lu lost\n", failed,
		      (unsigned long)pg_fdtab_lost());
	assert_true(failed > 0);
	assert_int_equal(pg_fdtab_lost(), failed);
	assert_int_equal(c.n.created, 2000 - failed);
	assert_true(adds_up(&c));
}

/* A lock another thread holds for ever: calls give up after the bound
 * and are counted; one this thread holds (a signal handler on top of the
 * library): at once. */
static void test_fdtab_held_locks_never_deadlock(void **state)
{
	double t0;

	(void)state;
	assert_int_equal(pg_lock_take(PG_LOCK_SHARD0 + 3, -1), 0);
	t0 = pgt_now_();
	assert_int_equal(add(3, 1, 0, 0), -EAGAIN);
	print_message("the lock this thread holds: gave up in %.3f s\n", pgt_now_() - t0);
	assert_true(pgt_now_() - t0 < 0.1);
	pg_lock_give(PG_LOCK_SHARD0 + 3);
	assert_int_equal(pg_fdtab_lost(), 1);
}

struct worker {
	int base, rounds;
};

static void *churn(void *arg)
{
	struct worker *w = arg;
	struct pg_fdtab_gone gone;

	for (int i = 0; i < w->rounds; i++) {
		int fd = w->base + i % 50;
		add(fd, (uint64_t)(w->base * 1000000 + i), 0, 0);
		if (i % 3 == 0)
			pg_fdtab_dup(fd, fd + 50, 0, PG_VIA_DUP, &gone);
		close_fd(fd, PG_CLOSED, 0);
		if (i % 3 == 0)
			close_fd(fd + 50, PG_CLOSED, 0);
	}
	return NULL;
}

static int cutting;
static int cuts, bad_cuts;

static void *cutter(void *arg)
{
	static struct pg_snap buf[4096];

	(void)arg;
	while (__atomic_load_n(&cutting, __ATOMIC_ACQUIRE)) {
		struct pg_cut c;
		pg_fdtab_cut(buf, PGT_LEN_(buf), &c);
		cuts++;
		/* Reports come now and then, not back to back: the shard locks
		 * are not fair, and a freeze on a loop would starve the
		 * workers into their bound (counted lost). */
		usleep(50);
		if (!adds_up(&c))
			bad_cuts++;
	}
	return NULL;
}

/* Threads that share descriptor numbers as the kernel hands them out: a
 * number is free (0) or open (1), a close releases it between its begin and
 * its end, and any thread may open it at once. Every close is counted
 * closed, never closed_unseen, however the calls interleave. */
static int kernel_open[8];

static void *share(void *arg)
{
	int rounds = *(int *)arg, made = 0;

	for (int i = 0; made < rounds && i < rounds * 1000; i++) {
		int fd = 3 + i % 8, zero = 0;
		struct pg_fdtab_close cl;
		struct pg_fdtab_gone gone;
		/* "socket()": take the number if it is free */
		if (!__atomic_compare_exchange_n(&kernel_open[fd - 3], &zero, 1, 0,
						 __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
			continue;
		add(fd, (uint64_t)i + 1, 0, 0);
		made++;
		/* "close()": release it between begin and end */
		pg_fdtab_close_begin(fd, &cl, 0);
		__atomic_store_n(&kernel_open[fd - 3], 0, __ATOMIC_RELEASE);
		pg_fdtab_close_end(&cl, PG_CLOSED, 0, &gone);
	}
	*(int *)arg = made;
	return NULL;
}

static void test_fdtab_threads_share_numbers(void **state)
{
	pthread_t t[4];
	int made[4], total = 0;
	int rounds = getenv("PG_TSAN") ? 5000 : 50000;
	struct pg_cut c;

	(void)state;
	for (int i = 0; i < 4; i++) {
		made[i] = rounds;
		pthread_create(&t[i], NULL, share, &made[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		total += made[i];
	}
	c = cut();
	print_message("%d sockets on 8 shared numbers: %lu closed, %lu closed unseen\n", total,
		      (unsigned long)c.n.closed, (unsigned long)c.n.closed_unseen);
	assert_true(total > 0);
	assert_int_equal(c.n.created, total);
	assert_int_equal(c.n.closed, total);
	assert_int_equal(c.n.closed_unseen, 0);
	assert_int_equal(c.listed, 0);
	assert_int_equal(pg_fdtab_lost(), 0);
}

/* Threads churning and duping while cuts are taken: every cut adds up,
 * and nothing is lost. */
static void test_fdtab_threads_every_cut_adds_up(void **state)
{
	pthread_t t[4], ct;
	struct worker w[4];
	/* smaller under ThreadSanitizer, which is ~10x slower */
	int rounds = getenv("PG_TSAN") ? 5000 : 50000;
	struct pg_cut c;

	(void)state;
	__atomic_store_n(&cutting, 1, __ATOMIC_RELEASE);
	pthread_create(&ct, NULL, cutter, NULL);
	for (int i = 0; i < 4; i++) {
		w[i].base = 100 + i * 200;
		w[i].rounds = rounds;
		pthread_create(&t[i], NULL, churn, &w[i]);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	__atomic_store_n(&cutting, 0, __ATOMIC_RELEASE);
	pthread_join(ct, NULL);
	print_message("%d cuts while 4 threads churned, %d did not add up\n", cuts, bad_cuts);
	assert_true(cuts > 0);
	assert_int_equal(bad_cuts, 0);
	c = cut();
	assert_int_equal(c.n.created, 4 * rounds);
	assert_int_equal(c.n.closed, 4 * rounds);
	assert_int_equal(c.n.closed_unseen, 0);
	assert_int_equal(c.sockets, 0);
	assert_int_equal(pg_fdtab_lost(), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_fdtab_sites_are_deduplicated, reset),
		cmocka_unit_test_setup(test_fdtab_add_and_close, reset),
		cmocka_unit_test_setup(test_fdtab_finalized_kept_and_counted, reset),
		cmocka_unit_test_setup(test_fdtab_scans_reach_each_chunks_top, reset),
		cmocka_unit_test_setup(test_fdtab_dup_keeps_socket_open_until_last, reset),
		cmocka_unit_test_setup(test_fdtab_reused_number_counts_closed_unseen, reset),
		cmocka_unit_test_setup(test_fdtab_close_outcomes, reset),
		cmocka_unit_test_setup(test_fdtab_double_close, reset),
		cmocka_unit_test_setup(test_fdtab_reconcile, reset),
		cmocka_unit_test_setup(test_fdtab_claimed_close, reset),
		cmocka_unit_test_setup(test_fdtab_fds_in_range, reset),
		cmocka_unit_test_setup(test_fdtab_fork_child_inherits, reset),
		cmocka_unit_test_setup(test_fdtab_out_of_memory_is_counted, reset),
		cmocka_unit_test_setup(test_fdtab_held_locks_never_deadlock, reset),
		cmocka_unit_test_setup(test_fdtab_threads_share_numbers, reset),
		cmocka_unit_test_setup(test_fdtab_threads_every_cut_adds_up, reset),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
