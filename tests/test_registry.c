/* The registry as pure bookkeeping: fake descriptors and inodes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "shim/common.h"
#include "shim/registry.h"
#include "shim/report.h"

#include <fcntl.h>
#include <unistd.h>

#include <errno.h>
#include <pthread.h>
#include <string.h>

static int reset(void **state)
{
	(void)state;
	pg_alloc_set_fault(0);
	pg_registry_reset();
	return 0;
}

static const struct pg_site *site_of(uintptr_t a, uintptr_t b)
{
	uintptr_t f[2] = { a, b };

	return pg_site_intern(f, 2);
}

static struct pg_totals totals(void)
{
	struct pg_totals t;

	pg_registry_totals(&t);
	return t;
}

static size_t live_handles(void)
{
	struct pg_snap *s;
	size_t n;

	assert_int_equal(pg_registry_snapshot(&s, &n), 0);
	pg_free(s);
	return n;
}

static void close_fd(int fd, enum pg_close_outcome how, const struct pg_site *site)
{
	struct pg_closing c;

	assert_int_equal(pg_registry_close_begin(fd, &c), PG_ENTRY_LIVE);
	pg_registry_close_end(&c, how, site);
}

static void test_registry_sites_are_deduplicated(void **state)
{
	const struct pg_site *a = site_of(1, 2), *b = site_of(1, 2), *c = site_of(2, 1);
	uintptr_t none[1];

	(void)state;
	assert_ptr_equal(a, b);
	assert_ptr_not_equal(a, c);
	assert_int_equal(a->depth, 2);
	assert_int_equal(a->frames[0], 1);
	assert_ptr_equal(pg_site_intern(none, 0), pg_site_intern(none, 0));
	assert_ptr_not_equal(pg_site_intern(none, 0), a);
}

static void test_registry_add_and_close(void **state)
{
	const struct pg_site *s = site_of(10, 20);

	(void)state;
	assert_int_equal(pg_registry_add(5, 1005, s, 1, 2, 1, 6, 0), 0);
	assert_int_equal(pg_registry_add(6, 1006, s, 1, 2, 1, 6, 0), 0);
	assert_true(pg_registry_is_tracked(5));
	assert_int_equal(s->created, 2);
	assert_int_equal(pg_registry_open(), 2);
	close_fd(5, PG_CLOSED, NULL);
	assert_false(pg_registry_is_tracked(5));
	assert_int_equal(totals().closed, 1);
	assert_int_equal(pg_registry_open(), 1);
	assert_int_equal(live_handles(), 1);
}

static void test_registry_dup_keeps_socket_open_until_last_handle(void **state)
{
	const struct pg_site *s = site_of(10, 21);
	struct pg_snap *snap;
	size_t n;

	(void)state;
	assert_int_equal(pg_registry_add(7, 77, s, 1, 2, 1, 6, 0), 0);
	assert_int_equal(pg_registry_dup(7, 40), 0);
	assert_int_equal(pg_registry_dup(99, 41), -ENOENT);
	assert_int_equal(live_handles(), 2);
	close_fd(7, PG_CLOSED, NULL);
	assert_int_equal(totals().closed, 0);
	assert_int_equal(pg_registry_open(), 1);
	assert_int_equal(pg_registry_snapshot(&snap, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(snap[0].fd, 40);
	assert_int_equal(snap[0].inode, 77);
	assert_ptr_equal(snap[0].site, s);
	pg_free(snap);
	close_fd(40, PG_CLOSED, NULL);
	assert_int_equal(totals().closed, 1);
	assert_int_equal(pg_registry_open(), 0);
}

static void test_registry_reused_number_counts_closed_unseen(void **state)
{
	const struct pg_site *s = site_of(1, 3);

	(void)state;
	pg_registry_add(8, 1, s, 1, 2, 1, 6, 0);
	/* socket() returned 8 again: the first was closed behind our back */
	pg_registry_add(8, 2, s, 1, 2, 1, 6, 0);
	assert_int_equal(totals().closed_unseen, 1);
	assert_int_equal(totals().created, 2);
	assert_int_equal(pg_registry_open(), 1);
	/* dup2 onto a stale record likewise */
	pg_registry_add(9, 3, s, 1, 2, 1, 6, 0);
	pg_registry_dup(9, 8);
	assert_int_equal(totals().closed_unseen, 2);
	assert_int_equal(pg_registry_open(), 1);
}

