/* A client that opens a new connection for every request and closes it
 * itself: each closed connection holds a local port in TIME_WAIT for about
 * 60 s. At a few hundred requests a second that pins most of the ephemeral
 * range (ip_local_port_range), and connect() starts failing with
 * EADDRNOTAVAIL, "Cannot assign requested address".
 *
 * It runs its own small server on 127.0.0.1 (a thread) and makes N requests
 * over S seconds. Under portguard with a churn policy it is told off, with a
 * forecast, before the ports run out:
 *
 *   echo 'churn warn_per_sec=100' > /tmp/churn.policy
 *   PORTGUARD_OPTIONS=policy=/tmp/churn.policy LD_PRELOAD=build/libportguard.so \
 *       build/examples/churn_client 3000 2
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int lfd;

static void *serve(void *arg)
{
	(void)arg;
	for (;;) {
		char buf[64];
		int c = accept(lfd, NULL, NULL);
		if (c < 0) {
			if (errno == EINTR)
				continue;
			return NULL; /* shut down: done */
		}
		if (read(c, buf, sizeof(buf)) > 0 && write(c, "ok\n", 3) < 0)
			perror("write");
		/* Wait for the client's FIN so that the client closes first. */
		while (read(c, buf, sizeof(buf)) > 0)
			;
		close(c);
	}
	return NULL;
}

/* One request on a connection of its own: the pattern to avoid. */
static int request(const struct sockaddr_in *srv)
{
	char buf[16];
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int rc = -1;

	if (fd < 0)
		return -errno;
	if (connect(fd, (const struct sockaddr *)srv, sizeof(*srv)) < 0) {
		rc = -errno;
	} else if (write(fd, "get\n", 4) == 4 && read(fd, buf, sizeof(buf)) > 0) {
		rc = 0;
	}
	close(fd);
	return rc;
}

int main(int argc, char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int n = argc > 1 ? atoi(argv[1]) : 1000;
	double secs = argc > 2 ? atof(argv[2]) : 1.0;
	struct timespec pause = { 0, 0 };
	pthread_t t;
	int ok = 0, failed = 0, first_err = 0;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(lfd, 128) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&a, &len) < 0) {
		perror("server");
		return 1;
	}
	pthread_create(&t, NULL, serve, NULL);
	pause.tv_nsec = n > 0 ? (long)(secs * 1e9 / n) : 0;
	for (int i = 0; i < n; i++) {
		int rc = request(&a);
		if (rc == 0) {
			ok++;
		} else {
			if (!failed)
				first_err = -rc;
			failed++;
		}
		nanosleep(&pause, NULL);
	}
	shutdown(lfd, SHUT_RDWR);
	pthread_join(t, NULL);
	close(lfd);
	printf("%d requests ok, %d failed", ok, failed);
	if (failed)
		printf(" (first: %s)", strerror(first_err));
	printf("\n");
	return failed ? 1 : 0;
}
