// SPDX-License-Identifier: GPL-2.0
/*
 * lct-scan TEXT PATH      does TEXT occur in PATH (a block device or file)?
 * lct-scan --nonzero PATH how many bytes of PATH are not zero?
 *
 * Reads PATH from start to end in 1 MiB chunks, with O_DIRECT when the
 * path allows it (a block device's page cache may be stale below a dm
 * target), keeping len(TEXT) - 1 bytes of overlap so a match across two
 * chunks is found.  The PostgreSQL end-to-end test and demo use it to look
 * for a plaintext marker on raw disks (busybox tr | grep is minutes per
 * 256 MiB under TCG).
 * Exit: 0 found (prints "found at OFFSET") / counted (prints the count),
 * 1 not found, 2 usage or I/O error (a scan that could not read the whole
 * path is an error, never "not found").
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHUNK (1u << 20)
#define TEXT_MAX 4096u

int main(int argc, char **argv)
{
	int nonzero = argc == 3 && !strcmp(argv[1], "--nonzero");
	const char *text = argv[1], *path = argv[2];
	size_t tlen = nonzero ? 0 : strlen(text ? text : "");
	unsigned long long off = 0, count = 0;
	char *buf;
	size_t keep = 0;
	int fd;

	if (argc != 3 || (!nonzero && (tlen == 0 || tlen > TEXT_MAX))) {
		fprintf(stderr, "usage: lct-scan TEXT PATH | lct-scan --nonzero PATH (TEXT 1..%u bytes)\n",
			TEXT_MAX);
		return 2;
	}
	fd = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);
	if (fd < 0 && errno == EINVAL)
		fd = open(path, O_RDONLY | O_CLOEXEC);	/* tmpfs: no O_DIRECT */
	if (fd < 0) {
		fprintf(stderr, "lct-scan: %s: %s\n", path, strerror(errno));
		return 2;
	}
	/* TEXT_MAX bytes of overlap before the aligned read area. */
	if (posix_memalign((void **)&buf, 4096, TEXT_MAX + CHUNK)) {
		fprintf(stderr, "lct-scan: out of memory\n");
		return 2;
	}
	for (;;) {
		ssize_t n = read(fd, buf + TEXT_MAX, CHUNK);
		char *hit;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "lct-scan: %s: read at %llu: %s\n", path, off, strerror(errno));
			return 2;
		}
		if (n == 0)
			break;
		if (nonzero) {
			for (ssize_t i = 0; i < n; i++)
				count += buf[TEXT_MAX + i] != 0;
		} else {
			hit = memmem(buf + TEXT_MAX - keep, keep + (size_t)n, text, tlen);
			if (hit) {
				printf("found at %llu\n", off - keep + (unsigned long long)(hit - (buf + TEXT_MAX - keep)));
				return 0;
			}
			/* The last tlen - 1 bytes of the window (overlap + chunk). */
			size_t wlen = keep + (size_t)n, nk = wlen < tlen - 1 ? wlen : tlen - 1;

			memmove(buf + TEXT_MAX - nk, buf + TEXT_MAX + n - nk, nk);
			keep = nk;
		}
		off += (unsigned long long)n;
	}
	if (nonzero) {
		printf("%llu\n", count);
		return 0;
	}
	return 1;
}
