/* SPDX-License-Identifier: GPL-2.0 */
/*
 * lakecrypttab(5) as the agent reads it: which workspace (and, with
 * UUID=, which volume) a volume name belongs to.  Device-mapper names are
 * global to the host, so a name an admin listed in
 * /etc/lakecrypt/lakecrypttab is reserved for the workspace of its line:
 * no other workspace may open a volume or cache under it
 * (Documentation/lakecrypttab.md, "Names").  The generator
 * (tools/systemd/lakecrypt-generator.in) reads the rest of the line.
 *
 * One grammar for both (tests/unit/test-agent.c and tests/system/check.sh
 * check each side): lines are split at '\n'; a NUL byte counts as a
 * control character (the generator reads the file through
 * tr '\000' '\001'); one CR before the line end is dropped; fields are
 * separated by blanks (space, tab); a first field starting with '#' or no
 * field at all is a comment.  A NAME belongs to the FIRST line whose first
 * field it is, valid or not: a later line with that name is a duplicate
 * the generator skips.  A line is valid when it passes every check of the
 * generator, the same here and there (one grammar, so that no name the
 * generator skips can still be opened through the agent): 3 or 4 fields,
 * no control character other than tab; NAME and WORKSPACE valid names
 * (lc_name_check(): 1 to 63 of [A-Za-z0-9._-], the first a letter or
 * digit); DEVICE "UUID=" + a uuid in 8-4-4-4-12 hex form, or a path under
 * "/dev/" of at most LC_CRYPTTAB_PATH_MAX bytes of [A-Za-z0-9/._:+@=-]
 * that is plain (lc_crypttab_path_plain(): no "//", "/./", "/../", and
 * no "/." or "/.." at its end); OPTIONS "-", "none" or a comma
 * list without empty items of cache, nofail, noauto, _netdev,
 * timeout=TIMESPAN and x-systemd.device-timeout=TIMESPAN
 * (lc_crypttab_timespan(): 0 to 86400 s), header=NAME|PATH (PATH as for
 * DEVICE but anywhere), segment-size=DIGITS[K|M|G|T], and any x-* option
 * (ignored: fstab/crypttab options for other programs); header= only
 * without cache, segment-size= only with it; neither cache nor header=
 * with a DEVICE of UUID=, /dev/disk/by-uuid/ or /dev/disk/by-lakecrypt/
 * (udev makes those links from a lakecrypt header, which a cache and a
 * detached header's data device do not carry); "discard" is refused
 * (lakecrypt passes no discards); a 4th or 5th field starting with '#'
 * (a trailing comment, which crypttab(5) does not allow either) is
 * refused; a DEVICE path whose systemd device unit name (systemd-escape
 * --path, ".device") is over 253 bytes (systemd's 255, less the ".d" of
 * its drop-in directory) is refused; a DEVICE naming the device (UUID=
 * as its /dev/disk/by-uuid/ path, one trailing '/' dropped) that an
 * earlier line lists is refused, when that line is the first to name its
 * NAME, a valid one, good or bad (two units would race for one device).
 * A name whose first line fails these checks is opened by no
 * one (the generator makes a unit for it that only fails, unless nofail).
 */
#ifndef LC_CRYPTTAB_H
#define LC_CRYPTTAB_H

#include <stdbool.h>
#include <stddef.h>

#include "lc-error.h"
#include "lc-types.h"

#define LC_CRYPTTAB_MAX_BYTES	(1u << 20)	/* a larger file is refused */
#define LC_CRYPTTAB_PATH_MAX	1024		/* bytes of a DEVICE or header= path */

/*
 * Whether the @n bytes at @s are a plain absolute path: '/' first, and
 * every component (between two '/', or after the last) non-empty, but
 * for one '/' at the end, and neither "." nor "..".  So no "//", "/./",
 * "/../", and no "/." or "/.." at the end.  The generator's is_path()
 * refuses the same (shell patterns "*" "//" "*", "*" "/./" "*", "*" "/.",
 * "*" "/../" "*", "*" "/.." written together).  One spelling
 * per path (but a trailing '/', after which no device opens): the
 * agent compares device paths with /dev/disk/by-uuid/ and with the path
 * the kernel reports for the node opened (volume.h, lc_open_args).
 */
bool lc_crypttab_path_plain(const char *s, size_t n);

