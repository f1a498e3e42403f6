// SPDX-License-Identifier: GPL-2.0
/*
 * Unit tests of the udev probe (udev/lakecrypt-probe.c) on crafted images:
 * a good attached header, a detached one, copy A damaged (copy B probes),
 * both copies damaged, garbage, an empty file, hostile strings in a
 * header whose checksum is right, and the escaping of every byte.  Each
 * case also checks that the probe read nothing past the header areas and
 * printed only its own keys (no key material can appear).
 */
#define LC_PROBE_NO_MAIN
#include "../../udev/lakecrypt-probe.c"

#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/stat.h>

#include <cmocka.h>

static char dir[64];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/lc-probe-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void set_buf(struct lc_buf *b, const void *p, size_t len)
{
	free(b->p);
	b->p = malloc(len);
	assert_non_null(b->p);
	memcpy(b->p, p, len);
	b->len = len;
}

static struct lc_header *make_header(uint32_t count, bool detached)
{
	struct lc_header *h = lc_header_new(count, 64);
	uint8_t kek[200];
	char uuid[37];

	assert_non_null(h);
	for (size_t i = 0; i < LC_UUID_LEN; i++)
		h->uuid[i] = (uint8_t)(0x11 * (i + 1));
	h->uuid[6] = 0x4f;
	h->uuid[8] = 0x8f;
	h->created = 1700000000;
	h->segment_sectors = 2048;
	h->flags = detached ? LC_HDR_F_DETACHED : 0;
	if (detached)
		h->data_offset = 0;
	else
		assert_int_equal(lc_header_layout(count, 64, NULL, NULL, &h->data_offset, NULL), 0);
	snprintf(h->workspace, sizeof(h->workspace), "finance");
	snprintf(h->project, sizeof(h->project), "ledger-2026.q4_x");
	snprintf(h->keyconfig, sizeof(h->keyconfig), "kc1");
	snprintf(h->provider, sizeof(h->provider), "local");
	snprintf(h->provider_ref, sizeof(h->provider_ref), "lk-secretref");
	snprintf(h->cmk_id, sizeof(h->cmk_id), "cmk-1");
	memset(kek, 0xab, sizeof(kek));
	set_buf(&h->wrapped_kek, kek, sizeof(kek));
	lc_header_uuid_str(h, uuid);
	set_buf(&h->wrap_context, uuid, strlen(uuid));
	for (uint32_t i = 0; i < count; i++)
		memset(h->deks[i].ct, 0xcd, 64);
	return h;
}

static void put_le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void write_image(const char *path, struct lc_header *h, uint64_t size)
{
	struct lc_error e = { 0 };
	int fd;

	unlink(path);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	if (size)
		assert_int_equal(ftruncate(fd, (off_t)size), 0);
	if (lc_header_write(fd, h, &e))
		fail_msg("lc_header_write: %s", e.msg);
	close(fd);
}

static void patch(const char *path, uint64_t off, const void *p, size_t len)
{
	int fd = open(path, O_RDWR);

	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, p, len, (off_t)off), (ssize_t)len);
	close(fd);
}

struct run {
	int rc;
	char out[4096];
	uint64_t max_end;
	uint64_t bytes;		/* bytes the probe read */
};

/* Run the probe on @path; check that every output line is KEY=value with
 * a known key and a value of safe characters or \xNN escapes only. */
static void run_probe(const char *path, struct run *res)
{
	static const char *const keys[] = {
		"ID_FS_TYPE", "ID_FS_USAGE", "ID_FS_VERSION", "ID_FS_UUID", "ID_FS_UUID_ENC",
		"LAKECRYPT_WORKSPACE", "LAKECRYPT_PROJECT", "LAKECRYPT_DETACHED",
		"LAKECRYPT_HEADER_COPY", "LAKECRYPT_COPY_A", "LAKECRYPT_COPY_B",
		"LAKECRYPT_CHECKSUM", "LAKECRYPT_IDENTITY",
	};
	char *buf = NULL, *line, *save = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	int fd = open(path, O_RDONLY);

	assert_non_null(out);
	assert_true(fd >= 0);
	res->rc = probe_fd(fd, out, NULL, &res->max_end, &res->bytes);
	close(fd);
	fclose(out);
	assert_true(len < sizeof(res->out));
	memcpy(res->out, buf, len + 1);
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *eq = strchr(line, '=');
		bool known = false;

		assert_non_null(eq);
		*eq = '\0';
		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
			known |= !strcmp(line, keys[i]);
		if (!known)
			fail_msg("unexpected key %s", line);
		for (const char *v = eq + 1; *v; v++)
			assert_true(safe_char((unsigned char)*v) || *v == '\\');
		assert_true(eq[1] != '.');
	}
	free(buf);
	/* Never past the two header areas, never more than the budget. */
	assert_true(res->max_end <= LC_PROBE_READ_LIMIT);
	assert_true(res->bytes <= LC_HDR_IDENTIFY_FIXED_MAX + LC_PROBE_BUDGET);
}

