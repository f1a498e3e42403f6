// SPDX-License-Identifier: GPL-2.0
/*
 * lakecrypt-probe: recognise a lakecrypt volume header on a block device
 * (or a file) and print udev properties, for
 *
 *   IMPORT{program}="lakecrypt-probe $devnode"
 *
 * The header is read only through agent/lib/header.c
 * (lc_header_identify_io), which picks the copy as the agent does: copy A
 * at offset 0, or copy B where copy A is damaged.  The probe runs on every
 * disk udev sees, so it is cheap whatever a header claims: it reads at
 * most LC_PROBE_BUDGET bytes of DEK tables (each copy's checksum streamed
 * in 64 KiB pieces) plus the fixed parts (LC_HDR_IDENTIFY_FIXED_MAX, about
 * 66 KiB), never past the two header areas, and holds about 100 KiB.  A
 * header too large to verify within the budget (over ~43,000 segments of
 * 64-byte keys per copy) is still recognised from its fixed part, every
 * field checked, and says LAKECRYPT_CHECKSUM=unverified; the agent reads
 * and verifies it in full when it opens the volume.  Only identity is
 * printed: the header holds wrapped keys only and none of them is printed.
 *
 * The workspace and project printed are labels: they come from a header
 * nobody has authenticated here (the header's MAC needs the KEK), so a
 * disk can claim any name.  Use them to find disks, never to decide who
 * may open one; the agent checks the binding when it opens the volume.
 *
 * Output: KEY=value lines (udev's IMPORT format).  Every value is limited
 * to [A-Za-z0-9._-]; any other byte (and a leading '.') is written as
 * \xNN, the encoding blkid uses for ID_FS_LABEL_ENC, so a hostile header
 * can neither inject a line nor a path component.
 *
 * When the two copies name different volumes or layouts and copy A is too
 * large to verify, the agent opens A if its checksum is right and B if
 * not: the probe then prints ID_FS_TYPE, ID_FS_USAGE, ID_FS_VERSION,
 * LAKECRYPT_IDENTITY=ambiguous and LAKECRYPT_CHECKSUM=unverified only, no
 * uuid, workspace or project (so no link names the disk).
 *
 * Only a block device or a regular file is probed: the path is opened
 * with O_NONBLOCK (a FIFO with no writer would block the open forever, and
 * udev kills a program that hangs only after its event timeout) and
 * checked with fstat() on that descriptor, so a FIFO, a directory, a
 * socket or a character device is an error (exit 1), never "no header".
 *
 * Exit status: 0 a valid header was found and printed, 2 no valid
 * lakecrypt header (nothing printed on stdout; the reason on stderr with
 * --verbose), 1 the device cannot be opened, is neither a block device nor
 * a regular file, or usage error.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <lakecrypt/ondisk.h>

#include "header.h"

/* Nothing past both copies' areas is ever read. */
#define LC_PROBE_READ_LIMIT	(2 * LC_HDR_AREA_MAX)
/* Bytes of DEK tables the probe streams to verify checksums, in all. */
#define LC_PROBE_BUDGET		(8ull << 20)

struct probe_io {
	int fd;
	uint64_t limit;
	uint64_t max_end;	/* highest byte offset read + 1, for tests */
	uint64_t bytes;		/* bytes read */
};

