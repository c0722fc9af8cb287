/* A client that leaks a connection on an error path.
 *
 * It asks a small server (started here, on 127.0.0.1, in a thread) for five
 * "records". When the server answers "ERR", fetch_record() returns early and
 * forgets to close its socket: the classic leak that ends, in a long-running
 * service, in "Too many open files".
 *
 *   LD_PRELOAD=build/libportguard.so build/examples/leaky_client
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int server_fd;

static void *serve(void *arg)
{
	(void)arg;
	for (int i = 0; i < 5; i++) {
		int c = accept(server_fd, NULL, NULL);
		if (c < 0)
			return NULL;
		/* Records 2 and 4 do not exist. */
		const char *reply = (i == 1 || i == 3) ? "ERR no such record\n" : "OK 42\n";
		if (write(c, reply, strlen(reply)) < 0)
			perror("write");
		close(c);
	}
	return NULL;
}

static int connect_to(unsigned short port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		perror("connect");
		return -1;
	}
	return fd;
}

static int fetch_record(unsigned short port, int id, char *out, size_t size)
{
	int fd = connect_to(port);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, out, size - 1);
	if (n <= 0)
		return -1; /* BUG: fd leaks here too */
	out[n] = 0;
	if (strncmp(out, "ERR", 3) == 0) {
		fprintf(stderr, "record %d: %s", id, out);
		return -1; /* BUG: returns without close(fd) */
	}
	close(fd);
	return 0;
}

int main(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	pthread_t t;
	char buf[64];
	int ok = 0;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	server_fd = socket(AF_INET, SOCK_STREAM, 0);
	if (server_fd < 0 || bind(server_fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(server_fd, 8) < 0 || getsockname(server_fd, (struct sockaddr *)&a, &len) < 0) {
		perror("server");
		return 1;
	}
	pthread_create(&t, NULL, serve, NULL);
	for (int id = 1; id <= 5; id++)
		if (fetch_record(ntohs(a.sin_port), id, buf, sizeof(buf)) == 0)
			ok++;
	pthread_join(t, NULL);
	close(server_fd);
	printf("fetched %d of 5 records\n", ok);
	return 0;
}
