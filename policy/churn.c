/* Churn accounting: active closes per destination in a ring of per-second
 * buckets, the rate over the last seconds, and the TIME_WAIT forecast. */
#include "policy/policy.h"

#define PG_NS 1000000000LL
/* Keeps (s + 1) * PG_NS and every difference of two times inside int64_t. */
#define PG_CHURN_TIME_MAX (INT64_C(1) << 62)

static int64_t pg_churn_clamp(int64_t ns)
{
	if (ns < 0)
		return 0;
	return ns > PG_CHURN_TIME_MAX ? PG_CHURN_TIME_MAX : ns;
}

/* Moves the ring forward to now_ns and returns the time the event counts
 * at. Monotonic clocks do not go back, but two threads can read the clock in
 * one order and record in the other: the late comer counts at the newest
 * time instead of rewriting a second already passed. */
static int64_t pg_churn_advance(struct pg_churn *c, int64_t now_ns)
{
	int64_t now = pg_churn_clamp(now_ns), s, from, to;

	if (!c->started) {
		c->started = 1;
		c->start_ns = c->last_ns = now;
		return now;
	}
	if (now <= c->last_ns)
		return c->last_ns;
	from = c->last_ns / PG_NS;
	to = now / PG_NS;
	if (to - from >= PG_CHURN_SLOTS) {
		for (s = 0; s < PG_CHURN_SLOTS; s++)
			c->bucket[s] = 0;
	} else {
		for (s = from + 1; s <= to; s++)
			c->bucket[s % PG_CHURN_SLOTS] = 0;
	}
	c->last_ns = now;
	return now;
}

void pg_churn_connect(struct pg_churn *c, int64_t now_ns)
{
	pg_churn_advance(c, now_ns);
	c->connects++;
}

void pg_churn_active_close(struct pg_churn *c, int64_t now_ns)
{
	int64_t t = pg_churn_advance(c, now_ns);
	uint32_t *b = &c->bucket[(t / PG_NS) % PG_CHURN_SLOTS];

	if (*b < UINT32_MAX)
		(*b)++;
	if (*b > c->peak_per_sec)
		c->peak_per_sec = *b;
	c->active_closes++;
}

double pg_churn_rate(const struct pg_churn *c, int64_t now_ns)
{
	int64_t now, window, from, last_s, s, lo_s;
	double n = 0;

	if (!c->started || !c->active_closes)
		return 0;
	now = pg_churn_clamp(now_ns);
	if (now < c->last_ns)
		now = c->last_ns;
	/* The window is (from, now]: the last WINDOW_S seconds, or every
	 * event when the first came more recently. */
	window = now - c->start_ns;
	if (window > PG_CHURN_WINDOW_S * PG_NS) {
		window = PG_CHURN_WINDOW_S * PG_NS;
		from = now - window;
	} else {
		from = c->start_ns - 1;
		if (window < PG_NS)
			window = PG_NS;
	}
	last_s = c->last_ns / PG_NS;
	lo_s = from < 0 ? 0 : from / PG_NS;
	/* Seconds after last_s have no events yet (their buckets still hold
	 * what they had SLOTS seconds ago); the window never reaches back past
	 * the ring, since WINDOW_S < SLOTS. */
	for (s = last_s; s >= lo_s; s--) {
		uint32_t k = c->bucket[s % PG_CHURN_SLOTS];
		int64_t lo, hi;

		if (!k)
			continue;
		/* The events of second s lie in [lo, hi]; take the share of
		 * them that falls in the window, as if spread evenly. */
		lo = s * PG_NS > c->start_ns ? s * PG_NS : c->start_ns;
		hi = (s + 1) * PG_NS < c->last_ns ? (s + 1) * PG_NS : c->last_ns;
		if (hi <= from)
			continue;
		if (lo > from)
			n += k;
		else
			n += (double)k * (double)(hi - from) / (double)(hi - lo);
	}
	return n * (double)PG_NS / (double)window;
}

uint32_t pg_churn_peak_per_sec(const struct pg_churn *c)
{
	return c->peak_per_sec;
}

enum pg_churn_forecast pg_churn_forecast(double rate, uint32_t time_wait_s, uint32_t range_size)
{
	double pinned, range = range_size ? range_size : PG_CHURN_DEFAULT_RANGE;

	/* Written so that NaN and negative rates fall through to ok. */
	if (!(rate > 0))
		return PG_FORECAST_OK;
	pinned = rate * time_wait_s;
	if (pinned * 100 >= range * 80)
		return PG_FORECAST_EXHAUSTION;
	if (pinned * 100 >= range * 60)
		return PG_FORECAST_WARNING;
	return PG_FORECAST_OK;
}

const char *pg_churn_forecast_name(enum pg_churn_forecast f)
{
	switch (f) {
	case PG_FORECAST_OK: return "ok";
	case PG_FORECAST_WARNING: return "warning";
	case PG_FORECAST_EXHAUSTION: return "exhaustion";
	}
	return "?";
}

bool pg_churn_should_warn(const struct pg_policy *p, double rate)
{
	return p && p->churn_warn_per_sec && rate > (double)p->churn_warn_per_sec;
}
