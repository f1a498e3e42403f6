// SPDX-License-Identifier: GPL-2.0
/*
 * lct-clients SOCKET N
 * Load on the agent that must not delay a revoke: one connection that
 * sends audit.tail requests without ever reading a reply, then N that ping
 * once and stay idle.  Prints "kept K of N" (idle connections the agent
 * answered: the others met its per-uid or total limit), then "ready", and
 * holds everything open until killed.
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

/* 1 if a ping on @fd gets an "ok": true line within 5 s. */
static int answered(int fd)
{
	static const char ping[] = "{\"op\": \"ping\", \"id\": 1}\n";
	char buf[4096];
	size_t len = 0;

	if (write(fd, ping, sizeof(ping) - 1) != (ssize_t)sizeof(ping) - 1)
		return 0;
	while (len < sizeof(buf) - 1) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, 5000) <= 0)
			return 0;
		n = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (n <= 0)
			return 0;
		len += (size_t)n;
		buf[len] = '\0';
		if (strchr(buf, '\n'))
			return strstr(buf, "\"ok\":true") || strstr(buf, "\"ok\": true");
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const char req[] = "{\"op\": \"audit.tail\", \"args\": {\"lines\": 10000}, \"id\": 2}\n";
	int n, kept = 0, slow;

	if (argc != 3 || (n = atoi(argv[2])) < 0) {
		fprintf(stderr, "usage: lct-clients SOCKET N\n");
		return 2;
	}
	slow = dial(argv[1]);
	if (slow < 0) {
		printf("the non-reading client could not connect: %s\n", strerror(errno));
		return 1;
	}
	/* Fill the agent's side until it stops reading us; never read. */
	for (int i = 0; i < 1000; i++)
		if (send(slow, req, sizeof(req) - 1, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
			break;
	for (int i = 0; i < n; i++) {
		int fd = dial(argv[1]);

		if (fd >= 0 && answered(fd))
			kept++;
		/* Kept open either way: idle, or closed by the agent. */
	}
	printf("kept %d of %d\n", kept, n);
	printf("ready\n");
	fflush(stdout);
	for (;;)
		pause();
}
