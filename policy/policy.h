/* The reuse and pooling policy of SPEC section 5: parse a policy file into a
 * struct, then answer "may this connect proceed?", "what do I set before this
 * bind?" and "how fast is this destination churning?" from state the caller
 * passes in. Pure: no I/O, no globals, no locks, no errno, no allocation, no
 * clock (times are monotonic nanoseconds given by the caller). Every struct is
 * fixed-size and valid when zeroed. docs/policy.md is the user's side. */
#ifndef PG_POLICY_H
#define PG_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define PG_POLICY_POOL_MAX 64 /* pool rules per file */
#define PG_POLICY_LINE_MAX 1024 /* bytes per line, '\n' not counted */
#define PG_POLICY_MAX_MAX 1000000 /* pool max=1..this */
#define PG_POLICY_WAIT_MS_MAX 3600000 /* pool wait_ms=1..this (one hour) */
#define PG_POLICY_WAIT_MS_DEFAULT 1000 /* mode=block without wait_ms */
#define PG_POLICY_RATE_MAX 1000000 /* churn warn_per_sec=1..this */
#define PG_POLICY_DEST_STRLEN 64 /* pg_policy_format_dest's buffer */

enum pg_policy_flag {
	PG_POLICY_REUSEADDR, /* SO_REUSEADDR before bind of TCP sockets */
	PG_POLICY_REUSEPORT, /* SO_REUSEPORT likewise */
	PG_POLICY_BIND_NO_PORT, /* IP_BIND_ADDRESS_NO_PORT on TCP bind to port 0 */
	PG_POLICY_NFLAGS
};

enum pg_pool_mode {
	PG_POOL_MODE_WARN = 1,
	PG_POOL_MODE_FAIL,
	PG_POOL_MODE_BLOCK,
};

/* A destination, or a pattern of them. No padding and zeroed where unused,
 * so a concrete one (from pg_policy_dest_from_sockaddr) can be a hash key. */
struct pg_policy_dest {
	uint8_t family; /* AF_INET, AF_INET6, or AF_UNSPEC for any address */
	uint8_t any_port; /* 1: any port ("*") */
	uint16_t port; /* host order; 0 when any_port */
	uint8_t addr[16]; /* network order; IPv4 in the first 4 bytes */
};

struct pg_policy_pool {
	struct pg_policy_dest dest;
	uint32_t max; /* 1..PG_POLICY_MAX_MAX */
	uint32_t wait_ms; /* mode block only, else 0 */
	uint32_t line; /* where the rule is, for event messages */
	uint32_t mode; /* enum pg_pool_mode */
};

struct pg_policy {
	uint8_t flag[PG_POLICY_NFLAGS]; /* 1: on */
	uint32_t churn_warn_per_sec; /* 0: no churn directive */
	uint32_t npool;
	struct pg_policy_pool pool[PG_POLICY_POOL_MAX];
};

/* The empty policy: nothing applied. */
void pg_policy_init(struct pg_policy *p);

/* Parses a policy file. text need not be NUL-terminated; filename only names
 * the file in messages (NULL: "policy"). Returns 0, or -EINVAL with
 * "FILE:LINE: what is wrong" in err (truncated to errlen, always terminated
 * when errlen > 0) and p left as the empty policy: no part of a bad file
 * applies. */
int pg_policy_parse(struct pg_policy *p, const char *text, size_t len, const char *filename,
		    char *err, size_t errlen);

/* The PORTGUARD_OPTIONS shorthands reuseaddr=1, reuseport=1, bind_no_port=1.
 * on=1 turns the directive on; on=0 leaves p as it is (0 is the option's
 * default, not "off": a shorthand adds a directive, never removes one the
 * file has). Apply after pg_policy_parse, which starts from the empty policy.
 * Returns 0, -ENOENT for a name that is not a shorthand, -EINVAL for on not
 * 0 or 1. */
int pg_policy_set_flag(struct pg_policy *p, const char *name, int on);

/* True when p asks for nothing at all (nothing to enforce). */
bool pg_policy_is_empty(const struct pg_policy *p);

/* A sockaddr as a concrete destination; an IPv4-mapped IPv6 address becomes
 * IPv4. Returns 0, -EINVAL (NULL or too short), -EAFNOSUPPORT (not IP). */
int pg_policy_dest_from_sockaddr(struct pg_policy_dest *d, const struct sockaddr *sa,
				 socklen_t len);

/* Whether pattern matches every destination (or pattern) that d matches. */
bool pg_policy_dest_covers(const struct pg_policy_dest *pattern, const struct pg_policy_dest *d);

