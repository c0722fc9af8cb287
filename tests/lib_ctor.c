/* A library whose constructor makes a socket (and keeps it), possibly before
 * portguard's own constructor has run. */
#include <sys/socket.h>

int ctor_socket_fd = -1;

__attribute__((constructor)) static void make_socket_early(void)
{
	ctor_socket_fd = socket(AF_INET, SOCK_DGRAM, 0);
}
