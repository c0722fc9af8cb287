/* Test program: THREADS threads each make PER connections to a server of
 * its own on 127.0.0.1, hold each for HOLD_US and close it; prints how many
 * were open at once at most, and how connects ended.
 *   prog_pool THREADS PER HOLD_US [nonblock] */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct sockaddr_in srv = { .sin_family = AF_INET };
static int lfd, per, hold_us, nonblock;
static int cur, peak, ok, failed, eaddrnotavail;

static void *serve(void *arg)
{
	(void)arg;
	for (;;) {
		int c = accept(lfd, NULL, NULL);
		if (c < 0)
			return NULL;
		close(c);
	}
}

static void *worker(void *arg)
{
	(void)arg;
	for (int i = 0; i < per; i++) {
		int fd = socket(AF_INET, SOCK_STREAM | (nonblock ? SOCK_NONBLOCK : 0), 0);
		int rc = connect(fd, (struct sockaddr *)&srv, sizeof(srv));
		if (rc < 0 && errno == EINPROGRESS) {
			struct pollfd p = { fd, POLLOUT, 0 };
			poll(&p, 1, 5000);
			rc = 0;
		}
		if (rc == 0) {
			int now = __atomic_add_fetch(&cur, 1, __ATOMIC_SEQ_CST);
			int old = __atomic_load_n(&peak, __ATOMIC_SEQ_CST);
			while (now > old &&
			       !__atomic_compare_exchange_n(&peak, &old, now, 0, __ATOMIC_SEQ_CST,
							    __ATOMIC_SEQ_CST))
				;
			__atomic_add_fetch(&ok, 1, __ATOMIC_SEQ_CST);
			usleep((useconds_t)hold_us);
			__atomic_sub_fetch(&cur, 1, __ATOMIC_SEQ_CST);
		} else {
			__atomic_add_fetch(&failed, 1, __ATOMIC_SEQ_CST);
			if (errno == EADDRNOTAVAIL)
				__atomic_add_fetch(&eaddrnotavail, 1, __ATOMIC_SEQ_CST);
		}
		close(fd);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 8;
	socklen_t len = sizeof(srv);
	pthread_t s, t[64];

	per = argc > 2 ? atoi(argv[2]) : 20;
	hold_us = argc > 3 ? atoi(argv[3]) : 2000;
	nonblock = argc > 4 && !strcmp(argv[4], "nonblock");
	if (n < 1 || n > 64)
		return 2;
	srv.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (bind(lfd, (struct sockaddr *)&srv, sizeof(srv)) < 0 || listen(lfd, 256) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&srv, &len) < 0)
		return 3;
	pthread_create(&s, NULL, serve, NULL);
	for (int i = 0; i < n; i++)
		pthread_create(&t[i], NULL, worker, NULL);
	for (int i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	shutdown(lfd, SHUT_RDWR);
	pthread_join(s, NULL);
	close(lfd);
	printf("peak=%d ok=%d failed=%d eaddrnotavail=%d\n", peak, ok, failed, eaddrnotavail);
	return 0;
}
