// SPDX-License-Identifier: GPL-2.0
/*
 * lct-addkeys: add many keys to a keyring with add_key(2), one process.
 *
 *   lct-addkeys [-t TYPE] [-k KEYRING] PREFIX FIRST COUNT SIZE KEYFILE
 *
 * Key i (FIRST <= i < FIRST+COUNT) gets description PREFIX<i> and the
 * SIZE bytes at offset i*SIZE of KEYFILE as payload.  TYPE defaults to
 * "logon", KEYRING to @u (@s, @us, @t, @p or a numeric id).  Forking one
 * keyctl per key costs milliseconds each under TCG; 65,536 keys need this.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long keyring_id(const char *s)
{
	if (!strcmp(s, "@t")) return -1;
	if (!strcmp(s, "@p")) return -2;
	if (!strcmp(s, "@s")) return -3;
	if (!strcmp(s, "@u")) return -4;
	if (!strcmp(s, "@us")) return -5;
	return strtol(s, NULL, 0);
}

int main(int argc, char **argv)
{
	const char *type = "logon", *ring = "@u";
	unsigned long first, count, size, i;
	unsigned char *buf;
	struct timespec t0, t1;
	char desc[512];
	long kr;
	int opt, fd;

	while ((opt = getopt(argc, argv, "t:k:")) != -1) {
		switch (opt) {
		case 't': type = optarg; break;
		case 'k': ring = optarg; break;
		default: goto usage;
		}
	}
	if (argc - optind != 5)
		goto usage;
	first = strtoul(argv[optind + 1], NULL, 0);
	count = strtoul(argv[optind + 2], NULL, 0);
	size = strtoul(argv[optind + 3], NULL, 0);
	kr = keyring_id(ring);
	fd = open(argv[optind + 4], O_RDONLY);
	if (fd < 0) {
		perror(argv[optind + 4]);
		return 1;
	}
	buf = malloc(size ? size : 1);
	if (!buf)
		return 1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = first; i < first + count; i++) {
		ssize_t n = pread(fd, buf, size, (off_t)(i * size));
		long id;

		if (n != (ssize_t)size) {
			fprintf(stderr, "lct-addkeys: short key file at key %lu\n", i);
			return 1;
		}
		snprintf(desc, sizeof(desc), "%s%lu", argv[optind], i);
		id = syscall(SYS_add_key, type, desc, buf, size, kr);
		if (id < 0) {
			fprintf(stderr, "lct-addkeys: add_key %s %s: %s\n", type, desc, strerror(errno));
			return 1;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	memset(buf, 0, size);
	fprintf(stderr, "lct-addkeys: added %lu %s keys in %ld ms\n", count, type,
		(long)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000));
	return 0;
usage:
	fprintf(stderr, "usage: lct-addkeys [-t TYPE] [-k KEYRING] PREFIX FIRST COUNT SIZE KEYFILE\n");
	return 2;
}