static ssize_t probe_pread(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct probe_io *p = ctx;
	ssize_t n;

	if (off >= p->limit)
		return 0;
	if (len > p->limit - off)
		len = (size_t)(p->limit - off);
	do {
		n = pread(p->fd, buf, len, (off_t)off);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	p->bytes += (uint64_t)n;
	if (n > 0 && off + (uint64_t)n > p->max_end)
		p->max_end = off + (uint64_t)n;
	return n;
}

static ssize_t probe_pwrite(void *ctx, const void *buf, size_t len, uint64_t off)
{
	(void)ctx, (void)buf, (void)len, (void)off;
	return -EROFS;	/* never called by a read */
}

static int probe_sync(void *ctx)
{
	(void)ctx;
	return -EROFS;
}

static bool safe_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

/* Escape @s (at most @max bytes, stops at NUL) into @out of @size bytes:
 * safe characters as they are, anything else and a leading '.' as \xNN.
 * Returns the length, or -1 if @out is too small (it is then ""). */
static int probe_escape(const char *s, size_t max, char *out, size_t size)
{
	static const char hexd[] = "0123456789abcdef";
	size_t o = 0;

	for (size_t i = 0; i < max && s[i]; i++) {
		unsigned char c = (unsigned char)s[i];

		if (safe_char(c) && !(i == 0 && c == '.')) {
			if (o + 1 >= size)
				goto full;
			out[o++] = (char)c;
		} else {
			if (o + 4 >= size)
				goto full;
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hexd[c >> 4];
			out[o++] = hexd[c & 15];
		}
	}
	if (size)
		out[o] = '\0';
	return (int)o;
full:
	if (size)
		out[0] = '\0';
	return -1;
}

static void put_kv(FILE *out, const char *key, const char *val, size_t max)
{
	char buf[4 * 256 + 1];

	if (probe_escape(val, max, buf, sizeof(buf)) > 0)
		fprintf(out, "%s=%s\n", key, buf);
}

static const char *state_name(enum lc_copy_state s)
{
	switch (s) {
	case LC_COPY_VALID:
		return "valid";
	case LC_COPY_STALE:
		return "stale";
	default:
		return "damaged";
	}
}

/* Probe the storage behind @io and print the properties to @out.
 * Returns 0 (found), 2 (no valid header) or 1 (read error). */
static int probe_io_print(const struct lc_header_io *io, FILE *out, FILE *diag)
{
	struct lc_header *h = NULL;
	struct lc_header_info info;
	struct lc_error e = { 0 };
	char uuid[37], ver[16];
	int r;

	r = lc_header_identify_io(io, LC_PROBE_BUDGET, &h, &info, &e);
	if (r == -EUCLEAN) {
		/* A lakecrypt header, but which volume the agent would open
		 * cannot be told within the budget: no identity at all (no
		 * ID_FS_UUID, no by-uuid or by-lakecrypt link) rather than
		 * perhaps another volume's. */
		if (diag)
			fprintf(diag, "lakecrypt-probe: %s\n", e.msg);
		snprintf(ver, sizeof(ver), "%u", (unsigned int)LC_HDR_VERSION);
		put_kv(out, "ID_FS_TYPE", "lakecrypt", SIZE_MAX);
		put_kv(out, "ID_FS_USAGE", "crypto", SIZE_MAX);
		put_kv(out, "ID_FS_VERSION", ver, sizeof(ver));
		put_kv(out, "LAKECRYPT_IDENTITY", "ambiguous", SIZE_MAX);
		put_kv(out, "LAKECRYPT_CHECKSUM", "unverified", SIZE_MAX);
		return ferror(out) ? 1 : 0;
	}
	if (r < 0) {
		if (diag)
			fprintf(diag, "lakecrypt-probe: %s\n", e.msg);
		return r == -ENOENT || r == -EINVAL ? 2 : 1;
	}
	lc_header_uuid_str(h, uuid);
	/* lc_header_decode() accepts the current version only. */
	snprintf(ver, sizeof(ver), "%u", (unsigned int)LC_HDR_VERSION);
	put_kv(out, "ID_FS_TYPE", "lakecrypt", SIZE_MAX);
	put_kv(out, "ID_FS_USAGE", "crypto", SIZE_MAX);
	put_kv(out, "ID_FS_VERSION", ver, sizeof(ver));
	put_kv(out, "ID_FS_UUID", uuid, sizeof(uuid));
	put_kv(out, "ID_FS_UUID_ENC", uuid, sizeof(uuid));
	put_kv(out, "LAKECRYPT_WORKSPACE", h->workspace, sizeof(h->workspace));
	put_kv(out, "LAKECRYPT_PROJECT", h->project, sizeof(h->project));
	put_kv(out, "LAKECRYPT_DETACHED", h->flags & LC_HDR_F_DETACHED ? "1" : "0", 2);
	put_kv(out, "LAKECRYPT_HEADER_COPY", info.used ? "B" : "A", 2);
	put_kv(out, "LAKECRYPT_COPY_A", state_name(info.state[0]), SIZE_MAX);
	put_kv(out, "LAKECRYPT_COPY_B", state_name(info.state[1]), SIZE_MAX);
	put_kv(out, "LAKECRYPT_CHECKSUM", info.checked[info.used] ? "verified" : "unverified",
	       SIZE_MAX);
	lc_header_free(h);
	return ferror(out) ? 1 : 0;
}

/* @max_end, @bytes (may be NULL): highest offset read + 1, bytes read. */
static int probe_fd(int fd, FILE *out, FILE *diag, uint64_t *max_end, uint64_t *bytes)
{
	struct probe_io p = { .fd = fd, .limit = LC_PROBE_READ_LIMIT };
	struct lc_header_io io = {
		.ctx = &p, .pread = probe_pread, .pwrite = probe_pwrite, .sync = probe_sync,
	};
	int r = probe_io_print(&io, out, diag);

	if (max_end)
		*max_end = p.max_end;
	if (bytes)
		*bytes = p.bytes;
	return r;
}

static int probe_main(int argc, char **argv, FILE *out)
{
	bool verbose = false;
	struct stat st;
	const char *path;
	int fd, r;

	if (argc == 3 && !strcmp(argv[1], "--verbose")) {
		verbose = true;
		path = argv[2];
	} else if (argc == 2 && strcmp(argv[1], "--help") && strcmp(argv[1], "-h")) {
		path = argv[1];
	} else {
		fprintf(argc == 2 ? stdout : stderr,
			"Usage: lakecrypt-probe [--verbose] DEVICE\n"
			"Print udev properties (ID_FS_TYPE=lakecrypt, ID_FS_UUID, LAKECRYPT_WORKSPACE,\n"
			"LAKECRYPT_PROJECT, ...) of the lakecrypt header on DEVICE.\n"
			"Exit status: 0 found, 2 no valid lakecrypt header, 1 error.\n");
		return argc == 2 ? 0 : 1;
	}
	/* O_NONBLOCK: opening a FIFO never waits for a writer.  It changes
	 * nothing for the reads of a block device or a regular file. */
	fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		fprintf(stderr, "lakecrypt-probe: %s: %s\n", path, strerror(errno));
		return 1;
	}
	if (fstat(fd, &st) < 0) {
		fprintf(stderr, "lakecrypt-probe: %s: %s\n", path, strerror(errno));
		close(fd);
		return 1;
	}
	if (!S_ISBLK(st.st_mode) && !S_ISREG(st.st_mode)) {
		fprintf(stderr, "lakecrypt-probe: %s: not a block device or a regular file\n", path);
		close(fd);
		return 1;
	}
	r = probe_fd(fd, out, verbose ? stderr : NULL, NULL, NULL);
	close(fd);
	return r;
}

#ifndef LC_PROBE_NO_MAIN
int main(int argc, char **argv)
{
	return probe_main(argc, argv, stdout);
}
#endif
