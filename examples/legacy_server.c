/* A legacy server that never sets SO_REUSEADDR.
 *
 * It listens on 127.0.0.1:PORT, serves ONE request and exits. It closes the
 * connection first (an active close), so that connection waits in TIME_WAIT
 * on the server's own port for about 60 s. Start it again at once and its
 * bind() fails with "Address already in use" — unless both runs had
 * SO_REUSEADDR, which portguard can set from the outside:
 *
 *   build/examples/legacy_server 18080 & sleep 0.2; curl -s 127.0.0.1:18080
 *   build/examples/legacy_server 18080          # bind: Address already in use
 *
 *   export PORTGUARD_OPTIONS=reuseaddr=1 LD_PRELOAD=$PWD/build/libportguard.so
 *   build/examples/legacy_server 18081 & sleep 0.2; curl -s 127.0.0.1:18081
 *   build/examples/legacy_server 18081 & ...     # restarts at once
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	char req[1024];
	int lfd, c;

	if (argc != 2 || atoi(argv[1]) <= 0 || atoi(argv[1]) > 65535) {
		fprintf(stderr, "usage: legacy_server PORT\n");
		return 2;
	}
	a.sin_port = htons((unsigned short)atoi(argv[1]));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		perror("bind");
		return 1;
	}
	if (listen(lfd, 8) < 0) {
		perror("listen");
		return 1;
	}
	printf("listening on 127.0.0.1:%s\n", argv[1]);
	fflush(stdout);
	c = accept(lfd, NULL, NULL);
	if (c >= 0) {
		static const char resp[] = "HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n";
		if (read(c, req, sizeof(req)) > 0 && write(c, resp, sizeof(resp) - 1) < 0)
			perror("write");
		close(c); /* the server closes first: TIME_WAIT on its port */
	}
	close(lfd);
	return 0;
}
