// SPDX-License-Identifier: GPL-2.0
/*
 * lct-clients SOCKET N
 * Load on the agent that must not delay a revoke: one connection that
 * sends audit.tail requests without ever reading a reply, then N that
 * stay idle.  Prints "kept K of N" (idle connections the agent kept: the
 * others met its per-uid or total limit and were told so), then "ready",
 * and holds everything open until killed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int dial(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || strlen(path) >= sizeof(sa.sun_path))
		return -1;
	memcpy(sa.sun_path, path, strlen(path));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* 1 if the agent kept @fd: a refused connection gets one error line and
 * the end of the stream at once; a kept one stays silent. */
static int kept_open(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) == 0;
}

int main(int argc, char **argv)
{
	static const char req[] = "{\"op\": \"audit.tail\", \"args\": {\"lines\": 10000}, \"id\": 2}\n";
	int n, kept = 0, slow, *fds;

	if (argc != 3 || (n = atoi(argv[2])) < 0) {
		fprintf(stderr, "usage: lct-clients SOCKET N\n");
		return 2;
	}
	slow = dial(argv[1]);
	if (slow < 0) {
		printf("the non-reading client could not connect: %s\n", strerror(errno));
		return 1;
	}
	/* Requests whose replies are never read: once the socket holds
	 * what it can, the agent must stop on this client alone. */
	for (int i = 0; i < 200; i++)
		if (send(slow, req, sizeof(req) - 1, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
			break;
	fds = calloc((size_t)n + 1, sizeof(*fds));
	if (!fds)
		return 1;
	for (int i = 0; i < n; i++)
		fds[i] = dial(argv[1]);
	sleep(2);	/* refusals arrive at once; give a slow machine time */
	for (int i = 0; i < n; i++)
		kept += fds[i] >= 0 && kept_open(fds[i]);
	printf("kept %d of %d\n", kept, n);
	printf("ready\n");
	fflush(stdout);
	for (;;)
		pause();
}