static void assert_has(const struct run *r, const char *line)
{
	char want[256];

	snprintf(want, sizeof(want), "%s\n", line);
	if (!strstr(r->out, want))
		fail_msg("missing \"%s\" in:\n%s", line, r->out);
}

static void test_good(void **state)
{
	struct lc_header *h = make_header(16, false);
	uint64_t area;
	struct run r;
	char path[128], want[1024];

	(void)state;
	snprintf(path, sizeof(path), "%s/good.img", dir);
	write_image(path, h, (h->data_offset + 16 * 2048) * 512);
	run_probe(path, &r);
	assert_int_equal(r.rc, 0);
	/* The version is the one the header reader accepts (it follows
	 * agent/lib/header.c when the format changes). */
	snprintf(want, sizeof(want),
		 "ID_FS_TYPE=lakecrypt\n"
		 "ID_FS_USAGE=crypto\n"
		 "ID_FS_VERSION=%u\n"
		 "ID_FS_UUID=11223344-5566-4f88-8faa-bbccddeeff10\n"
		 "ID_FS_UUID_ENC=11223344-5566-4f88-8faa-bbccddeeff10\n"
		 "LAKECRYPT_WORKSPACE=finance\n"
		 "LAKECRYPT_PROJECT=ledger-2026.q4_x\n"
		 "LAKECRYPT_DETACHED=0\n"
		 "LAKECRYPT_HEADER_COPY=A\n"
		 "LAKECRYPT_COPY_A=valid\n"
		 "LAKECRYPT_COPY_B=valid\n"
		 "LAKECRYPT_CHECKSUM=verified\n", (unsigned int)LC_HDR_VERSION);
	assert_string_equal(r.out, want);
	/* Only the header area: both copies, nothing of the data area. */
	assert_int_equal(lc_header_layout(16, 64, NULL, &area, NULL, NULL), 0);
	assert_true(r.max_end <= 2 * area);
	lc_header_free(h);
}

static void test_detached(void **state)
{
	struct lc_header *h = make_header(4, true);
	struct run r;
	char path[128];

	(void)state;
	snprintf(path, sizeof(path), "%s/detached.hdr", dir);
	write_image(path, h, 0);
	run_probe(path, &r);
	assert_int_equal(r.rc, 0);
	assert_has(&r, "LAKECRYPT_DETACHED=1");
	lc_header_free(h);
}

static void test_copy_a_damaged(void **state)
{
	struct lc_header *h = make_header(16, false);
	static const uint8_t zero[LC_HDR_MAGIC_LEN];
	uint8_t junk[64];
	struct run r;
	char path[128];

	(void)state;
	snprintf(path, sizeof(path), "%s/a-bad.img", dir);
	/* A checksum error in copy A (its area field still points at B). */
	write_image(path, h, (h->data_offset + 16 * 2048) * 512);
	memset(junk, 0x5a, sizeof(junk));
	patch(path, LC_HDR_OFF_WORKSPACE, junk, sizeof(junk));
	run_probe(path, &r);
	assert_int_equal(r.rc, 0);
	assert_has(&r, "LAKECRYPT_HEADER_COPY=B");
	assert_has(&r, "LAKECRYPT_COPY_A=damaged");
	assert_has(&r, "LAKECRYPT_WORKSPACE=finance");
	assert_has(&r, "ID_FS_TYPE=lakecrypt");

	/* Copy A wiped entirely (no magic): copy B is searched for. */
	patch(path, 0, zero, sizeof(zero));
	run_probe(path, &r);
	assert_int_equal(r.rc, 0);
	assert_has(&r, "LAKECRYPT_HEADER_COPY=B");
	assert_has(&r, "ID_FS_UUID=11223344-5566-4f88-8faa-bbccddeeff10");
	lc_header_free(h);
}

