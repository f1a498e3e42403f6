// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target for the agent's lakecrypttab reader (agent/lib/crypttab.c).
 *
 * Input: the file's contents (put in a 0600 temporary file of our own: the
 * reader refuses a symbolic link such as /proc/self/fd/N, crypttab.h).
 * Looked up: "ledger", and the first field of the first line when it is a
 * valid name.  lc_crypttab_find() must answer 1 (a valid entry: workspace a
 * valid name, uuid "" or 36 lower-case 8-4-4-4-12 characters, line >= 1),
 * 0, or -EINVAL with a message (a bad line); anything else is a bug: trap.
 * The whole input is also read as a timeout= time span
 * (lc_crypttab_timespan()): 0 to 86400 s, or -EINVAL/-ERANGE untouched.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crypttab.h"
#include "registry.h"

#define CHECK(cond)                        \
	do {                               \
		if (!(cond))               \
			__builtin_trap();  \
	} while (0)

static void look(const char *path, const char *name)
{
	struct lc_crypttab_entry e;
	struct lc_error err = { 0 };
	int r;

	memset(&e, 0xa5, sizeof(e));
	r = lc_crypttab_find(path, name, &e, &err);
	CHECK(r == 0 || r == 1 || r == -EINVAL);
	if (r < 0) {
		CHECK(err.msg[0] && strstr(err.msg, name));
		return;
	}
	if (!r)
		return;
	CHECK(e.line >= 1);
	CHECK(memchr(e.workspace, 0, sizeof(e.workspace)));
	CHECK(lc_name_check("workspace", e.workspace, NULL) == 0);
	CHECK(memchr(e.uuid, 0, sizeof(e.uuid)));
	CHECK(!e.uuid[0] || lc_crypttab_is_uuid(e.uuid, strlen(e.uuid)));
	for (const char *p = e.uuid; *p; p++)
		CHECK(!(*p >= 'A' && *p <= 'F'));
}

static char path[4096];

static void remove_file(void)
{
	unlink(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	char name[64];
	size_t n = 0;

	if (fd < 0) {
		const char *tmp = getenv("TMPDIR");

		snprintf(path, sizeof(path), "%s/fuzz-crypttab.XXXXXX", tmp && *tmp ? tmp : "/tmp");
		fd = mkstemp(path);
		CHECK(fd >= 0 && atexit(remove_file) == 0);
	}
	CHECK(fd >= 0);
	CHECK(ftruncate(fd, 0) == 0);
	CHECK(size == 0 || pwrite(fd, data, size, 0) == (ssize_t)size);
	look(path, "ledger");
	while (n < size && n < sizeof(name) - 1 && data[n] != ' ' && data[n] != '\t' &&
	       data[n] != '\n' && data[n])
		n++;
	memcpy(name, data, n);
	name[n] = '\0';
	if (lc_name_check("volume name", name, NULL) == 0)
		look(path, name);
	/* The whole input as a timeout= value: 0 to 86400 s or an error. */
	{
		unsigned long secs = 99999999;
		int r = lc_crypttab_timespan((const char *)data, size, &secs);

		CHECK((r == 0 && secs <= 86400) || ((r == -EINVAL || r == -ERANGE) && secs == 99999999));
	}
	return 0;
}
