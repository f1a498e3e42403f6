// SPDX-License-Identifier: GPL-2.0
/*
 * lct-failwatch TIMEOUT_S DEV...
 * Read 4 KiB (O_DIRECT) from the start of every DEV in turn, about every
 * millisecond, until each read fails once or TIMEOUT_S (1..3600) seconds
 * pass.  For each DEV it prints "DEV MS" when its first read fails, MS
 * being CLOCK_REALTIME in milliseconds since the epoch (comparable with
 * the audit log's "time"), or "DEV never" at the timeout.  make bench uses
 * it for the time from the agent's revocation decision to every volume
 * failing I/O (a dd loop costs ~100 ms a try under TCG).
 * A device is closed once it failed, and SIGQUIT is ignored: a termination
 * hook signalling the holders of a revoked device (QUIT) must not end the
 * watch of the others.
 * Exit: 0 every DEV failed, 1 some never did, 2 usage or open error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAXDEV 16

static long long ms(clockid_t c)
{
	struct timespec ts;

	clock_gettime(c, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
	int fd[MAXDEV], done[MAXDEV] = { 0 }, ndev = argc - 2, left;
	char *end;
	long tmo = argc > 1 ? strtol(argv[1], &end, 10) : 0;
	long long deadline;
	void *buf;

	if (argc < 3 || ndev > MAXDEV || *end || tmo < 1 || tmo > 3600) {
		fprintf(stderr, "usage: lct-failwatch TIMEOUT_S DEV... (1..3600 s, 1..%d devices)\n", MAXDEV);
		return 2;
	}
	if (posix_memalign(&buf, 4096, 4096))
		return 2;
	signal(SIGQUIT, SIG_IGN);
	for (int i = 0; i < ndev; i++) {
		fd[i] = open(argv[i + 2], O_RDONLY | O_DIRECT | O_CLOEXEC);
		if (fd[i] < 0) {
			fprintf(stderr, "lct-failwatch: %s: %s\n", argv[i + 2], strerror(errno));
			return 2;
		}
	}
	deadline = ms(CLOCK_MONOTONIC) + tmo * 1000LL;
	left = ndev;
	while (left && ms(CLOCK_MONOTONIC) < deadline) {
		for (int i = 0; i < ndev; i++) {
			if (done[i])
				continue;
			if (pread(fd[i], buf, 4096, 0) != 4096) {
				printf("%s %lld\n", argv[i + 2], ms(CLOCK_REALTIME));
				fflush(stdout);
				close(fd[i]);
				done[i] = 1;
				left--;
			}
		}
		usleep(1000);
	}
	for (int i = 0; i < ndev; i++)
		if (!done[i])
			printf("%s never\n", argv[i + 2]);
	return left ? 1 : 0;
}
