// SPDX-License-Identifier: GPL-2.0
/*
 * lct-uevent: print kernel uevents (NETLINK_KOBJECT_UEVENT) with their
 * environment, one event per line: "ACTION=change DEVPATH=... KEY=VAL ...".
 *
 *   lct-uevent [-r READYFILE] [-t SECONDS] [-n COUNT] [-m SUBSTRING]
 *
 * Creates READYFILE once the socket is bound, so a test can start it in
 * the background and know no event is missed.  Stops after SECONDS
 * (default 30) or after COUNT events containing SUBSTRING (default: any).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
	const char *ready = NULL, *match = NULL;
	long seconds = 30, want = 0, seen = 0, deadline;
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK, .nl_groups = 1 };
	static char buf[16384], line[32768];
	int opt, fd, rcvbuf = 4 << 20;

	while ((opt = getopt(argc, argv, "r:t:n:m:")) != -1) {
		switch (opt) {
		case 'r': ready = optarg; break;
		case 't': seconds = strtol(optarg, NULL, 0); break;
		case 'n': want = strtol(optarg, NULL, 0); break;
		case 'm': match = optarg; break;
		default:
			fprintf(stderr, "usage: lct-uevent [-r READYFILE] [-t SECONDS] [-n COUNT] [-m SUBSTRING]\n");
			return 2;
		}
	}
	fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_KOBJECT_UEVENT);
	if (fd < 0) {
		perror("socket");
		return 1;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		perror("bind");
		return 1;
	}
	if (ready) {
		int r = open(ready, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		if (r >= 0)
			close(r);
	}
	deadline = now_ms() + seconds * 1000;
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		long left = deadline - now_ms();
		ssize_t n, i;
		size_t len = 0;
		int first = 1;

		if (left <= 0)
			break;
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		n = recv(fd, buf, sizeof(buf) - 1, 0);
		if (n <= 0)
			continue;
		buf[n] = 0;
		/* "ACTION@DEVPATH\0KEY=VAL\0...": skip the header, join the rest. */
		for (i = strlen(buf) + 1; i < n; i += strlen(buf + i) + 1) {
			size_t l = strlen(buf + i);

			if (len + l + 2 >= sizeof(line))
				break;
			if (!first)
				line[len++] = ' ';
			memcpy(line + len, buf + i, l);
			len += l;
			first = 0;
		}
		line[len] = 0;
		printf("%s\n", line);
		fflush(stdout);
		if (!match || strstr(line, match))
			seen++;
		if (want && seen >= want)
			break;
	}
	return 0;
}
