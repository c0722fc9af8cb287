/* A server that forgets to close the connections it accepts.
 *
 * It listens on 127.0.0.1 (a free port), and a child process plays three
 * clients that each send one request. The server answers every request but
 * never closes the accepted socket when the client asked to "keep" it: the
 * accepted descriptors pile up, each in CLOSE_WAIT once the client hangs up.
 *
 *   LD_PRELOAD=build/libportguard.so build/examples/leaky_server
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static void client(unsigned short port, const char *req)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	char buf[64];
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		_exit(1);
	if (write(fd, req, strlen(req)) < 0 || read(fd, buf, sizeof(buf)) < 0)
		_exit(1);
	close(fd);
}

static void handle(int conn)
{
	char req[64];
	ssize_t n = read(conn, req, sizeof(req) - 1);

	if (n <= 0) {
		close(conn);
		return;
	}
	req[n] = 0;
	if (write(conn, "done\n", 5) < 0)
		perror("write");
	if (strncmp(req, "keep", 4) == 0)
		return; /* BUG: meant to hand conn to a worker, never did: leaked */
	close(conn);
}

int main(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	pid_t pid;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(lfd, 8) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&a, &len) < 0) {
		perror("listen");
		return 1;
	}
	pid = fork();
	if (pid == 0) {
		client(ntohs(a.sin_port), "keep this one");
		client(ntohs(a.sin_port), "quit");
		client(ntohs(a.sin_port), "keep this too");
		_exit(0);
	}
	for (int i = 0; i < 3; i++) {
		int conn = accept(lfd, NULL, NULL);
		if (conn >= 0)
			handle(conn);
	}
	waitpid(pid, NULL, 0);
	close(lfd);
	printf("served 3 requests\n");
	return 0;
}
