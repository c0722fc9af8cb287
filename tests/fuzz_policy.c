/* libFuzzer target for policy/: the input is a policy file. Whatever parses
 * is checked against invariants and an independent matcher; the same bytes
 * then drive a churn state as a stream of events at odd times.
 *
 *   make fuzz    (clang, -fsanitize=fuzzer,address,undefined; the sources
 *                 are this file and policy's .c files)
 *   build/fuzz/fuzz_policy -max_total_time=600 NEW_DIR tests/corpus/policy
 */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "policy/policy.h"

#define CHECK(x)                          \
	do {                              \
		if (!(x))                 \
			__builtin_trap(); \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_FILE "fuzz.policy"

/* A deterministic stream of numbers from the input, for addresses and
 * times: the fuzzer steers them through the bytes it mutates. */
struct rng {
	uint64_t s;
};

static uint64_t rng_next(struct rng *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* The reference matcher: written from docs/policy.md, not from policy.c. */
static int ref_match(const struct pg_policy *p, int family, const uint8_t *addr, uint16_t port)
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	uint8_t a[16];
	uint32_t i;

	memcpy(a, addr, family == AF_INET ? 4 : 16);
	if (family == AF_INET6 && !memcmp(a, mapped, 12)) {
		family = AF_INET;
		memmove(a, a + 12, 4);
	}
	for (i = 0; i < p->npool; i++) {
		const struct pg_policy_dest *d = &p->pool[i].dest;

		if (!d->any_port && d->port != port)
			continue;
		if (d->family == AF_UNSPEC)
			return (int)i;
		if (d->family == family && !memcmp(d->addr, a, family == AF_INET ? 4 : 16))
			return (int)i;
	}
	return -1;
}

static void check_match(const struct pg_policy *p, int family, const uint8_t *addr, uint16_t port)
{
	struct sockaddr_in in;
	struct sockaddr_in6 in6;
	int got;

	if (family == AF_INET) {
		memset(&in, 0, sizeof(in));
		in.sin_family = AF_INET;
		in.sin_port = htons(port);
		memcpy(&in.sin_addr, addr, 4);
		got = pg_policy_match_pool(p, (struct sockaddr *)&in, sizeof(in));
	} else {
		memset(&in6, 0, sizeof(in6));
		in6.sin6_family = AF_INET6;
		in6.sin6_port = htons(port);
		memcpy(&in6.sin6_addr, addr, 16);
		got = pg_policy_match_pool(p, (struct sockaddr *)&in6, sizeof(in6));
	}
	CHECK(got == ref_match(p, family, addr, port));
}

static void check_error(const uint8_t *data, size_t size, const char *err)
{
	char small[24];
	size_t n = strlen(FUZZ_FILE), i, errlen;
	struct pg_policy p;

	/* "FILE:LINE: message", one line. */
	CHECK(!strncmp(err, FUZZ_FILE ":", n + 1));
	i = n + 1;
	CHECK(err[i] >= '1' && err[i] <= '9');
	while (err[i] >= '0' && err[i] <= '9')
		i++;
	CHECK(err[i] == ':' && err[i + 1] == ' ' && err[i + 2] != '\0');
	for (; err[i]; i++)
		CHECK((unsigned char)err[i] >= 0x20 && (unsigned char)err[i] < 0x7f);
	/* A short buffer gets a terminated prefix of the same message. */
	errlen = 1 + size % sizeof(small);
	memset(small, 'Z', sizeof(small));
	CHECK(pg_policy_parse(&p, (const char *)data, size, FUZZ_FILE, small, errlen) == -EINVAL);
	CHECK(strlen(small) == errlen - 1 || !strcmp(small, err));
	CHECK(!strncmp(small, err, strlen(small)));
	for (i = errlen; i < sizeof(small); i++)
		CHECK(small[i] == 'Z');
	CHECK(pg_policy_is_empty(&p));
}

static void check_policy(const struct pg_policy *p, struct rng *r)
{
	char buf[PG_POLICY_DEST_STRLEN], text[160], err[256];
	struct pg_policy q;
	uint32_t i, prev_line = 0;
	int k;

	CHECK(p->npool <= PG_POLICY_POOL_MAX);
	for (k = 0; k < PG_POLICY_NFLAGS; k++)
		CHECK(p->flag[k] <= 1);
	CHECK(p->churn_warn_per_sec <= PG_POLICY_RATE_MAX);
	for (i = 0; i < p->npool; i++) {
		const struct pg_policy_pool *rule = &p->pool[i];
		const struct pg_policy_dest *d = &rule->dest;
		uint32_t j;

		CHECK(rule->max >= 1 && rule->max <= PG_POLICY_MAX_MAX);
		CHECK(rule->mode >= PG_POOL_MODE_WARN && rule->mode <= PG_POOL_MODE_BLOCK);
		if (rule->mode == PG_POOL_MODE_BLOCK)
			CHECK(rule->wait_ms >= 1 && rule->wait_ms <= PG_POLICY_WAIT_MS_MAX);
		else
			CHECK(rule->wait_ms == 0);
		CHECK(rule->line > prev_line);
		prev_line = rule->line;
		CHECK(d->family == AF_UNSPEC || d->family == AF_INET || d->family == AF_INET6);
		CHECK(d->any_port ? d->port == 0 : d->port != 0);
		/* No rule is hidden behind an earlier one. */
		for (j = 0; j < i; j++)
			CHECK(!pg_policy_dest_covers(&p->pool[j].dest, d));

		/* The printed form parses back to the same pattern. */
		CHECK(pg_policy_format_dest(d, buf, sizeof(buf)) == 0);
		snprintf(text, sizeof(text), "pool %s max=1 mode=warn", buf);
		CHECK(pg_policy_parse(&q, text, strlen(text), FUZZ_FILE, err, sizeof(err)) == 0);
		CHECK(q.npool == 1 && !memcmp(&q.pool[0].dest, d, sizeof(*d)));

		/* The rule's own address, and its neighbours, match as the
		 * reference says. */
		if (d->family != AF_UNSPEC) {
			uint8_t a[16];
			uint16_t port = d->any_port ? (uint16_t)rng_next(r) : d->port;

			memcpy(a, d->addr, 16);
			check_match(p, d->family, a, port);
			check_match(p, d->family, a, (uint16_t)(port + 1));
			a[d->family == AF_INET ? 3 : 15] ^= 1;
			check_match(p, d->family, a, port);
			if (d->family == AF_INET) {
				uint8_t m[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

				memcpy(m + 12, d->addr, 4);
				check_match(p, AF_INET6, m, port);
			}
		}

		/* Pool decisions follow the mode. */
		{
			uint32_t in_use = (uint32_t)rng_next(r) % (rule->max + 2);
			bool nb = rng_next(r) & 1;
			int64_t waited = (int64_t)(rng_next(r) % (4000ULL * 1000000));
			enum pg_pool_verdict v = pg_policy_decide_pool(rule, in_use, nb, waited);

			if (in_use < rule->max)
				CHECK(v == PG_POOL_ALLOW);
			else if (rule->mode == PG_POOL_MODE_WARN)
				CHECK(v == PG_POOL_WARN);
			else if (rule->mode == PG_POOL_MODE_FAIL || nb)
				CHECK(v == PG_POOL_FAIL);
			else
				CHECK(v == (waited / 1000000 >= rule->wait_ms ? PG_POOL_FAIL
									      : PG_POOL_BLOCK));
		}
	}
	/* Random peers. */
	for (k = 0; k < 8; k++) {
		uint8_t a[16];
		uint64_t x = rng_next(r), y = rng_next(r);
		int fam = (x & 1) ? AF_INET6 : AF_INET;

		memcpy(a, &x, 8);
		memcpy(a + 8, &y, 8);
		if ((x & 6) == 6) /* sometimes mapped */
			memcpy(a, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12);
		check_match(p, fam, a, (uint16_t)(x >> 48));
	}
	/* Shorthands only ever add; names and short addresses are harmless. */
	{
		static const char *const names[] = { "reuseaddr", "reuseport", "bind_no_port",
						     "pool", "" };
		struct pg_policy q2 = *p;
		uint64_t x = rng_next(r);
		int rc = pg_policy_set_flag(&q2, names[x % 5], (int)(x >> 8) % 3);

		CHECK(rc == 0 || rc == -ENOENT || rc == -EINVAL);
		for (k = 0; k < PG_POLICY_NFLAGS; k++)
			CHECK(q2.flag[k] >= p->flag[k]);
		CHECK(pg_policy_is_empty(&q2) ? pg_policy_is_empty(p) : 1);
		CHECK(strlen(pg_policy_mode_name((uint32_t)x % 5)) >= 1);
		CHECK(strlen(pg_churn_forecast_name((enum pg_churn_forecast)(x % 4))) >= 1);
	}
	{
		struct sockaddr_in6 in6;
		socklen_t len;

		memset(&in6, 0, sizeof(in6));
		in6.sin6_family = (sa_family_t)(rng_next(r) % 12);
		len = (socklen_t)(rng_next(r) % (sizeof(in6) + 1));
		(void)pg_policy_match_pool(p, (struct sockaddr *)&in6, len);
		(void)pg_policy_decide_bind(p, SOCK_STREAM, 0, (struct sockaddr *)&in6, len);
	}
	{
		struct sockaddr_in in;
		unsigned m;

		memset(&in, 0, sizeof(in));
		in.sin_family = AF_INET;
		m = pg_policy_decide_bind(p, SOCK_STREAM, 0, (struct sockaddr *)&in, sizeof(in));
		CHECK(!!(m & PG_BIND_SET_REUSEADDR) == p->flag[PG_POLICY_REUSEADDR]);
		CHECK(!!(m & PG_BIND_SET_REUSEPORT) == p->flag[PG_POLICY_REUSEPORT]);
		CHECK(!!(m & PG_BIND_SET_NO_PORT) == p->flag[PG_POLICY_BIND_NO_PORT]);
		CHECK(pg_policy_decide_bind(p, SOCK_DGRAM, 0, (struct sockaddr *)&in, sizeof(in)) ==
		      0);
	}
}

/* Each byte is an event: its low bits the kind, the rest a step of time,
 * sometimes backwards, sometimes a long gap. */
static void check_churn(const uint8_t *data, size_t size, const struct pg_policy *p)
{
	struct pg_churn c;
	int64_t t = 0;
	uint64_t closes = 0;
	size_t i;

	memset(&c, 0, sizeof(c));
	if (size >= 8)
		memcpy(&t, data, 8);
	for (i = 0; i < size && i < 4096; i++) {
		uint8_t b = data[i];
		int64_t step = (int64_t)(b >> 3) * 37000000; /* up to 1.1 s */
		double rate;

		if ((b & 7) == 0)
			step = -step;
		else if ((b & 7) == 1)
			step *= 40;
		/* The caller's clock may be anything: saturate, never wrap. */
		if (__builtin_add_overflow(t, step, &t))
			t = step < 0 ? INT64_MIN : INT64_MAX;
		if ((b & 7) < 5) {
			pg_churn_active_close(&c, t);
			closes++;
		} else {
			pg_churn_connect(&c, t);
		}
		rate = pg_churn_rate(&c, t);
		CHECK(rate >= 0 && isfinite(rate));
		/* Never more closes in the window than there were, over at
		 * least a second. */
		CHECK(rate <= (double)closes * 1.000001);
		CHECK(c.peak_per_sec <= closes);
		CHECK(c.active_closes == closes);
		CHECK(c.last_ns >= c.start_ns && c.start_ns >= 0);
		CHECK(pg_churn_forecast(rate, PG_CHURN_TIME_WAIT_S, (uint32_t)b * 300) <=
		      PG_FORECAST_EXHAUSTION);
		(void)pg_churn_should_warn(p, rate);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pg_policy p;
	char err[256];
	struct rng r = { 0 };
	size_t i;
	int rc;

	for (i = 0; i < size && i < 64; i++)
		r.s = r.s * 131 + data[i];
	memset(err, 'Z', sizeof(err));
	rc = pg_policy_parse(&p, (const char *)data, size, FUZZ_FILE, err, sizeof(err));
	CHECK(rc == 0 || rc == -EINVAL);
	CHECK(memchr(err, '\0', sizeof(err)) != NULL);
	if (rc) {
		CHECK(pg_policy_is_empty(&p));
		check_error(data, size, err);
	} else {
		CHECK(err[0] == '\0');
		check_policy(&p, &r);
	}
	check_churn(data, size, &p);
	return 0;
}
