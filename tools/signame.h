/* Signal names as PORTGUARD_OPTIONS' report_signal spells them: USR1,
 * SIGUSR2, RTMIN+3, RTMAX-1, or a number. */
#ifndef PG_SIGNAME_H
#define PG_SIGNAME_H

#include <stddef.h>

/* The signal number (>= 1), or -EINVAL. Case does not matter; "SIG" is
 * optional. "0" is not a signal here. */
int pg_signame_parse(const char *s);

/* "USR1", "RTMIN+3", or the number; returns buf. */
const char *pg_signame_format(int sig, char *buf, size_t size);

#endif
