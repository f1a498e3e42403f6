// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target for the udev probe's descriptor reader
 * (udev/lakecrypt-probe.c: probe_fd() and its pread with a read limit).
 * fuzz-header covers lc_header_identify_io() on images as long as the
 * input, so it never reaches a copy B past the first area size and never
 * checks what the probe prints.  Here the input is laid out on a sparse
 * memfd of 2 * LC_HDR_AREA_MAX + 1 MiB, so copy B can sit at any area
 * size from LC_HDR_AREA_MIN to LC_HDR_AREA_MAX:
 *
 *   byte 0  bits 0-1  0: payload at 0 (a whole image, copy B wherever it
 *                        put it)
 *                     1: payload at 0 and at the copy-B offset
 *                     2: payload at the copy-B offset only (copy A zeros)
 *                     3: first half at 0, second half at the copy-B offset
 *           bits 2-5  copy-B offset: LC_HDR_AREA_MIN << (n % 14) (modes
 *                     1-3: the payload is cut there)
 *           bit 6     checksums made to match first (past the checksum)
 *           bit 7     copy B's copy index set to 1
 *
 * Checked on every input: the exit code is 0, 1 or 2; nothing was read
 * past both header areas (LC_PROBE_READ_LIMIT) and at most
 * LC_HDR_IDENTIFY_FIXED_MAX + LC_PROBE_BUDGET bytes were read; with 1 or
 * 2 nothing is printed; with 0 every line is KEY=value with a known key
 * at most once, a non-empty value of [A-Za-z0-9._-] and \xNN escapes
 * only, not starting with '.', ID_FS_TYPE=lakecrypt, ID_FS_USAGE=crypto,
 * ID_FS_VERSION, and either LAKECRYPT_IDENTITY=ambiguous without any
 * uuid, workspace or project, or an 8-4-4-4-12 ID_FS_UUID equal to
 * ID_FS_UUID_ENC.  Anything else is a bug: trap.
 */
#define LC_PROBE_NO_MAIN
#include "../../udev/lakecrypt-probe.c"

#include <sys/mman.h>

#define CHECK(cond)                        \
	do {                               \
		if (!(cond))               \
			__builtin_trap();  \
	} while (0)

#define DISK_SIZE	(2 * LC_HDR_AREA_MAX + (1u << 20))

static const char *const keys[] = {
	"ID_FS_TYPE", "ID_FS_USAGE", "ID_FS_VERSION", "ID_FS_UUID", "ID_FS_UUID_ENC",
	"LAKECRYPT_WORKSPACE", "LAKECRYPT_PROJECT", "LAKECRYPT_DETACHED",
	"LAKECRYPT_HEADER_COPY", "LAKECRYPT_COPY_A", "LAKECRYPT_COPY_B",
	"LAKECRYPT_CHECKSUM", "LAKECRYPT_IDENTITY",
};
#define NKEYS	(sizeof(keys) / sizeof(keys[0]))

static void reseal(uint8_t *p, size_t len)
{
	uint64_t hdr = 0;

	if (len < LC_HDR_FIXED_SIZE)
		return;
	for (int i = 7; i >= 0; i--)
		hdr = hdr << 8 | p[LC_HDR_OFF_HDR_SIZE + i];
	if (hdr < LC_HDR_OFF_UUID || hdr > len)
		hdr = len;
	lc_header_checksum(p, hdr, p + LC_HDR_OFF_CHECKSUM);
}

static bool is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static bool is_uuid(const char *s)
{
	if (strlen(s) != 36)
		return false;
	for (int i = 0; i < 36; i++)
		if ((i == 8 || i == 13 || i == 18 || i == 23) ? s[i] != '-' : !is_hex(s[i]))
			return false;
	return true;
}

