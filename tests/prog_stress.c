/* Test program: THREADS threads each create and close PER sockets, each
 * leaking exactly one (the middle one); prints "ready" when main starts
 * (every constructor, the library's included, has run: a report signal may
 * come), then "done" and the number of sockets it created.
 *   prog_stress THREADS PER */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

static int per;

static void *worker(void *arg)
{
	(void)arg;
	for (int i = 0; i < per; i++) {
		int fd = socket(i % 2 ? AF_INET : AF_INET6, i % 3 ? SOCK_STREAM : SOCK_DGRAM, 0);
		if (fd < 0) {
			perror("socket");
			exit(1);
		}
		if (i != per / 2)
			close(fd);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 8;
	pthread_t t[64];

	per = argc > 2 ? atoi(argv[2]) : 20000;
	if (n < 1 || n > 64)
		return 2;
	printf("ready\n");
	fflush(stdout);
	for (int i = 0; i < n; i++)
		pthread_create(&t[i], NULL, worker, NULL);
	for (int i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	printf("done %d\n", n * per);
	return 0;
}
