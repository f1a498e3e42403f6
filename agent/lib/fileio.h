/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Small files the agent owns (key configurations, the runtime list of open
 * volumes): read whole, written atomically.
 *
 * lc_file_write_atomic() writes "<path>.tmp.<pid>", fsyncs it, renames it
 * over @path and fsyncs the directory: a crash at any point leaves either
 * the old or the new contents, never a mix.  Leftover temp files of a
 * crashed writer are harmless (never read) and lc_file_clean_temps()
 * removes them.
 */
#ifndef LC_FILEIO_H
#define LC_FILEIO_H

#include <stddef.h>
#include <sys/types.h>

#include "lc-error.h"

#define LC_FILE_MAX	(64u << 20)	/* biggest file lc_file_read() accepts */

/* Write @len bytes of @data to @path atomically with permissions @mode. */
int lc_file_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
			 struct lc_error *err);

/* Read @path whole into a malloc'd, NUL-terminated buffer.  -ENOENT
 * (with a message) if it does not exist. */
int lc_file_read(const char *path, char **data, size_t *len, struct lc_error *err);

/* Remove "<path>.tmp.*" leftovers of interrupted writes of @path. */
void lc_file_clean_temps(const char *path);

/* mkdir -p with @mode for every directory created. */
int lc_mkdir_p(const char *dir, mode_t mode, struct lc_error *err);

/* For tests: make the @n-th file-system step of lc_file_write_atomic()
 * from now fail with EIO (0: never).  Steps: open, write, fsync, rename,
 * directory fsync. */
void lc_file_fail_io_at(unsigned int n);

#endif /* LC_FILEIO_H */