/* The probe's output @text (@len bytes) after exit code 0. */
static void check_output(char *text, size_t len)
{
	const char *val[NKEYS] = { NULL };
	char *line, *save = NULL;

	CHECK(len > 0 && text[len - 1] == '\n' && strlen(text) == len);
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *eq = strchr(line, '=');
		size_t k;

		CHECK(eq && eq[1] && eq[1] != '.');
		*eq = '\0';
		for (k = 0; k < NKEYS && strcmp(line, keys[k]); k++)
			;
		CHECK(k < NKEYS && !val[k]);
		val[k] = eq + 1;
		for (const char *v = eq + 1; *v; v++) {
			if (*v == '\\') {
				CHECK(v[1] == 'x' && is_hex(v[2]) && is_hex(v[3]));
				v += 3;
			} else {
				CHECK(safe_char((unsigned char)*v));
			}
		}
	}
	CHECK(val[0] && !strcmp(val[0], "lakecrypt"));
	CHECK(val[1] && !strcmp(val[1], "crypto"));
	CHECK(val[2] && val[2][0]);
	if (val[12]) {
		CHECK(!strcmp(val[12], "ambiguous") && !val[3] && !val[4] && !val[5] && !val[6]);
		CHECK(val[11] && !strcmp(val[11], "unverified"));
	} else {
		CHECK(val[3] && is_uuid(val[3]) && val[4] && !strcmp(val[3], val[4]));
		CHECK(val[8] && (!strcmp(val[8], "A") || !strcmp(val[8], "B")));
		CHECK(val[11] && (!strcmp(val[11], "verified") || !strcmp(val[11], "unverified")));
	}
}

static void put(int fd, const uint8_t *p, size_t len, uint64_t off, bool seal, int copy)
{
	uint8_t *b;

	if (!len)
		return;
	b = malloc(len);
	if (!b)
		return;
	memcpy(b, p, len);
	if (copy >= 0 && len > LC_HDR_OFF_COPY + 1) {
		b[LC_HDR_OFF_COPY] = (uint8_t)copy;	/* u16 little-endian */
		b[LC_HDR_OFF_COPY + 1] = 0;
	}
	if (seal)
		reseal(b, len);
	CHECK(pwrite(fd, b, len, (off_t)off) == (ssize_t)len);
	free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	uint64_t boff, max_end = 0, bytes = 0;
	char *text = NULL;
	size_t len = 0, half;
	bool seal;
	int mode, copyb, rc;
	FILE *out;

	(void)probe_main;	/* the command line is test-probe's */
	if (size < 1)
		return 0;
	if (fd < 0) {
		fd = memfd_create("lc-probe-disk", MFD_CLOEXEC);
		CHECK(fd >= 0);
	}
	/* a fresh sparse disk of zeros */
	CHECK(ftruncate(fd, 0) == 0 && ftruncate(fd, (off_t)DISK_SIZE) == 0);
	mode = data[0] & 3;
	boff = LC_HDR_AREA_MIN << ((data[0] >> 2 & 15) % 14);
	seal = data[0] & 0x40;
	copyb = data[0] & 0x80 ? 1 : -1;
	data++;
	size--;
	if (mode && size > boff)
		size = (size_t)boff;	/* copy A never runs into copy B */
	half = size / 2;
	switch (mode) {
	case 0:
		put(fd, data, size, 0, seal, -1);
		break;
	case 1:
		put(fd, data, size, 0, seal, -1);
		put(fd, data, size, boff, seal, copyb);
		break;
	case 2:
		put(fd, data, size, boff, seal, copyb);
		break;
	default:
		put(fd, data, half, 0, seal, -1);
		put(fd, data + half, size - half, boff, seal, copyb);
		break;
	}
	out = open_memstream(&text, &len);
	CHECK(out != NULL);
	rc = probe_fd(fd, out, NULL, &max_end, &bytes);
	CHECK(fclose(out) == 0);
	CHECK(rc == 0 || rc == 1 || rc == 2);
	CHECK(max_end <= LC_PROBE_READ_LIMIT);
	CHECK(bytes <= LC_HDR_IDENTIFY_FIXED_MAX + LC_PROBE_BUDGET);
	if (rc)
		CHECK(len == 0);
	else
		check_output(text, len);
	free(text);
	return 0;
}