/* A damaged DEK record in copy A: only the checksum, streamed over the
 * whole copy, can see it. */
static void test_table_damaged(void **state)
{
	struct lc_header *h = make_header(16, false);
	static const uint8_t junk[4] = { 1, 2, 3, 4 };
	struct run r;
	char path[128];

	(void)state;
	snprintf(path, sizeof(path), "%s/table-bad.img", dir);
	write_image(path, h, (h->data_offset + 16 * 2048) * 512);
	patch(path, LC_HDR_FIXED_SIZE + 15 * lc_header_dek_stride(64) + LC_DEK_REC_OFF_CT, junk,
	      sizeof(junk));
	run_probe(path, &r);
	assert_int_equal(r.rc, 0);
	assert_has(&r, "LAKECRYPT_HEADER_COPY=B");
	assert_has(&r, "LAKECRYPT_COPY_A=damaged");
	assert_has(&r, "LAKECRYPT_CHECKSUM=verified");
	lc_header_free(h);
}

/*
 * From the review of issue 11: a hostile header whose sizes are consistent
 * with its layout but huge (2^20 segments of 64-byte keys: 96 MiB per
 * copy, areas of 128 MiB) and whose checksums are right.  The probe used to
 * read both copies in full (192 MiB, and hold them) on every uevent of the
 * disk; now it reads the fixed parts and at most LC_PROBE_BUDGET bytes, and
 * still recognises the volume, saying its checksum is unverified.  With a
 * wrong checksum, the same bound.
 */
static void write_huge(const char *path, bool good_sum)
{
	struct lc_header *h = make_header(4, false);
	struct lc_error e = { 0 };
	uint64_t hdr, area, data;
	uint8_t *enc = NULL, *buf;
	size_t len = 0;
	int fd;

	assert_int_equal(lc_header_layout(1u << 20, 64, &hdr, &area, &data, NULL), 0);
	assert_true(hdr > 64ull << 20);
	assert_int_equal(lc_header_encode(h, 0, &enc, &len, &e), 0);
	buf = calloc(1, hdr);
	assert_non_null(buf);
	memcpy(buf, enc, LC_HDR_FIXED_SIZE);
	put_le(buf + LC_HDR_OFF_SEGMENT_COUNT, 1u << 20, 4);
	put_le(buf + LC_HDR_OFF_HDR_SIZE, hdr, 8);
	put_le(buf + LC_HDR_OFF_AREA_SIZE, area, 8);
	put_le(buf + LC_HDR_OFF_DATA_OFFSET, data, 8);
	unlink(path);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)(data * 512 + (1 << 20))), 0);
	for (int copy = 0; copy < 2; copy++) {
		put_le(buf + LC_HDR_OFF_COPY, (uint64_t)copy, 2);
		memset(buf + LC_HDR_OFF_CHECKSUM, 0, LC_HDR_CHECKSUM_LEN);
		assert_int_equal(lc_header_checksum(buf, hdr, buf + LC_HDR_OFF_CHECKSUM), 0);
		if (!good_sum)
			buf[LC_HDR_OFF_CHECKSUM] ^= 1;
		/* the DEK table is zeros: the sparse file holds them */
		assert_int_equal(pwrite(fd, buf, LC_HDR_FIXED_SIZE, (off_t)(copy ? area : 0)),
				 LC_HDR_FIXED_SIZE);
	}
	close(fd);
	free(buf);
	free(enc);
	lc_header_free(h);
}

static void test_hostile_huge(void **state)
{
	struct run r;
	char path[128];

	(void)state;
	snprintf(path, sizeof(path), "%s/huge.img", dir);
	for (int good = 1; good >= 0; good--) {
		write_huge(path, good);
		run_probe(path, &r);	/* asserts the byte bound */
		print_message("# consistent 96 MiB header copies, checksum %s: %" PRIu64
			      " bytes read (bound %llu)\n", good ? "right" : "wrong", r.bytes,
			      LC_HDR_IDENTIFY_FIXED_MAX + LC_PROBE_BUDGET);
		assert_true(r.bytes <= LC_HDR_IDENTIFY_FIXED_MAX + LC_PROBE_BUDGET);
		assert_int_equal(r.rc, 0);
		assert_has(&r, "ID_FS_UUID=11223344-5566-4f88-8faa-bbccddeeff10");
		assert_has(&r, "LAKECRYPT_CHECKSUM=unverified");
	}
	unlink(path);
}

