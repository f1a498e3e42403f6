// SPDX-License-Identifier: GPL-2.0
/*
 * lakecrypttab(5): the name reservations (crypttab.h).  The file format is
 * Documentation/lakecrypttab.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypttab.h"
#include "registry.h"

static int misconfig(struct lc_error *err, int code, const char *path, const char *what)
{
	return lc_err(err, code, LC_ERRC_MISCONFIG,
		      "%s: %s: volume names cannot be checked against it; fix the file", path,
		      what);
}

int lc_crypttab_find(const char *path, const char *name, struct lc_crypttab_entry *out,
		     struct lc_error *err)
{
	char line[LC_CRYPTTAB_LINE_MAX + 2];
	unsigned int lineno = 0;
	struct stat st;
	FILE *f;
	int fd, r = 0;

	if (!path || !path[0])
		return 0;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		return misconfig(err, -errno, path, strerror(errno));
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return misconfig(err, -EINVAL, path, "not a regular file");
	}
	if (st.st_size > (off_t)LC_CRYPTTAB_MAX_BYTES) {
		close(fd);
		return misconfig(err, -EFBIG, path, "larger than 1 MiB");
	}
	f = fdopen(fd, "r");
	if (!f) {
		r = -errno;
		close(fd);
		return misconfig(err, r, path, strerror(-r));
	}
	while (fgets(line, sizeof(line), f)) {
		char *save = NULL, *n, *dev, *ws;
		size_t len = strlen(line);
		struct lc_error e = { 0 };

		lineno++;
		if (len && line[len - 1] == '\n')
			line[--len] = '\0';
		else if (!feof(f) || len > LC_CRYPTTAB_LINE_MAX) {
			r = misconfig(err, -EINVAL, path, "a line is longer than 4096 bytes");
			break;
		}
		if (len && line[len - 1] == '\r')
			line[--len] = '\0';
		n = strtok_r(line, " \t", &save);
		if (!n || n[0] == '#' || strcmp(n, name))
			continue;
		dev = strtok_r(NULL, " \t", &save);
		ws = strtok_r(NULL, " \t", &save);
		if (!dev || !ws || lc_name_check("workspace", ws, &e) < 0 ||
		    strlen(ws) >= sizeof(out->workspace))
			continue;
		snprintf(out->workspace, sizeof(out->workspace), "%s", ws);
		snprintf(out->device, sizeof(out->device), "%s", dev);
		out->line = lineno;
		r = 1;
		break;
	}
	if (r == 0 && ferror(f))
		r = misconfig(err, -EIO, path, "read error");
	fclose(f);
	return r;
}
