/* Loopback connection churn for the tests and the bench of `portguard ports`.
 *
 *   prog_tool_churn [-a ADDR]... [-P N] [-t N] [-e N] [-w N] [-m N] [-r] [-T SEC]
 *
 * For each address (default 127.0.0.1; only 127.0.0.0/8 and ::1 are accepted)
 * it listens on N ports chosen by the kernel (-P, default 1), and toward each
 * listener makes -t connections that the client closes first (the client end
 * stays in TIME_WAIT for about 60 s), -e connections held ESTABLISHED, -w
 * connections the server closes first (the client end held in CLOSE_WAIT).
 * -m: that many more held connections from IPv6 sockets to the IPv4-mapped
 * address of the first IPv4 listener. -r raises RLIMIT_NOFILE to its hard
 * limit. Prints "listen ADDR PORT" per listener, then "ready PID", and waits
 * for SIGTERM/SIGINT (at most -T seconds, default 300); each SIGUSR1 makes
 * -t more TIME_WAIT connections per listener and prints "batch N" (a tuple
 * that climbs, for ports --watch); then it resets the
 * connections it holds (SO_LINGER 0: RST, so no TIME_WAIT is left behind
 * by the teardown, only the ones asked for). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_ADDRS 16
#define MAX_LISTENERS 256

struct listener {
	int fd, family;
	struct sockaddr_storage sa;
	socklen_t len;
	char text[64];
};

static struct listener ls[MAX_LISTENERS];
static int nls;
static int *held;
static size_t nheld, capheld;

static void hold(int fd)
{
	if (nheld == capheld) {
		capheld = capheld ? capheld * 2 : 256;
		held = realloc(held, capheld * sizeof(*held));
		if (!held)
			exit(1);
	}
	held[nheld++] = fd;
}

static void die(const char *what)
{
	fprintf(stderr, "prog_tool_churn: %s: %s\n", what, strerror(errno));
	exit(1);
}

static int loopback_only(const char *addr, struct sockaddr_storage *sa, socklen_t *len)
{
	struct sockaddr_in *in = (struct sockaddr_in *)sa;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)sa;

	memset(sa, 0, sizeof(*sa));
	if (inet_pton(AF_INET, addr, &in->sin_addr) == 1) {
		if ((ntohl(in->sin_addr.s_addr) >> 24) != 127)
			return -1;
		in->sin_family = AF_INET;
		*len = sizeof(*in);
		return 0;
	}
	if (inet_pton(AF_INET6, addr, &in6->sin6_addr) == 1) {
		if (!IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
			return -1;
		in6->sin6_family = AF_INET6;
		*len = sizeof(*in6);
		return 0;
	}
	return -1;
}

static void add_listener(const char *addr)
{
	struct listener *l = &ls[nls];

	if (nls == MAX_LISTENERS) {
		fprintf(stderr, "prog_tool_churn: too many listeners\n");
		exit(2);
	}
	if (loopback_only(addr, &l->sa, &l->len)) {
		fprintf(stderr, "prog_tool_churn: %s is not a loopback address\n", addr);
		exit(2);
	}
	l->family = l->sa.ss_family;
	l->fd = socket(l->family, SOCK_STREAM, 0);
	if (l->fd < 0)
		die("socket");
	if (bind(l->fd, (struct sockaddr *)&l->sa, l->len) < 0)
		die("bind");
	if (listen(l->fd, 4096) < 0)
		die("listen");
	if (getsockname(l->fd, (struct sockaddr *)&l->sa, &l->len) < 0)
		die("getsockname");
	snprintf(l->text, sizeof(l->text), "%s", addr);
	nls++;
}

static unsigned port_of(const struct listener *l)
{
	return ntohs(l->family == AF_INET ? ((const struct sockaddr_in *)&l->sa)->sin_port
					  : ((const struct sockaddr_in6 *)&l->sa)->sin6_port);
}

/* One connection: the client end and the server end. */
static void connect_pair(const struct listener *l, int mapped, int *client, int *server)
{
	struct sockaddr_in6 m;
	const struct sockaddr *to = (const struct sockaddr *)&l->sa;
	socklen_t len = l->len;
	int family = l->family;

	if (mapped) {
		memset(&m, 0, sizeof(m));
		m.sin6_family = AF_INET6;
		m.sin6_port = ((const struct sockaddr_in *)&l->sa)->sin_port;
		m.sin6_addr.s6_addr[10] = m.sin6_addr.s6_addr[11] = 0xff;
		memcpy(&m.sin6_addr.s6_addr[12], &((const struct sockaddr_in *)&l->sa)->sin_addr,
		       4);
		to = (const struct sockaddr *)&m;
		len = sizeof(m);
		family = AF_INET6;
	}
	*client = socket(family, SOCK_STREAM, 0);
	if (*client < 0)
		die("socket");
	if (connect(*client, to, len) < 0)
		die("connect");
	*server = accept(l->fd, NULL, NULL);
	if (*server < 0)
		die("accept");
}

