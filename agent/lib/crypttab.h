/* SPDX-License-Identifier: GPL-2.0 */
/*
 * lakecrypttab(5) as the agent reads it: which workspace a volume name
 * belongs to.  Device-mapper names are global to the host, so a name an
 * admin listed in /etc/lakecrypt/lakecrypttab is reserved for the
 * workspace of its line: no other workspace may open a volume or cache
 * under it (Documentation/lakecrypttab.md, "Names").  The generator
 * (tools/systemd/lakecrypt-generator.in) reads the rest of the line.
 */
#ifndef LC_CRYPTTAB_H
#define LC_CRYPTTAB_H

#include <stddef.h>

#include "lc-error.h"
#include "lc-types.h"

#define LC_CRYPTTAB_MAX_BYTES	(1u << 20)	/* a larger file is refused */
#define LC_CRYPTTAB_LINE_MAX	4096		/* a longer line is refused */

struct lc_crypttab_entry {
	char workspace[64];
	char device[LC_CRYPTTAB_LINE_MAX];	/* as written: UUID=... or a path */
	unsigned int line;			/* 1-based */
};

/*
 * Look @name up in the lakecrypttab at @path: the first line whose NAME
 * is @name and that has at least NAME DEVICE WORKSPACE with a valid
 * workspace name (lines the generator skips for other reasons still
 * reserve their name; later duplicates are skipped by the generator and
 * ignored here).  Blank and '#' lines are skipped, a CR before the line
 * end is dropped.
 * Returns 1 and fills @out when found, 0 when not found or when @path is
 * "" or does not exist (no file: nothing reserved), or -errno with @err
 * (LC_ERRC_MISCONFIG) when the file is there but cannot be read, is not a
 * regular file, is larger than LC_CRYPTTAB_MAX_BYTES or has a line longer
 * than LC_CRYPTTAB_LINE_MAX: names cannot be checked, so the caller
 * refuses rather than guess.
 */
int lc_crypttab_find(const char *path, const char *name, struct lc_crypttab_entry *out,
		     struct lc_error *err);

#endif
