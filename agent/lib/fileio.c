// SPDX-License-Identifier: GPL-2.0
/*
 * Whole-file reads and atomic writes for the agent's small state files.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"

static unsigned int fail_at, steps;

void lc_file_fail_io_at(unsigned int n)
{
	fail_at = n;
	steps = 0;
}

/* Count one file-system step; true if the test asked it to fail. */
static bool injected(void)
{
	return fail_at && ++steps == fail_at;
}

static int dir_of(const char *path, char *out, size_t size)
{
	char tmp[PATH_MAX];

	if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	if (snprintf(out, size, "%s", dirname(tmp)) >= (int)size)
		return -ENAMETOOLONG;
	return 0;
}

int lc_file_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
			 struct lc_error *err)
{
	char tmp[PATH_MAX], dir[PATH_MAX];
	_cleanup_close_ int fd = -1, dfd = -1;
	const char *p = data;
	const char *step = "open";
	int r;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp) ||
	    dir_of(path, dir, sizeof(dir)) < 0)
		return lc_err(err, -ENAMETOOLONG, LC_ERRC_MISCONFIG, "path %s is too long", path);
	if (injected()) {
		errno = EIO;
		goto fail;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		goto fail;
	if (fchmod(fd, mode) < 0)	/* the umask must not widen or narrow it */
		goto fail_unlink;
	step = "write";
	if (injected()) {
		errno = EIO;
		goto fail_unlink;
	}
	while (len) {
		ssize_t w = write(fd, p, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			if (!w)
				errno = EIO;
			goto fail_unlink;
		}
		p += w;
		len -= (size_t)w;
	}
	step = "fsync";
	if (injected()) {
		errno = EIO;
		goto fail_unlink;
	}
	if (fsync(fd) < 0)
		goto fail_unlink;
	step = "rename";
	if (injected()) {
		errno = EIO;
		goto fail_unlink;
	}
	if (rename(tmp, path) < 0)
		goto fail_unlink;
	step = "directory fsync";
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (injected()) {
		errno = EIO;
		goto fail;
	}
	if (dfd < 0 || fsync(dfd) < 0)
		goto fail;
	return 0;

fail_unlink:
	r = -errno;
	(void)unlink(tmp);
	return lc_err(err, r, LC_ERRC_INTERNAL, "writing %s failed at %s: %s", path, step,
		      strerror(-r));
fail:
	r = -errno;
	return lc_err(err, r, LC_ERRC_INTERNAL, "writing %s failed at %s: %s", path, step,
		      strerror(-r));
}

int lc_file_read(const char *path, char **data, size_t *len, struct lc_error *err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	_cleanup_free_ char *buf = NULL;
	struct stat st;
	size_t got = 0;

	*data = NULL;
	if (len)
		*len = 0;
	if (fd < 0)
		return lc_err(err, -errno, errno == ENOENT ? LC_ERRC_MISCONFIG : LC_ERRC_INTERNAL,
			      "cannot open %s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0)
		return lc_err(err, -errno, LC_ERRC_INTERNAL, "cannot stat %s: %s", path,
			      strerror(errno));
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > LC_FILE_MAX)
		return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
			      "%s must be a regular file of at most %u bytes", path, LC_FILE_MAX);
	buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return lc_err(err, -errno, LC_ERRC_INTERNAL, "reading %s failed: %s", path,
				      strerror(errno));
		if (!n)
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
	*data = buf;
	buf = NULL;
	if (len)
		*len = got;
	return 0;
}

void lc_file_clean_temps(const char *path)
{
	char dir[PATH_MAX], base[PATH_MAX], tmp[PATH_MAX];
	DIR *d;
	struct dirent *de;
	size_t blen;

	if (dir_of(path, dir, sizeof(dir)) < 0 ||
	    snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp))
		return;
	snprintf(base, sizeof(base), "%s.tmp.", basename(tmp));
	blen = strlen(base);
	d = opendir(dir);
	if (!d)
		return;
	while ((de = readdir(d)))
		if (!strncmp(de->d_name, base, blen))
			(void)unlinkat(dirfd(d), de->d_name, 0);
	closedir(d);
}

int lc_mkdir_p(const char *dir, mode_t mode, struct lc_error *err)
{
	char buf[PATH_MAX];
	size_t n;

	if (!dir || !*dir || (n = strlen(dir)) >= sizeof(buf))
		return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG, "directory path \"%s\" is not usable",
			      dir ? dir : "");
	memcpy(buf, dir, n + 1);
	for (char *p = buf + 1; ; p++) {
		if (*p && *p != '/')
			continue;
		char c = *p;

		*p = '\0';
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return lc_err(err, -errno, LC_ERRC_MISCONFIG, "cannot create directory %s: %s",
				      buf, strerror(errno));
		*p = c;
		if (!c)
			break;
	}
	return 0;
}