static void test_registry_close_outcomes(void **state)
{
	const struct pg_site *s = site_of(1, 4);
	struct pg_closing c;

	(void)state;
	pg_registry_add(3, 1, s, 1, 2, 1, 6, 0);
	/* failed call: the handle goes back */
	close_fd(3, PG_NOT_CLOSED, NULL);
	assert_true(pg_registry_is_tracked(3));
	assert_int_equal(pg_registry_open(), 1);
	/* EBADF: it was gone already */
	close_fd(3, PG_WAS_GONE, NULL);
	assert_int_equal(totals().closed_unseen, 1);
	assert_int_equal(totals().closed, 0);
	/* no tombstone for a close we did not see */
	assert_int_equal(pg_registry_close_begin(3, &c), PG_ENTRY_NONE);
}

static void test_registry_tombstone_for_double_close(void **state)
{
	const struct pg_site *made = site_of(1, 5), *closer = site_of(2, 5), *c1, *c2;
	struct pg_closing c;

	(void)state;
	pg_registry_add(11, 1, made, 1, 2, 1, 6, 0);
	close_fd(11, PG_CLOSED, closer);
	assert_int_equal(pg_registry_close_begin(11, &c), PG_ENTRY_TOMB);
	assert_int_equal(pg_registry_tombstone(11, &c1, &c2), 1);
	assert_ptr_equal(c1, made);
	assert_ptr_equal(c2, closer);
	pg_registry_double_close(11, c1, c2, site_of(3, 5));
	pg_registry_double_close(11, c1, c2, site_of(3, 5));
	assert_int_equal(totals().double_closes, 2);
	assert_non_null(pg_registry_double_closes());
	assert_int_equal(pg_registry_double_closes()->count, 2);
	assert_null(pg_registry_double_closes()->next);
	/* a successful close of the number means it was reused: forget */
	pg_registry_forget(11);
	assert_int_equal(pg_registry_tombstone(11, &c1, &c2), 0);
	/* a new socket on the number replaces the tombstone */
	pg_registry_add(12, 1, made, 1, 2, 1, 6, 0);
	close_fd(12, PG_CLOSED, closer);
	pg_registry_add(12, 2, made, 1, 2, 1, 6, 0);
	assert_int_equal(pg_registry_tombstone(12, &c1, &c2), 0);
}

static void test_registry_drop_stale_respects_seq(void **state)
{
	const struct pg_site *s = site_of(1, 6);
	struct pg_snap *snap;
	size_t n;

	(void)state;
	pg_registry_add(20, 1, s, 1, 2, 1, 6, 0);
	assert_int_equal(pg_registry_snapshot(&snap, &n), 0);
	/* a new socket took the number after the snapshot: not stale */
	pg_registry_add(20, 2, s, 1, 2, 1, 6, 0);
	assert_int_equal(totals().closed_unseen, 1);
	pg_registry_drop_stale(20, snap[0].seq);
	assert_int_equal(totals().closed_unseen, 1);
	assert_true(pg_registry_is_tracked(20));
	pg_free(snap);
	assert_int_equal(pg_registry_snapshot(&snap, &n), 0);
	pg_registry_drop_stale(20, snap[0].seq);
	/* exactly once */
	pg_registry_drop_stale(20, snap[0].seq);
	assert_int_equal(totals().closed_unseen, 2);
	assert_false(pg_registry_is_tracked(20));
	pg_free(snap);
}

static void test_registry_fds_in_range(void **state)
{
	const struct pg_site *s = site_of(1, 7);
	int fds[8];

	(void)state;
	for (int fd = 3; fd < 40; fd += 5)
		pg_registry_add(fd, (uint64_t)fd, s, 1, 2, 1, 6, 0);
	assert_int_equal(pg_registry_fds_in(10, 30, fds, 8), 4); /* 13 18 23 28 */
	assert_int_equal(pg_registry_fds_in(0, 1 << 30, fds, 2), 8);
	assert_int_equal(pg_registry_fds_in(39, 100, fds, 8), 0);
}

static void test_registry_fork_child_inherits(void **state)
{
	const struct pg_site *s = site_of(1, 8);
	struct pg_snap *snap;
	size_t n;

	(void)state;
	pg_registry_add(3, 1, s, 1, 2, 1, 6, 0);
	pg_registry_add(4, 2, s, 1, 2, 1, 6, 0);
	pg_registry_dup(4, 5);
	close_fd(3, PG_CLOSED, NULL);
	pg_registry_fork_prepare();
	pg_registry_fork_child();
	assert_int_equal(totals().inherited, 1);
	assert_int_equal(totals().created, 0);
	assert_int_equal(totals().closed, 0);
	assert_int_equal(s->created, 0);
	assert_int_equal(pg_registry_open(), 1);
	assert_int_equal(pg_registry_snapshot(&snap, &n), 0);
	assert_int_equal(n, 2);
	assert_true(snap[0].flags & PG_SOCK_INHERITED);
	assert_ptr_equal(snap[0].site, s); /* stack kept */
	pg_free(snap);
	/* the parent's close is not the child's: no tombstone */
	const struct pg_site *a, *b;
	assert_int_equal(pg_registry_tombstone(3, &a, &b), 0);
}

