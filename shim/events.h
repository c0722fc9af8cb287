/* Policy events (SPEC section 5): a pool wait or denial, a churn warning,
 * an invalid policy. The program's thread formats the head of the line and
 * queues it here, in slots of fixed size taken from the arena once: no
 * malloc, no wait but a bounded one. The library's thread (or the exit
 * report) writes them, adding the call site's frames, which it names. */
#ifndef PG_EVENTS_H
#define PG_EVENTS_H

#include <stdint.h>

#define PG_EVENT_TEXT 512
/* The site of an event that has no frames to show (an invalid policy). */
#define PG_EVENT_NO_FRAMES UINT32_MAX
#define PG_EVENT_JSON 768

struct pg_event {
	uint32_t site; /* call site id, 0: none */
	char text[PG_EVENT_TEXT]; /* "portguard: churn: ...", without "; at ..." */
	char json[PG_EVENT_JSON]; /* "{... " without the frames and the closing } */
};

/* Queues one; 0, or -ENOSPC / -EAGAIN (dropped, counted). */
int pg_events_push(const char *text, const char *json, uint32_t site);
/* Takes the oldest; 1, or 0 when there is none. */
int pg_events_pop(struct pg_event *out);
/* Whether some are queued now (no lock: a hint for waking the writer). */
int pg_events_pending(void);
/* Events queued so far (a clean exit report to a stream still prints when
 * there were any), and dropped. */
uint64_t pg_events_total(void);
uint64_t pg_events_dropped(void);
/* fork child: the queued events are the parent's, which writes them. */
void pg_events_fork_child(void);

#endif