static void test_both_damaged(void **state)
{
	struct lc_header *h = make_header(16, false);
	uint8_t junk[64];
	uint64_t area;
	struct run r;
	char path[128];

	(void)state;
	snprintf(path, sizeof(path), "%s/both-bad.img", dir);
	write_image(path, h, (h->data_offset + 16 * 2048) * 512);
	assert_int_equal(lc_header_layout(16, 64, NULL, &area, NULL, NULL), 0);
	memset(junk, 0x5a, sizeof(junk));
	patch(path, LC_HDR_OFF_PROJECT, junk, sizeof(junk));
	patch(path, area + LC_HDR_OFF_PROJECT, junk, sizeof(junk));
	run_probe(path, &r);
	assert_int_equal(r.rc, 2);
	assert_string_equal(r.out, "");
	lc_header_free(h);
}

static void test_garbage(void **state)
{
	uint8_t buf[4096];
	uint64_t x = 88172645463325252ull;
	struct run r;
	char path[128];
	int fd;

	(void)state;
	snprintf(path, sizeof(path), "%s/garbage.img", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	for (int blk = 0; blk < 1024; blk++) {	/* 4 MiB of noise */
		for (size_t i = 0; i < sizeof(buf); i++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			buf[i] = (uint8_t)x;
		}
		assert_int_equal(write(fd, buf, sizeof(buf)), (ssize_t)sizeof(buf));
	}
	/* and a lone magic at offset 1 MiB that must not confuse it */
	assert_int_equal(pwrite(fd, LC_HDR_MAGIC, LC_HDR_MAGIC_LEN, 1 << 20), LC_HDR_MAGIC_LEN);
	close(fd);
	run_probe(path, &r);
	assert_int_equal(r.rc, 2);
	assert_string_equal(r.out, "");

	snprintf(path, sizeof(path), "%s/empty.img", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	close(fd);
	run_probe(path, &r);
	assert_int_equal(r.rc, 2);
	assert_string_equal(r.out, "");
	assert_int_equal(r.max_end, 0);
}

/* A header whose names carry a newline, shell and a path: the checksum is
 * recomputed, as an attacker would.  The probe prints either nothing (the
 * decoder refuses the names) or escaped values: never an injected line. */
static void test_hostile_strings(void **state)
{
	static const char *const evil[] = {
		"ws\nID_FS_TYPE=ext4",
		"$(reboot)`id`;\"'\\",
		"../../../etc",
		"a/b",
		"x\x01\x7f\xff",
	};
	struct lc_header *h = make_header(4, false);
	struct lc_error e = { 0 };
	uint8_t *buf = NULL;
	size_t len = 0;
	char path[128];

	(void)state;
	snprintf(path, sizeof(path), "%s/hostile.img", dir);
	for (size_t i = 0; i < sizeof(evil) / sizeof(evil[0]); i++) {
		uint8_t field[LC_HDR_NAME_SIZE] = { 0 };
		struct run r;
		int fd;

		assert_int_equal(lc_header_encode(h, 0, &buf, &len, &e), 0);
		memcpy(field, evil[i], strlen(evil[i]));
		memcpy(buf + LC_HDR_OFF_WORKSPACE, field, sizeof(field));
		memcpy(buf + LC_HDR_OFF_PROJECT, field, sizeof(field));
		memset(buf + LC_HDR_OFF_CHECKSUM, 0, LC_HDR_CHECKSUM_LEN);
		assert_int_equal(lc_header_checksum(buf, len, buf + LC_HDR_OFF_CHECKSUM), 0);
		unlink(path);
		fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
		assert_true(fd >= 0);
		assert_int_equal(pwrite(fd, buf, len, 0), (ssize_t)len);
		assert_int_equal(ftruncate(fd, 4 << 20), 0);
		close(fd);
		free(buf);
		buf = NULL;
		run_probe(path, &r);	/* checks every line */
		assert_null(strstr(r.out, "ext4"));
		assert_null(strstr(r.out, "/"));
		assert_null(strstr(r.out, "$("));
		if (r.rc == 0)
			assert_null(strstr(r.out, "WORKSPACE=finance"));
		else
			assert_string_equal(r.out, "");
	}
	lc_header_free(h);
}

static void test_escape(void **state)
{
	char out[64];

	(void)state;
	assert_int_equal(probe_escape("ab.C_9-x", SIZE_MAX, out, sizeof(out)), 8);
	assert_string_equal(out, "ab.C_9-x");
	probe_escape("a\nb=c d", SIZE_MAX, out, sizeof(out));
	assert_string_equal(out, "a\\x0ab\\x3dc\\x20d");
	probe_escape("../x/y", SIZE_MAX, out, sizeof(out));
	assert_string_equal(out, "\\x2e.\\x2fx\\x2fy");
	probe_escape("$`\"'\\\xff", SIZE_MAX, out, sizeof(out));
	assert_string_equal(out, "\\x24\\x60\\x22\\x27\\x5c\\xff");
	/* stops at @max, even without a NUL */
	assert_int_equal(probe_escape("abcdef", 3, out, sizeof(out)), 3);
	assert_string_equal(out, "abc");
	/* too small: nothing rather than a truncated escape */
	assert_int_equal(probe_escape("\n\n\n", SIZE_MAX, out, 8), -1);
	assert_string_equal(out, "");
	assert_int_equal(probe_escape("", SIZE_MAX, out, sizeof(out)), 0);
	/* every byte: safe ones kept, others escaped, no control char out */
	for (int c = 1; c < 256; c++) {
		char in[2] = { (char)c, 0 };

		probe_escape(in, SIZE_MAX, out, sizeof(out));
		for (const char *p = out; *p; p++)
			assert_true(safe_char((unsigned char)*p) || *p == '\\');
	}
}

static void test_cli(void **state)
{
	char *argv_bad[] = { "lakecrypt-probe", "/nonexistent/device", NULL };
	char *argv_none[] = { "lakecrypt-probe", NULL };
	FILE *devnull = fopen("/dev/null", "w");

	(void)state;
	assert_non_null(devnull);
	assert_int_equal(probe_main(2, argv_bad, devnull), 1);
	assert_int_equal(probe_main(1, argv_none, devnull), 1);
	fclose(devnull);
}

/*
 * Only a block device or a regular file is probed; anything else is an
 * error (1), not "no header" (2).  A FIFO with no writer used to block the
 * probe's open() forever and a directory or /dev/null exited 2.  alarm()
 * bounds a regression (the program dies instead of hanging CI); it is no
 * timed assertion: the FIFO case returns at once or never.
 */
static void test_not_a_disk(void **state)
{
	char fifo[128], *argv[] = { "lakecrypt-probe", NULL, NULL };
	char *argv_v[] = { "lakecrypt-probe", "--verbose", NULL, NULL };
	FILE *out = tmpfile();

	(void)state;
	assert_non_null(out);
	snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	alarm(60);
	argv[1] = fifo;
	assert_int_equal(probe_main(2, argv, out), 1);
	argv[1] = dir;
	assert_int_equal(probe_main(2, argv, out), 1);
	argv_v[2] = "/dev/null";
	assert_int_equal(probe_main(3, argv_v, out), 1);
	argv_v[2] = "/dev/zero";
	assert_int_equal(probe_main(3, argv_v, out), 1);
	alarm(0);
	/* nothing on stdout for any of them */
	assert_int_equal(ftell(out), 0);
	fclose(out);
	unlink(fifo);
}

static ssize_t f_pread(void *ctx, void *buf, size_t len, uint64_t off)
{
	ssize_t n = pread(*(int *)ctx, buf, len, (off_t)off);

	return n < 0 ? -errno : n;
}

/*
 * Both copies too large to verify within the budget; copy A (uuid ...ff10)
 * has a wrong checksum, copy B (...ffee) is right.  The agent's reader
 * takes B; the probe used to print A's uuid.  It prints no identity now
 * (nor does it when A's checksum is right: it cannot know which).
 */
static void test_divergent_unverified(void **state)
{
	struct lc_header *h = make_header(4, false), *got = NULL;
	struct lc_header_info info;
	struct lc_error e = { 0 };
	uint64_t hdr, area, data;
	uint8_t *enc = NULL, *buf;
	size_t len = 0;
	char path[128], u[37];
	struct run r;
	int fd;

	(void)state;
	snprintf(path, sizeof(path), "%s/div.img", dir);
	assert_int_equal(lc_header_layout(1u << 17, 64, &hdr, &area, &data, NULL), 0);
	assert_true(hdr > LC_PROBE_BUDGET);
	assert_int_equal(lc_header_encode(h, 0, &enc, &len, &e), 0);
	buf = calloc(1, hdr);
	assert_non_null(buf);
	memcpy(buf, enc, LC_HDR_FIXED_SIZE);
	put_le(buf + LC_HDR_OFF_SEGMENT_COUNT, 1u << 17, 4);
	put_le(buf + LC_HDR_OFF_HDR_SIZE, hdr, 8);
	put_le(buf + LC_HDR_OFF_AREA_SIZE, area, 8);
	put_le(buf + LC_HDR_OFF_DATA_OFFSET, data, 8);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)(data * 512 + (1 << 20))), 0);
	/* copy B: uuid ...ffee, right checksum */
	buf[LC_HDR_OFF_UUID + 15] = 0xee;
	put_le(buf + LC_HDR_OFF_COPY, 1, 2);
	memset(buf + LC_HDR_OFF_CHECKSUM, 0, 32);
	lc_header_checksum(buf, hdr, buf + LC_HDR_OFF_CHECKSUM);
	assert_int_equal(pwrite(fd, buf, hdr, (off_t)area), (ssize_t)hdr);
	/* copy A: uuid ...ff10, wrong checksum */
	buf[LC_HDR_OFF_UUID + 15] = 0x10;
	put_le(buf + LC_HDR_OFF_COPY, 0, 2);
	memset(buf + LC_HDR_OFF_CHECKSUM, 0x5a, 32);
	assert_int_equal(pwrite(fd, buf, LC_HDR_FIXED_SIZE, 0), LC_HDR_FIXED_SIZE);
	close(fd);

	/* what the agent reads: copy B */
	fd = open(path, O_RDONLY);
	{
		struct lc_header_io io = { .ctx = &fd, .pread = f_pread, .pwrite = probe_pwrite,
					   .sync = probe_sync };

		if (lc_header_read_io(&io, &got, &info, &e))
			fail_msg("read: %s", e.msg);
	}
	close(fd);
	lc_header_uuid_str(got, u);
	assert_string_equal(u, "11223344-5566-4f88-8faa-bbccddeeffee");
	assert_int_equal(info.used, 1);
	lc_header_free(got);

	run_probe(path, &r);
	assert_int_equal(r.rc, 0);
	assert_has(&r, "ID_FS_TYPE=lakecrypt");
	assert_has(&r, "LAKECRYPT_IDENTITY=ambiguous");
	assert_has(&r, "LAKECRYPT_CHECKSUM=unverified");
	assert_null(strstr(r.out, "ID_FS_UUID"));
	assert_null(strstr(r.out, "LAKECRYPT_WORKSPACE"));
	assert_null(strstr(r.out, "LAKECRYPT_PROJECT"));
	assert_true(r.bytes <= LC_HDR_IDENTIFY_FIXED_MAX + LC_PROBE_BUDGET);

	/* same copies, A's uuid the same as B's: one volume, identified */
	fd = open(path, O_RDWR);
	buf[LC_HDR_OFF_UUID + 15] = 0xee;
	assert_int_equal(pwrite(fd, buf, LC_HDR_FIXED_SIZE, 0), LC_HDR_FIXED_SIZE);
	close(fd);
	run_probe(path, &r);
	assert_int_equal(r.rc, 0);
	assert_has(&r, "ID_FS_UUID=11223344-5566-4f88-8faa-bbccddeeffee");
	free(buf);
	free(enc);
	lc_header_free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_detached),
		cmocka_unit_test(test_copy_a_damaged),
		cmocka_unit_test(test_table_damaged),
		cmocka_unit_test(test_hostile_huge),
		cmocka_unit_test(test_both_damaged),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_hostile_strings),
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_cli),
		cmocka_unit_test(test_not_a_disk),
		cmocka_unit_test(test_divergent_unverified),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