static void test_registry_out_of_memory_is_counted(void **state)
{
	const struct pg_site *s = site_of(1, 9);

	(void)state;
	pg_alloc_set_fault(1); /* every allocation fails */
	assert_int_equal(pg_registry_add(3, 1, s, 1, 2, 1, 6, 0), -ENOMEM);
	assert_null(site_of(1, 99));
	pg_alloc_set_fault(0);
	assert_int_equal(totals().lost, 1);
	assert_int_equal(totals().created, 0);
	assert_false(pg_registry_is_tracked(3));
	assert_int_equal(pg_registry_open(), 0);
}

struct worker {
	int base;
	int rounds;
};

static void *churn(void *arg)
{
	struct worker *w = arg;
	const struct pg_site *s = site_of(77, (uintptr_t)w->base);

	for (int i = 0; i < w->rounds; i++) {
		int fd = w->base + i % 64;
		struct pg_closing c;
		pg_registry_add(fd, (uint64_t)i + 1, s, 1, 2, 1, 6, 0);
		pg_registry_dup(fd, fd + 1000);
		if (pg_registry_close_begin(fd, &c) == PG_ENTRY_LIVE)
			pg_registry_close_end(&c, PG_CLOSED, NULL);
		if (pg_registry_close_begin(fd + 1000, &c) == PG_ENTRY_LIVE)
			pg_registry_close_end(&c, PG_CLOSED, NULL);
	}
	return NULL;
}

static volatile int reporting;

/* Reports written while the workers churn (what a report signal does). */
static void *reporter(void *arg)
{
	struct pg_config cfg;
	struct pg_report_opts o;
	int fd = open("/dev/null", O_WRONLY);

	(void)arg;
	pg_config_defaults(&cfg);
	cfg.symbolize = 0;
	cfg.format = PG_FORMAT_JSON;
	memset(&o, 0, sizeof(o));
	o.cfg = &cfg;
	o.fd = fd;
	o.exe = "x";
	o.close_fn = close;
	while (__atomic_load_n(&reporting, __ATOMIC_ACQUIRE))
		pg_report_write(&o, NULL);
	close(fd);
	return NULL;
}

static void test_registry_threads_lose_nothing(void **state)
{
	pthread_t t[4], rep;
	struct worker w[4];
	/* smaller under ThreadSanitizer, which is ~10x slower */
	int rounds = getenv("PG_TSAN") ? 5000 : 50000;

	(void)state;
	__atomic_store_n(&reporting, 1, __ATOMIC_RELEASE);
	pthread_create(&rep, NULL, reporter, NULL);
	for (int i = 0; i < 4; i++) {
		w[i].base = 100 + i * 100;
		w[i].rounds = rounds;
		pthread_create(&t[i], NULL, churn, &w[i]);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	__atomic_store_n(&reporting, 0, __ATOMIC_RELEASE);
	pthread_join(rep, NULL);
	assert_int_equal(totals().created, 4 * rounds);
	assert_int_equal(totals().closed, 4 * rounds);
	assert_int_equal(totals().closed_unseen, 0);
	assert_int_equal(pg_registry_open(), 0);
	assert_int_equal(live_handles(), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_registry_sites_are_deduplicated, reset),
		cmocka_unit_test_setup(test_registry_add_and_close, reset),
		cmocka_unit_test_setup(test_registry_dup_keeps_socket_open_until_last_handle,
				       reset),
		cmocka_unit_test_setup(test_registry_reused_number_counts_closed_unseen, reset),
		cmocka_unit_test_setup(test_registry_close_outcomes, reset),
		cmocka_unit_test_setup(test_registry_tombstone_for_double_close, reset),
		cmocka_unit_test_setup(test_registry_drop_stale_respects_seq, reset),
		cmocka_unit_test_setup(test_registry_fds_in_range, reset),
		cmocka_unit_test_setup(test_registry_fork_child_inherits, reset),
		cmocka_unit_test_setup(test_registry_out_of_memory_is_counted, reset),
		cmocka_unit_test_setup(test_registry_threads_lose_nothing, reset),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
