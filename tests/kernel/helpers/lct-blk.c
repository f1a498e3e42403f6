// SPDX-License-Identifier: GPL-2.0
/*
 * lct-blk: byte-exact block I/O for the lakecrypt selftests, where dd's
 * block arithmetic gets in the way.  Offsets and lengths are in bytes.
 * Block devices are read with O_DIRECT (aligned superset of the range) so
 * that a stale page cache never hides what is really on the device.
 *
 *   lct-blk zero  DEV OFF LEN          exit 0 if the range reads all zeros
 *   lct-blk cmp   A AOFF B BOFF LEN    exit 0 if the ranges are equal
 *   lct-blk hex   FILE OFF LEN         print the range as lower-case hex
 *   lct-blk unhex                      stdin hex text to bytes on stdout
 *   lct-blk pread [-d] DEV OFF LEN OUT
 *         one read into a buffer pre-filled with 0xa5; print "ret=N errno=E";
 *         OUT gets the whole buffer whatever happened; exit 0 on a full read
 *   lct-blk pwrite [-d] [-s] DEV OFF LEN IN INOFF
 *         write LEN bytes of IN (from INOFF) at OFF; -s adds O_SYNC|O_DSYNC
 *         (FUA on the way down); exit 0 on a full write, then fsync
 *   lct-blk stress DEV SIZE BS NPROC SECONDS [MARKFILE]
 *         NPROC processes doing random O_DIRECT BS-sized reads and writes
 *         inside [0, SIZE) for SECONDS; ops started after MARKFILE exists
 *         are counted apart ("after_ok"/"after_err"), and each process
 *         stops after 16 of them (so that a slow guest, where SECONDS may
 *         run out before the mark, still ends); a failed read whose
 *         buffer holds anything but its 0xa5 fill or zeros counts as a
 *         "dirty_failed_read", a failure after 20 ms or more as "slow_err"
 *         (it reached the device); prints totals, the errnos seen and the
 *         slowest single operation
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ALIGN 4096ULL

static unsigned long long num(const char *s)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 0);

	if (*s == 0 || *end) {
		fprintf(stderr, "lct-blk: bad number '%s'\n", s);
		exit(2);
	}
	return v;
}

static void *abuf(size_t len)
{
	void *p;

	if (posix_memalign(&p, ALIGN, len ? len : ALIGN)) {
		fprintf(stderr, "lct-blk: out of memory\n");
		exit(3);
	}
	return p;
}

static int is_blk(const char *path)
{
	struct stat st;

	return !stat(path, &st) && S_ISBLK(st.st_mode);
}

/* Read [off, off+len) of path into out; O_DIRECT on block devices, in
 * units of their logical block size. */