/* "127.0.0.1:5432", "[::1]:*", "*:443", "*". Returns 0 or -ENOSPC. */
int pg_policy_format_dest(const struct pg_policy_dest *d, char *buf, size_t len);

/* "warn", "fail", "block"; "?" for anything else. */
const char *pg_policy_mode_name(uint32_t mode);

/* Index of the first pool rule matching dest, or -1 when none does (or dest
 * is not an IPv4/IPv6 address). */
int pg_policy_match_pool(const struct pg_policy *p, const struct sockaddr *dest, socklen_t len);

enum pg_pool_verdict {
	PG_POOL_ALLOW, /* under the limit: take a slot and connect */
	PG_POOL_WARN, /* at the limit, mode=warn: log once, take a slot, connect */
	PG_POOL_FAIL, /* connect returns -1, errno EADDRNOTAVAIL */
	PG_POOL_BLOCK, /* wait for a slot to be given back, then ask again */
};

/* The pool decision for one connect matched to rule. in_use: connected
 * sockets the rule already counts (a rule is one budget shared by every
 * destination it matches). waited_ns: how long this connect has waited so
 * far (0 on the first call). A non-blocking socket never waits, and a wait of
 * wait_ms or more ends in PG_POOL_FAIL. A NULL rule allows. */
enum pg_pool_verdict pg_policy_decide_pool(const struct pg_policy_pool *rule, uint32_t in_use,
					   bool nonblocking, int64_t waited_ns);

#define PG_BIND_SET_REUSEADDR (1u << 0)
#define PG_BIND_SET_REUSEPORT (1u << 1)
#define PG_BIND_SET_NO_PORT (1u << 2)

/* Which options to set on a socket of this type and protocol (as given to
 * socket(), SOCK_NONBLOCK/SOCK_CLOEXEC allowed) before bind(addr): a
 * PG_BIND_SET_* mask, 0 for anything but TCP over IPv4/IPv6. The caller
 * still checks whether the socket has them already. */
unsigned pg_policy_decide_bind(const struct pg_policy *p, int type, int protocol,
			       const struct sockaddr *addr, socklen_t len);

/* Churn accounting for one destination (section 5, "churn"). */
#define PG_CHURN_WINDOW_S 10 /* the rate is over the last 10 s */
#define PG_CHURN_SLOTS 16 /* per-second ring: the window plus slack */
#define PG_CHURN_TIME_WAIT_S 60 /* Linux TCP_TIMEWAIT_LEN */
#define PG_CHURN_DEFAULT_RANGE 28232 /* 60999 - 32768 + 1, Linux's default */

/* Zeroed memory is an empty state. Times before 0 count as 0 and times past
 * 2^62 ns (146 years) as 2^62; an event older than the newest one seen (time
 * read before another thread's event but recorded after it) counts at the
 * newest time. Read the totals directly; write only through pg_churn_*. */
struct pg_churn {
	uint64_t connects;
	uint64_t active_closes;
	int64_t start_ns; /* first event */
	int64_t last_ns; /* newest event */
	uint32_t started; /* 1 once an event was seen */
	uint32_t peak_per_sec; /* most active closes in one clock second */
	uint32_t bucket[PG_CHURN_SLOTS]; /* active closes of second s at [s % SLOTS] */
};

void pg_churn_connect(struct pg_churn *c, int64_t now_ns);
/* A close or shutdown of a connection still ESTABLISHED: this side keeps
 * the port in TIME_WAIT. */
void pg_churn_active_close(struct pg_churn *c, int64_t now_ns);

/* Active closes per second over the last PG_CHURN_WINDOW_S seconds before
 * now_ns, or since the first event when that is more recent (but never over
 * less than one second, so one close is not read as a huge rate). */
double pg_churn_rate(const struct pg_churn *c, int64_t now_ns);
uint32_t pg_churn_peak_per_sec(const struct pg_churn *c);

enum pg_churn_forecast {
	PG_FORECAST_OK,
	PG_FORECAST_WARNING, /* rate * time_wait_s >= 60 % of the range */
	PG_FORECAST_EXHAUSTION, /* >= 80 % */
};

/* A sustained rate pins about rate * time_wait_s ports in TIME_WAIT.
 * range_size: high - low + 1 of ip_local_port_range; 0 (unknown) means
 * PG_CHURN_DEFAULT_RANGE. */
enum pg_churn_forecast pg_churn_forecast(double rate, uint32_t time_wait_s, uint32_t range_size);
/* "ok", "warning", "exhaustion" (the JSON values); "?" otherwise. */
const char *pg_churn_forecast_name(enum pg_churn_forecast f);

/* True when p has a churn directive and rate exceeds its warn_per_sec. */
bool pg_churn_should_warn(const struct pg_policy *p, double rate);

#endif