static void drain_close(int fd)
{
	char buf[64];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
	close(fd);
}

/* The client closes first: its end goes FIN_WAIT -> TIME_WAIT; the server
 * reads the FIN before closing, so it never does. */
static void time_wait(const struct listener *l, int n)
{
	for (int k = 0; k < n; k++) {
		int cl, sv;
		connect_pair(l, 0, &cl, &sv);
		close(cl);
		drain_close(sv);
	}
}

int main(int argc, char **argv)
{
	const char *addrs[MAX_ADDRS];
	int naddrs = 0, per = 1, tw = 0, est = 0, cw = 0, mapped = 0, c;
	unsigned timeout = 300;
	sigset_t set;

	while ((c = getopt(argc, argv, "a:P:t:e:w:m:rT:")) != -1) {
		switch (c) {
		case 'a':
			if (naddrs == MAX_ADDRS)
				return 2;
			addrs[naddrs++] = optarg;
			break;
		case 'P': per = atoi(optarg); break;
		case 't': tw = atoi(optarg); break;
		case 'e': est = atoi(optarg); break;
		case 'w': cw = atoi(optarg); break;
		case 'm': mapped = atoi(optarg); break;
		case 'T': timeout = (unsigned)atoi(optarg); break;
		case 'r': {
			struct rlimit rl;
			getrlimit(RLIMIT_NOFILE, &rl);
			rl.rlim_cur = rl.rlim_max;
			setrlimit(RLIMIT_NOFILE, &rl);
			break;
		}
		default:
			fprintf(stderr,
				"usage: prog_tool_churn [-a ADDR]... [-P N] [-t N] [-e N] [-w N] "
				"[-m N] [-r] [-T SEC]\n");
			return 2;
		}
	}
	if (!naddrs)
		addrs[naddrs++] = "127.0.0.1";
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);

	for (int a = 0; a < naddrs; a++)
		for (int k = 0; k < per; k++)
			add_listener(addrs[a]);

	for (int i = 0; i < nls; i++) {
		int cl, sv;
		time_wait(&ls[i], tw);
		for (int k = 0; k < est; k++) {
			connect_pair(&ls[i], 0, &cl, &sv);
			hold(cl);
			hold(sv);
		}
		/* The server closes first: the client end sits in CLOSE_WAIT while
		 * we hold it, the server end in FIN_WAIT2. */
		for (int k = 0; k < cw; k++) {
			connect_pair(&ls[i], 0, &cl, &sv);
			close(sv);
			hold(cl);
		}
	}
	for (int i = 0; i < nls && mapped; i++) {
		if (ls[i].family != AF_INET)
			continue;
		for (int k = 0; k < mapped; k++) {
			int cl, sv;
			connect_pair(&ls[i], 1, &cl, &sv);
			hold(cl);
			hold(sv);
		}
		break;
	}
	for (int i = 0; i < nls; i++)
		printf("listen %s %u\n", ls[i].text, port_of(&ls[i]));
	printf("ready %d\n", (int)getpid());
	fflush(stdout);

	alarm(timeout);
	for (int batch = 1;; batch++) {
		sigwait(&set, &c);
		if (c != SIGUSR1)
			break;
		for (int i = 0; i < nls; i++)
			time_wait(&ls[i], tw);
		printf("batch %d\n", batch);
		fflush(stdout);
	}
	for (size_t i = 0; i < nheld; i++) {
		struct linger lg = { 1, 0 };
		setsockopt(held[i], SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		close(held[i]);
	}
	return 0;
}