struct lc_crypttab_entry {
	char workspace[64];
	char uuid[37];		/* UUID=<uuid>, lower-cased; "" when DEVICE is a path */
	unsigned int line;	/* 1-based */
};

/*
 * Look @name up in the lakecrypttab at @path (the grammar above).
 * Returns 1 and fills @out when the first line naming @name is valid;
 * 0 when no line names it or when @path is "" or does not exist (no file:
 * nothing reserved); -EINVAL with @err (LC_ERRC_MISCONFIG) naming the line
 * and what is wrong ("NUL byte on line 3", a bad UUID=, ...) when the
 * first line naming @name is not valid: nothing may be opened under that
 * name until it is fixed (the generator makes no unit for it either, and
 * no KMS call is spent on an open that could never be right); -errno
 * with @err (LC_ERRC_MISCONFIG) when the file is there but cannot be
 * read, is not a regular file or is larger than LC_CRYPTTAB_MAX_BYTES:
 * names cannot be checked, so the caller refuses rather than guess.  The
 * generator's file rules (the file is root's: no one else may make the
 * agent read another file as lakecrypttab): opened once with O_NOFOLLOW,
 * and on that descriptor a regular file with one link, owned by root (or
 * by the agent's effective user), not writable by group or others; else
 * -ELOOP (a symbolic link, dangling or not) or -EPERM, with @err
 * (LC_ERRC_MISCONFIG) saying which rule.
 */
int lc_crypttab_find(const char *path, const char *name, struct lc_crypttab_entry *out,
		     struct lc_error *err);

/*
 * Look @name up in the system's crypttab(5) at @path (/etc/crypttab, the
 * dm-crypt volumes systemd-cryptsetup opens under their NAME): lines split
 * at '\n', fields separated by blanks (space, tab), a first field starting
 * with '#' or no field at all is a comment; only the first field (NAME) is
 * read, without the quotes systemd-cryptsetup-generator removes ("NAME",
 * 'NAME').  Returns the 1-based number of the first line whose NAME is @name;
 * 0 when none is, or when @path is "" or does not exist (no file: nothing
 * reserved); -errno with @err (LC_ERRC_MISCONFIG) naming @path when it is
 * there but cannot be read, is not a regular file or is larger than
 * LC_CRYPTTAB_MAX_BYTES (names cannot be checked: the caller refuses).
 */
int lc_crypttab_sys_find(const char *path, const char *name, struct lc_error *err);

/*
 * A lakecrypttab time span (@n bytes at @s, not NUL-terminated): the
 * subset of systemd.time(7) that the generator reads, one or more
 * NUMBER[UNIT] written together ("90", "90s", "1min", "2min30s"), NUMBER
 * of 1 to 5 digits, UNIT s, sec, second(s), m, min, minute(s), h, hr,
 * hour(s), d, day(s) (none: seconds, after the last number only).
 * Returns 0 with *@secs (0 to 86400), -EINVAL if malformed, -ERANGE if
 * longer than 86400 s.
 */
int lc_crypttab_timespan(const char *s, size_t n, unsigned long *secs);

/*
 * A field of a lakecrypttab line as a message quotes it (the file and line
 * are named; the value is only shown), the same as the generator's q():
 * printable ASCII (0x20 to 0x7e) but '"' and '\\' as it is, every other
 * byte as "\\xNN" (two lower-case hex digits); at most
 * LC_CRYPTTAB_QUOTE_BYTES bytes of that (an escape is never split), then
 * "..." when bytes of @s were left out.  So a hostile or broken line puts
 * no escape sequence and no megabytes into the journal or the kernel log.
 * @n bytes at @s (NUL bytes allowed); @out of at least
 * LC_CRYPTTAB_QUOTE_SIZE bytes, always NUL-terminated.  Returns @out.
 */
#define LC_CRYPTTAB_QUOTE_BYTES	64
#define LC_CRYPTTAB_QUOTE_SIZE	(LC_CRYPTTAB_QUOTE_BYTES + sizeof("..."))
const char *lc_crypttab_quote(const char *s, size_t n, char *out);

/* 1 if @s (of @len bytes) is a uuid in 8-4-4-4-12 hexadecimal form. */
int lc_crypttab_is_uuid(const char *s, size_t len);

#endif