static int read_region(const char *path, unsigned long long off, size_t len, unsigned char *out)
{
	int direct = is_blk(path);
	int fd = open(path, O_RDONLY | (direct ? O_DIRECT : 0));
	unsigned long long al = 1, a0, a1;
	size_t alen, done = 0;
	unsigned char *b;
	int lbs = 512;

	if (fd < 0) {
		fprintf(stderr, "lct-blk: open %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (direct && !ioctl(fd, BLKSSZGET, &lbs) && lbs > 0)
		al = lbs;
	a0 = off / al * al;
	a1 = (off + len + al - 1) / al * al;
	alen = a1 - a0;
	b = abuf(alen);
	while (done < alen) {
		ssize_t n = pread(fd, b + done, alen - done, a0 + done);

		if (n < 0) {
			fprintf(stderr, "lct-blk: read %s at %llu: %s\n", path, a0 + done, strerror(errno));
			close(fd);
			free(b);
			return -1;
		}
		if (n == 0) {
			fprintf(stderr, "lct-blk: %s ends at %llu\n", path, a0 + done);
			close(fd);
			free(b);
			return -1;
		}
		done += n;
	}
	memcpy(out, b + (off - a0), len);
	close(fd);
	free(b);
	return 0;
}

static int cmd_zero(char **av)
{
	unsigned long long off = num(av[1]), len = num(av[2]), pos;
	size_t chunk = 1 << 20;
	unsigned char *b = abuf(chunk);

	for (pos = 0; pos < len; pos += chunk) {
		size_t l = len - pos < chunk ? len - pos : chunk, i;

		if (read_region(av[0], off + pos, l, b))
			return 3;
		for (i = 0; i < l; i++)
			if (b[i]) {
				printf("nonzero byte at %llu\n", off + pos + i);
				return 1;
			}
	}
	return 0;
}

static int cmd_cmp(char **av)
{
	unsigned long long ao = num(av[1]), bo = num(av[3]), len = num(av[4]), pos;
	size_t chunk = 1 << 20;
	unsigned char *x = abuf(chunk), *y = abuf(chunk);

	for (pos = 0; pos < len; pos += chunk) {
		size_t l = len - pos < chunk ? len - pos : chunk, i;

		if (read_region(av[0], ao + pos, l, x) || read_region(av[2], bo + pos, l, y))
			return 3;
		if (memcmp(x, y, l))
			for (i = 0; i < l; i++)
				if (x[i] != y[i]) {
					printf("differ at +%llu (%s@%llu, %s@%llu)\n", pos + i,
					       av[0], ao + pos + i, av[2], bo + pos + i);
					return 1;
				}
	}
	return 0;
}

static int cmd_hex(char **av)
{
	unsigned long long off = num(av[1]), len = num(av[2]), i;
	unsigned char *b = abuf(len);

	if (read_region(av[0], off, len, b))
		return 3;
	for (i = 0; i < len; i++)
		printf("%02x", b[i]);
	printf("\n");
	return 0;
}

static int cmd_unhex(void)
{
	int c, hi = -1;

	while ((c = getchar()) != EOF) {
		int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 :
			c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;

		if (v < 0)
			continue;
		if (hi < 0) {
			hi = v;
		} else {
			putchar(hi << 4 | v);
			hi = -1;
		}
	}
	return 0;
}

static int cmd_pread(int direct, char **av)
{
	unsigned long long off = num(av[1]), len = num(av[2]);
	unsigned char *b = abuf(len);
	ssize_t n;
	int fd, out, e;

	memset(b, 0xa5, len);
	fd = open(av[0], O_RDONLY | (direct ? O_DIRECT : 0));
	if (fd < 0) {
		printf("open: %s\n", strerror(errno));
		return 3;
	}
	n = pread(fd, b, len, off);
	e = n < 0 ? errno : 0;
	printf("ret=%zd errno=%d%s%s\n", n, e, e ? " " : "", e ? strerror(e) : "");
	out = open(av[3], O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (out < 0 || write(out, b, len) != (ssize_t)len)
		return 3;
	close(out);
	return n == (ssize_t)len ? 0 : 1;
}

static int cmd_pwrite(int direct, int sync, char **av)
{
	unsigned long long off = num(av[1]), len = num(av[2]), inoff = num(av[4]);
	unsigned char *b = abuf(len);
	ssize_t n;
	int fd, e;

	if (read_region(av[3], inoff, len, b))
		return 3;
	fd = open(av[0], O_WRONLY | (direct ? O_DIRECT : 0) | (sync ? O_SYNC | O_DSYNC : 0));
	if (fd < 0) {
		printf("open: %s\n", strerror(errno));
		return 3;
	}
	n = pwrite(fd, b, len, off);
	e = n < 0 ? errno : 0;
	if (n == (ssize_t)len && fsync(fd)) {
		e = errno;
		n = -1;
	}
	printf("ret=%zd errno=%d%s%s\n", n, e, e ? " " : "", e ? strerror(e) : "");
	close(fd);
	return n == (ssize_t)len ? 0 : 1;
}

struct stats {
	long ok, err, after_ok, after_err, eio, other, max_us, dirty, slow_err;
	int other_errno;
};

static long now_us(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000L + t.tv_nsec / 1000;
}

static int cmd_stress(int readonly, char **av, int ac)
{
	unsigned long long size = num(av[1]), bs = num(av[2]);
	long nproc = num(av[3]), seconds = num(av[4]), i;
	const char *mark = ac > 5 ? av[5] : NULL;
	struct stats *st = mmap(NULL, sizeof(*st) * nproc, PROT_READ | PROT_WRITE,
				MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct stats tot = { 0 };
	unsigned long long blocks = size / bs;

	if (st == MAP_FAILED || !blocks || nproc < 1)
		return 2;
	memset(st, 0, sizeof(*st) * nproc);
	for (i = 0; i < nproc; i++) {
		if (fork() == 0) {
			struct stats *s = &st[i];
			unsigned char *b = abuf(bs);
			long end = now_us() + seconds * 1000000L;
			unsigned int seed = getpid();
			int fd = open(av[0], O_RDWR | O_DIRECT);

			if (fd < 0)
				_exit(3);
			for (unsigned long long k = 0; k < bs; k++)
				b[k] = rand_r(&seed);
			int after_n = 0;

			while (now_us() < end && after_n < 16) {
				unsigned long long blk = ((unsigned long long)rand_r(&seed) << 16 ^ rand_r(&seed)) % blocks;
				int after = mark && access(mark, F_OK) == 0;

				after_n += after;
				long t0, dt;
				int rd = readonly || (rand_r(&seed) & 1);
				ssize_t n;
				int e;

				if (rd)
					memset(b, 0xa5, bs);
				t0 = now_us();
				n = rd ? pread(fd, b, bs, blk * bs) : pwrite(fd, b, bs, blk * bs);
				e = errno;
				/* A failed read may leave the buffer as it was or zeroed,
				 * never with data (ciphertext or plaintext) in it. */
				if (rd && n != (ssize_t)bs)
					for (unsigned long long k = 0; k < bs; k += 512) {
						unsigned char c = b[k];
						unsigned long long j;

						for (j = k; j < k + 512 && b[j] == c; j++)
							;
						if (j < k + 512 || (c != 0 && c != 0xa5)) {
							s->dirty++;
							break;
						}
					}

				dt = now_us() - t0;
				if (dt > s->max_us)
					s->max_us = dt;
				if (n == (ssize_t)bs) {
					s->ok++;
					s->after_ok += after;
				} else {
					s->err++;
					s->slow_err += dt >= 20000;
					s->after_err += after;
					if (n < 0 && e == EIO)
						s->eio++;
					else {
						s->other++;
						s->other_errno = n < 0 ? e : -1;
					}
				}
			}
			_exit(0);
		}
	}
	for (i = 0; i < nproc; i++)
		wait(NULL);
	for (i = 0; i < nproc; i++) {
		tot.ok += st[i].ok;
		tot.err += st[i].err;
		tot.after_ok += st[i].after_ok;
		tot.after_err += st[i].after_err;
		tot.eio += st[i].eio;
		tot.other += st[i].other;
		tot.dirty += st[i].dirty;
		tot.slow_err += st[i].slow_err;
		if (st[i].other_errno)
			tot.other_errno = st[i].other_errno;
		if (st[i].max_us > tot.max_us)
			tot.max_us = st[i].max_us;
	}
	printf("ok=%ld err=%ld after_ok=%ld after_err=%ld eio=%ld other=%ld other_errno=%d dirty_failed_reads=%ld slow_err=%ld max_op_ms=%ld\n",
	       tot.ok, tot.err, tot.after_ok, tot.after_err, tot.eio, tot.other, tot.other_errno,
	       tot.dirty, tot.slow_err, tot.max_us / 1000);
	return 0;
}

int main(int argc, char **argv)
{
	int direct = 0, sync = 0, readonly = 0;
	const char *c = argc > 1 ? argv[1] : "";

	argv += 2;
	argc -= 2;
	while (argc > 0 && argv[0][0] == '-' && argv[0][1]) {
		if (!strcmp(argv[0], "-d"))
			direct = 1;
		else if (!strcmp(argv[0], "-s"))
			sync = 1;
		else if (!strcmp(argv[0], "-r"))
			readonly = 1;
		else
			break;
		argv++;
		argc--;
	}
	if (!strcmp(c, "zero") && argc == 3)
		return cmd_zero(argv);
	if (!strcmp(c, "cmp") && argc == 5)
		return cmd_cmp(argv);
	if (!strcmp(c, "hex") && argc == 3)
		return cmd_hex(argv);
	if (!strcmp(c, "unhex") && argc == 0)
		return cmd_unhex();
	if (!strcmp(c, "pread") && argc == 4)
		return cmd_pread(direct, argv);
	if (!strcmp(c, "pwrite") && argc == 5)
		return cmd_pwrite(direct, sync, argv);
	if (!strcmp(c, "stress") && (argc == 5 || argc == 6))
		return cmd_stress(readonly, argv, argc);
	fprintf(stderr, "usage: see the comment at the top of lct-blk.c\n");
	return 2;
}
