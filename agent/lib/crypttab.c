// SPDX-License-Identifier: GPL-2.0
/*
 * lakecrypttab(5): the name reservations (crypttab.h).  The file format is
 * Documentation/lakecrypttab.md; the generator that reads the same file is
 * tools/systemd/lakecrypt-generator.in.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypttab.h"
#include "registry.h"

#define MAX_FIELDS	5	/* one more than a valid line has: "found 5 or more" */

static int misconfig(struct lc_error *err, int code, const char *path, const char *what)
{
	return lc_err(err, code, LC_ERRC_MISCONFIG,
		      "%s: %s: volume names cannot be checked against it; fix the file", path,
		      what);
}

int lc_crypttab_is_uuid(const char *s, size_t len)
{
	if (len != 36)
		return 0;
	for (size_t i = 0; i < 36; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;
		char c = s[i];

		if (dash ? c != '-' :
		    !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
			return 0;
	}
	return 1;
}

#define ROOTS_FILE	"; refused (lakecrypttab must be a regular file owned by root, not writable by group or others, with one link: lakecrypttab(5))"

/* The whole file into a NUL-terminated buffer: at most LC_CRYPTTAB_MAX_BYTES.
 * With @roots (lakecrypttab; crypttab.h): the generator's file rules,
 * checked on the descriptor that is read. */
static int slurp(const char *path, bool roots, char **buf, size_t *len, struct lc_error *err)
{
	struct stat st;
	size_t n = 0;
	char *b;
	int fd, r;

	*buf = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | (roots ? O_NOFOLLOW : 0));
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		if (roots && errno == ELOOP)
			return misconfig(err, -ELOOP, path, "a symbolic link" ROOTS_FILE);
		return misconfig(err, -errno, path, strerror(errno));
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return misconfig(err, -EINVAL, path, "not a regular file");
	}
	if (roots && (st.st_nlink != 1 || (st.st_uid != 0 && st.st_uid != geteuid()) ||
		      (st.st_mode & (S_IWGRP | S_IWOTH)))) {
		char what[256];

		if (st.st_nlink != 1)
			snprintf(what, sizeof(what), "%lu hard links" ROOTS_FILE,
				 (unsigned long)st.st_nlink);
		else if (st.st_uid != 0 && st.st_uid != geteuid())
			snprintf(what, sizeof(what), "owned by uid %lu, not root" ROOTS_FILE,
				 (unsigned long)st.st_uid);
		else
			snprintf(what, sizeof(what), "writable by group or others" ROOTS_FILE);
		close(fd);
		return misconfig(err, -EPERM, path, what);
	}
	b = malloc(LC_CRYPTTAB_MAX_BYTES + 2);
	if (!b) {
		close(fd);
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	}
	/* One byte past the limit tells a file that grew since fstat. */
	for (;;) {
		ssize_t got = read(fd, b + n, LC_CRYPTTAB_MAX_BYTES + 1 - n);

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			r = -errno;
			close(fd);
			free(b);
			return misconfig(err, r, path, strerror(-r));
		}
		if (got == 0 || (n += (size_t)got) > LC_CRYPTTAB_MAX_BYTES)
			break;
	}
	close(fd);
	if (n > LC_CRYPTTAB_MAX_BYTES) {
		free(b);
		return misconfig(err, -EFBIG, path, "larger than 1 MiB");
	}
	b[n] = '\0';
	*buf = b;
	*len = n;
	return 1;
}

/* lc_name_check() on @n bytes at @s (the generator's is_name). */
const char *lc_crypttab_quote(const char *s, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0, i;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		bool plain = c >= 0x20 && c <= 0x7e && c != '"' && c != '\\';

		if (o + (plain ? 1 : 4) > LC_CRYPTTAB_QUOTE_BYTES)
			break;
		if (plain) {
			out[o++] = (char)c;
		} else {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	if (i < n) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
	return out;
}

static bool name_ok(const char *s, size_t n)
{
	char b[LC_HDR_NAME_SIZE];
	struct lc_error e = { 0 };

	if (!n || n >= sizeof(b))
		return false;
	memcpy(b, s, n);
	b[n] = '\0';
	return lc_name_check("name", b, &e) == 0;
}

bool lc_crypttab_path_plain(const char *s, size_t n)
{
	if (!n || s[0] != '/')
		return false;
	/* each component: between two '/', or after the last */
	for (size_t i = 0; i < n;) {
		size_t j = i + 1, len;

		while (j < n && s[j] != '/')
			j++;
		len = j - i - 1;
		if (len == 0 && j < n)
			return false;		/* "//" (one '/' at the end is no component) */
		if ((len == 1 && s[i + 1] == '.') || (len == 2 && s[i + 1] == '.' && s[i + 2] == '.'))
			return false;		/* "." or ".." */
		i = j;
	}
	return true;
}

/* The characters and the length of a lakecrypttab path. */
static bool path_ok_chars(const char *s, size_t n)
{
	if (!n || n > LC_CRYPTTAB_PATH_MAX || s[0] != '/')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || (s[i] && strchr("/._:+@=-", s[i]))))
			return false;
	return true;
}

/* The generator's is_path: absolute, at most 1024 bytes of
 * [A-Za-z0-9/._:+@=-], and plain (lc_crypttab_path_plain(): no "//",
 * "/./", "/../", no "/." or "/.." at the end): nothing a unit file
 * or the shell would interpret, and one spelling of each path, so that a
 * /dev/disk/by-uuid/ path is recognised as one. */
static bool path_ok(const char *s, size_t n)
{
	return path_ok_chars(s, n) && lc_crypttab_path_plain(s, n);
}

static bool has_prefix(const char *s, size_t n, const char *p, size_t *plen)
{
	*plen = strlen(p);
	return n >= *plen && !memcmp(s, p, *plen);
}

/* The generator's timespan(): a systemd time span (systemd.time(7)) of
 * one or more NUMBER[UNIT] written together ("90", "90s", "2min30s"),
 * NUMBER 1 to 5 digits, UNIT s|sec|second|seconds, m|min|minute|minutes,
 * h|hr|hour|hours, d|day|days, none (seconds) only after the last number.
 * 0 with *@secs (0 to 86400), -EINVAL if malformed, -ERANGE if over a day. */
int lc_crypttab_timespan(const char *s, size_t n, unsigned long *secs)
{
	static const struct { const char *u; unsigned long m; } units[] = {
		{ "", 1 }, { "s", 1 }, { "sec", 1 }, { "second", 1 }, { "seconds", 1 },
		{ "m", 60 }, { "min", 60 }, { "minute", 60 }, { "minutes", 60 },
		{ "h", 3600 }, { "hr", 3600 }, { "hour", 3600 }, { "hours", 3600 },
		{ "d", 86400 }, { "day", 86400 }, { "days", 86400 },
	};
	unsigned long total = 0;
	size_t i = 0;

	if (!n)
		return -EINVAL;
	while (i < n) {
		size_t d0 = i, u0;
		unsigned long v = 0, m = 0;
		bool big;

		while (i < n && s[i] >= '0' && s[i] <= '9') {
			if (i - d0 < 5)
				v = v * 10 + (unsigned long)(s[i] - '0');
			i++;
		}
		if (i == d0)
			return -EINVAL;
		big = i - d0 > 5;
		for (u0 = i; i < n && !(s[i] >= '0' && s[i] <= '9'); i++)
			;
		for (size_t k = 0; k < sizeof(units) / sizeof(units[0]); k++)
			if (strlen(units[k].u) == i - u0 && !memcmp(s + u0, units[k].u, i - u0))
				m = units[k].m;
		if (!m)
			return -EINVAL;
		if (big)
			return -ERANGE;
		total += v * m;
		if (total > 86400)
			return -ERANGE;
	}
	*secs = total;
	return 0;
}

/* OPTIONS (@n bytes at @o): "-", "none" or a comma-separated list of
 * cache, nofail, noauto, _netdev, timeout=TIMESPAN and
 * x-systemd.device-timeout=TIMESPAN (lc_crypttab_timespan()),
 * header=NAME|PATH, segment-size=DIGITS[KMGT], and x-* (ignored: for other
 * programs); header= only without cache, segment-size= only with it;
 * "discard" refused (lakecrypt passes no discards); no empty option.  0
 * with *@cache and *@header (the options cache and header= given), or
 * -EINVAL with @why. */
static int check_options(const char *o, size_t n, unsigned int lineno, char *why, size_t size,
			 bool *cache_out, bool *header_out)
{
	bool cache = false, header = false, segsize = false;
	char q[LC_CRYPTTAB_QUOTE_SIZE];
	size_t pl;

	*cache_out = *header_out = false;
	if ((n == 1 && o[0] == '-') || (n == 4 && !memcmp(o, "none", 4)))
		return 0;
	for (size_t i = 0; i <= n;) {
		const char *e = memchr(o + i, ',', n - i), *t = o + i;
		size_t tl = (size_t)((e ? e : o + n) - t);

		if (!tl) {
			snprintf(why, size, "line %u: empty option in \"%s\"", lineno,
				 lc_crypttab_quote(o, n, q));
			return -EINVAL;
		}
		if (tl == 5 && !memcmp(t, "cache", 5)) {
			cache = true;
		} else if ((tl == 6 && !memcmp(t, "nofail", 6)) || (tl == 6 && !memcmp(t, "noauto", 6)) ||
			   (tl == 7 && !memcmp(t, "_netdev", 7))) {
			;
		} else if (has_prefix(t, tl, "timeout=", &pl) ||
			   has_prefix(t, tl, "x-systemd.device-timeout=", &pl)) {
			unsigned long v;
			int r = lc_crypttab_timespan(t + pl, tl - pl, &v);

			if (r < 0) {
				snprintf(why, size, r == -ERANGE ?
					 "line %u: option \"%s\": %.*s is at most 86400 seconds (1 day)" :
					 "line %u: option \"%s\": %.*s takes a time span such as 90, 90s, 2min or 1min30s (0 = no limit)",
					 lineno, lc_crypttab_quote(t, tl, q), (int)pl, t);
				return -EINVAL;
			}
		} else if (tl == 7 && !memcmp(t, "discard", 7)) {
			snprintf(why, size, "line %u: option \"discard\": lakecrypt does not pass discards (TRIM) through to the device; remove it",
				 lineno);
			return -EINVAL;
		} else if (has_prefix(t, tl, "x-", &pl)) {
			;	/* for other programs; the generator warns */
		} else if (has_prefix(t, tl, "header=", &pl)) {
			if (!path_ok(t + pl, tl - pl) && !name_ok(t + pl, tl - pl)) {
				snprintf(why, size, "line %u: option \"%s\": header= takes a header name (kept in the agent's headers directory) or an absolute path of plain characters",
					 lineno, lc_crypttab_quote(t, tl, q));
				return -EINVAL;
			}
			header = true;
		} else if (has_prefix(t, tl, "segment-size=", &pl)) {
			size_t vl = tl - pl, d = 0;

			while (d < vl && t[pl + d] >= '0' && t[pl + d] <= '9')
				d++;
			if (!d || (d < vl && (d + 1 != vl || !t[pl + d] || !strchr("KMGT", t[pl + d])))) {
				snprintf(why, size, "line %u: option \"%s\": segment-size= takes a size such as 1M",
					 lineno, lc_crypttab_quote(t, tl, q));
				return -EINVAL;
			}
			segsize = true;
		} else {
			snprintf(why, size, "line %u: unknown option \"%s\" (expected cache, nofail, noauto, _netdev, timeout=, x-systemd.device-timeout=, header=, segment-size=, x-...)",
				 lineno, lc_crypttab_quote(t, tl, q));
			return -EINVAL;
		}
		i += tl + 1;
	}
	if (cache && header) {
		snprintf(why, size, "line %u: option header= is for project volumes: a cache has no header",
			 lineno);
		return -EINVAL;
	}
	if (!cache && segsize) {
		snprintf(why, size, "line %u: option segment-size= is for caches: a project volume's header fixes it",
			 lineno);
		return -EINVAL;
	}
	*cache_out = cache;
	*header_out = header;
	return 0;
}

/* udev names a device by its lakecrypt header (Documentation/udev.md):
 * UUID=, /dev/disk/by-uuid/ and /dev/disk/by-lakecrypt/ name no device
 * that carries none (a detached header's data device, a cache). */
static bool names_by_header(const char *d, size_t n)
{
	static const char *const pre[] = { "UUID=", "/dev/disk/by-uuid/", "/dev/disk/by-lakecrypt/" };
	size_t pl;

	for (size_t i = 0; i < sizeof(pre) / sizeof(pre[0]); i++)
		if (has_prefix(d, n, pre[i], &pl))
			return true;
	return false;
}

/* The fields of line @l (@len bytes), separated by blanks (space, tab):
 * at most MAX_FIELDS of them into @f/@fl; returns how many. */
static size_t split_fields(const char *l, size_t len, const char **f, size_t *fl)
{
	size_t nf = 0;

	for (size_t i = 0; i < len && nf < MAX_FIELDS;) {
		size_t j;

		while (i < len && (l[i] == ' ' || l[i] == '\t'))
			i++;
		if (i == len)
			break;
		for (j = i; j < len && l[j] != ' ' && l[j] != '\t'; j++)
			;
		f[nf] = l + i;
		fl[nf++] = j - i;
		i = j;
	}
	return nf;
}

/* The length in bytes of the systemd device unit of the plain path @p (@n
 * bytes): systemd-escape --path (systemd.unit(5), "String Escaping":
 * the '/' at either end dropped, '/' -> '-', a leading '.' and every byte
 * but [A-Za-z0-9:_.] -> \xNN) and ".device"; the generator's esc_path(). */
static size_t devunit_len(const char *p, size_t n)
{
	size_t len = sizeof(".device") - 1;

	while (n && *p == '/')
		p++, n--;
	while (n && p[n - 1] == '/')
		n--;
	if (!n)
		return len + 1;		/* "-" */
	for (size_t i = 0; i < n; i++) {
		char c = p[i];

		if (c == '/' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == ':' || c == '_' || (c == '.' && i))
			len += 1;
		else
			len += 4;
	}
	return len;
}

/* The device DEVICE (@f, @n bytes) names, as the generator's canon_dev()
 * writes it: UUID=<uuid> as its /dev/disk/by-uuid/ path, lower-cased; a
 * path without one '/' at its end; anything else as it is.  Into @buf
 * (LC_CRYPTTAB_PATH_MAX + 1 bytes, not NUL-terminated), its length in
 * *@len; false when longer (then it is no valid line's device). */
static bool canon_dev(const char *f, size_t n, char *buf, size_t *len)
{
	static const char byuuid[] = "/dev/disk/by-uuid/";
	const size_t bl = sizeof(byuuid) - 1;

	if (n >= 5 && !memcmp(f, "UUID=", 5) && lc_crypttab_is_uuid(f + 5, n - 5)) {
		memcpy(buf, byuuid, bl);
		for (size_t i = 0; i < 36; i++) {
			char c = f[5 + i];

			buf[bl + i] = (char)(c >= 'A' && c <= 'F' ? c - 'A' + 'a' : c);
		}
		*len = bl + 36;
		return true;
	}
	if (n >= 3 && f[0] == '/' && f[n - 1] == '/')
		n--;
	if (n > LC_CRYPTTAB_PATH_MAX)
		return false;
	memcpy(buf, f, n);
	*len = n;
	return true;
}

/* A line of @buf (up to @end) that is not a comment: its first @nf (at
 * most MAX_FIELDS) fields, CR before its end dropped.  Returns the start
 * of the next line; *@nf 0 for a comment or blank line. */
static const char *next_line(const char *l, const char *end, const char **f, size_t *fl, size_t *nf)
{
	const char *nl = memchr(l, '\n', (size_t)(end - l));
	size_t n = (size_t)((nl ? nl : end) - l);

	if (n && l[n - 1] == '\r')
		n--;
	*nf = split_fields(l, n, f, fl);
	if (*nf && f[0][0] == '#')
		*nf = 0;
	return nl ? nl + 1 : end;
}

/* The line before @upto (the whole lines of the file before the line being
 * checked, from @buf) that owns a DEVICE naming the same device as @d (@dn
 * bytes, a valid line's): the first line that names its NAME, a valid
 * NAME, and lists it (canon_dev()), good or bad, as the generator keeps
 * them.  Returns its line number with its NAME in @owner (64 bytes), or 0. */
static unsigned int device_owner(const char *buf, const char *upto, const char *d, size_t dn,
				 char owner[64])
{
	char want[LC_CRYPTTAB_PATH_MAX + 1], got[LC_CRYPTTAB_PATH_MAX + 1];
	size_t wl, gl;
	unsigned int lineno = 0;

	if (!canon_dev(d, dn, want, &wl))
		return 0;
	for (const char *l = buf; l < upto;) {
		const char *f[MAX_FIELDS], *start = l;
		size_t fl[MAX_FIELDS], nf;
		bool first = true;

		lineno++;
		l = next_line(l, upto, f, fl, &nf);
		if (nf < 2 || !name_ok(f[0], fl[0]) || !canon_dev(f[1], fl[1], got, &gl) ||
		    gl != wl || memcmp(got, want, wl))
			continue;
		/* the first line that names f[0]? */
		for (const char *k = buf; k < start && first;) {
			const char *g[MAX_FIELDS];
			size_t gfl[MAX_FIELDS], gn;

			k = next_line(k, start, g, gfl, &gn);
			first = !(gn && gfl[0] == fl[0] && !memcmp(g[0], f[0], fl[0]));
		}
		if (!first)
			continue;
		memcpy(owner, f[0], fl[0]);	/* fl[0] < 64: name_ok() */
		owner[fl[0]] = '\0';
		return lineno;
	}
	return 0;
}

/* Line @l of @len bytes (no '\n', CR dropped) names @name first: check it.
 * @buf: the file, whose lines before @l are checked for the same device. */
static int check_line(const char *path, const char *buf, const char *lstart, unsigned int lineno,
		      const char *name, char *l, size_t len, bool nul,
		      struct lc_crypttab_entry *out, struct lc_error *err)
{
	const char *f[MAX_FIELDS];
	size_t fl[MAX_FIELDS], nf = 0;
	bool cache = false, header = false;
	char why[512], owner[64], q[LC_CRYPTTAB_QUOTE_SIZE], mapper[sizeof("/dev/mapper/") + 64];
	unsigned int oline;

	for (size_t i = 0; i < len; i++)
		if (((unsigned char)l[i] < 0x20 && l[i] != '\t') || l[i] == 0x7f) {
			if (nul)
				snprintf(why, sizeof(why), "NUL byte on line %u", lineno);
			else
				snprintf(why, sizeof(why), "control character 0x%02x on line %u",
					 (unsigned char)l[i], lineno);
			goto bad;
		}
	nf = split_fields(l, len, f, fl);
	/* crypttab(5) has whole-line comments only, and so has lakecrypttab. */
	if ((nf >= 4 && f[3][0] == '#') || (nf >= 5 && f[4][0] == '#')) {
		snprintf(why, sizeof(why),
			 "line %u: a comment must be a line of its own, starting with '#' (as in crypttab(5))",
			 lineno);
		goto bad;
	}
	if (nf < 3 || nf > 4) {
		snprintf(why, sizeof(why),
			 "line %u: expected NAME DEVICE WORKSPACE [OPTIONS], found %zu%s field(s)",
			 lineno, nf, nf == MAX_FIELDS ? " or more" : "");
		goto bad;
	}
	if (fl[0] == 7 && !memcmp(f[0], "control", 7)) {
		snprintf(why, sizeof(why),
			 "line %u: volume name \"control\" is reserved: /dev/mapper/control is device-mapper's own device",
			 lineno);
		goto bad;
	}
	if (!name_ok(f[0], fl[0])) {
		snprintf(why, sizeof(why),
			 "line %u: volume name \"%s\" is not valid (letters, digits, '.', '_', '-', starting with a letter or digit, at most 63)",
			 lineno, lc_crypttab_quote(f[0], fl[0], q));
		goto bad;
	}
	out->uuid[0] = '\0';
	if (fl[1] >= 5 && !memcmp(f[1], "UUID=", 5)) {
		if (!lc_crypttab_is_uuid(f[1] + 5, fl[1] - 5)) {
			snprintf(why, sizeof(why),
				 "line %u: device \"%s\": UUID= needs a uuid like 01234567-89ab-cdef-0123-456789abcdef",
				 lineno, lc_crypttab_quote(f[1], fl[1], q));
			goto bad;
		}
		for (size_t i = 0; i < 36; i++) {
			char c = f[1][5 + i];

			out->uuid[i] = (char)(c >= 'A' && c <= 'F' ? c - 'A' + 'a' : c);
		}
		out->uuid[36] = '\0';
	} else if (fl[1] >= 5 && !memcmp(f[1], "/dev/", 5)) {
		if (!path_ok(f[1], fl[1])) {
			snprintf(why, sizeof(why), path_ok_chars(f[1], fl[1]) ?
				 "line %u: device \"%s\" is not a plain path: no \"//\", \"/./\", \"/../\", and no \"/.\" or \"/..\" at the end" :
				 "line %u: device \"%s\" has characters that are not allowed in a device path",
				 lineno, lc_crypttab_quote(f[1], fl[1], q));
			goto bad;
		}
	} else {
		snprintf(why, sizeof(why),
			 "line %u: device \"%s\" is neither UUID=<uuid> nor a path under /dev (such as /dev/disk/by-id/...)",
			 lineno, lc_crypttab_quote(f[1], fl[1], q));
		goto bad;
	}
	if (!name_ok(f[2], fl[2])) {
		snprintf(why, sizeof(why), "line %u: workspace \"%s\" is not valid", lineno,
			 lc_crypttab_quote(f[2], fl[2], q));
		goto bad;
	}
	memcpy(out->workspace, f[2], fl[2]);	/* fl[2] < 64: name_ok() */
	out->workspace[fl[2]] = '\0';
	if (nf == 4 && check_options(f[3], fl[3], lineno, why, sizeof(why), &cache, &header) < 0)
		goto bad;
	if ((cache || header) && names_by_header(f[1], fl[1])) {
		snprintf(why, sizeof(why),
			 "line %u: device \"%s\": %s carries no lakecrypt header, so udev gives it no by-uuid or by-lakecrypt link: name it by /dev/disk/by-id/...",
			 lineno, lc_crypttab_quote(f[1], fl[1], q),
			 cache ? "a cache's device" : "a detached header's data device");
		goto bad;
	}
	/* systemd takes unit names of at most 255 bytes, and the drop-in
	 * directory NAME.d must fit in a file name (255 bytes) too. */
	if (!out->uuid[0] && devunit_len(f[1], fl[1]) > 253) {
		snprintf(why, sizeof(why),
			 "line %u: device \"%s\": its systemd device unit name would be %zu bytes (systemd-escape --path), over the 253 that a unit name and its drop-in directory NAME.d can take; name the device by a shorter link (/dev/disk/by-id/..., UUID=)",
			 lineno, lc_crypttab_quote(f[1], fl[1], q), devunit_len(f[1], fl[1]));
		goto bad;
	}
	/* One line per device: two units bound to one device race for it. */
	oline = device_owner(buf, lstart, f[1], fl[1], owner);
	if (oline) {
		snprintf(why, sizeof(why),
			 "line %u: device \"%s\" is already line %u's (volume \"%s\"): two units would race for one device; list each device once (lakecrypttab(5))",
			 lineno, lc_crypttab_quote(f[1], fl[1], q), oline, owner);
		goto bad;
	}
	/* Mounts of /dev/mapper/NAME wait for blockdev@<that path>.target
	 * (systemd-escape --path: a '-' of NAME is 4 bytes), a unit name of
	 * at most 255 bytes too. */
	snprintf(mapper, sizeof(mapper), "/dev/mapper/%s", name);
	if (sizeof("blockdev@") - 1 + devunit_len(mapper, strlen(mapper)) > 255) {
		snprintf(why, sizeof(why),
			 "line %u: volume name \"%s\": the unit blockdev@ of /dev/mapper/%s would be %zu bytes (systemd-escape --path writes each '-' as \\x2d), over systemd's 255; use a shorter name or fewer '-'",
			 lineno, name, name, sizeof("blockdev@") - 1 + devunit_len(mapper, strlen(mapper)));
		goto bad;
	}
	out->line = lineno;
	return 1;
bad:
	return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
		      "%s: %s, the first line that names \"%s\", is not valid: no volume is opened under that name until the line is fixed (lakecrypt-generator makes no open for it either)",
		      path, why, name);
}

int lc_crypttab_find(const char *path, const char *name, struct lc_crypttab_entry *out,
		     struct lc_error *err)
{
	unsigned int lineno = 0;
	size_t len = 0, nlen = name ? strlen(name) : 0;
	char *buf = NULL;
	int r;

	if (!path || !path[0])
		return 0;
	/* No line can name "", "#..." or a name with a blank (and the open
	 * refuses such a name anyway). */
	if (!nlen || name[0] == '#' || strpbrk(name, " \t\r\n"))
		return 0;
	r = slurp(path, true, &buf, &len, err);
	if (r <= 0)
		return r;
	r = 0;
	for (char *l = buf, *end = buf + len; l < end;) {
		char *nl = memchr(l, '\n', (size_t)(end - l)), *p, *lstart = l;
		size_t n = (size_t)((nl ? nl : end) - l);
		bool nul = false;

		lineno++;
		/* As the generator sees it: NUL -> 0x01 (tr), one CR dropped. */
		for (size_t i = 0; i < n; i++)
			if (!l[i]) {
				l[i] = '\x01';
				nul = true;
			}
		if (n && l[n - 1] == '\r')
			n--;
		p = l;
		l = nl ? nl + 1 : end;
		while (n && (*p == ' ' || *p == '\t'))
			p++, n--;
		if (!n || *p == '#')
			continue;
		if (n < nlen || memcmp(p, name, nlen) || (n > nlen && p[nlen] != ' ' && p[nlen] != '\t'))
			continue;
		r = check_line(path, buf, lstart, lineno, name, p, n, nul, out, err);
		break;
	}
	free(buf);
	return r;
}

int lc_crypttab_sys_find(const char *path, const char *name, struct lc_error *err)
{
	unsigned int lineno = 0;
	size_t len = 0, nlen = name ? strlen(name) : 0;
	char *buf = NULL;
	int r;

	if (!path || !path[0] || !nlen || name[0] == '#' || strpbrk(name, " \t\r\n"))
		return 0;
	r = slurp(path, false, &buf, &len, err);
	if (r <= 0)
		return r;
	r = 0;
	for (const char *l = buf, *end = buf + len; l < end;) {
		const char *nl = memchr(l, '\n', (size_t)(end - l)), *p = l;
		size_t n = (size_t)((nl ? nl : end) - l), fl;

		lineno++;
		l = nl ? nl + 1 : end;
		while (n && (*p == ' ' || *p == '\t'))
			p++, n--;
		if (!n || *p == '#')
			continue;
		/* NAME ends at a blank or CR; systemd unquotes "NAME" and 'NAME'. */
		for (fl = 0; fl < n && p[fl] != ' ' && p[fl] != '\t' && p[fl] != '\r'; fl++)
			;
		if (fl >= 2 && (p[0] == '"' || p[0] == '\'') && p[fl - 1] == p[0])
			p++, fl -= 2;
		if (fl == nlen && !memcmp(p, name, nlen)) {
			r = (int)lineno;
			break;
		}
	}
	free(buf);
	return r;
}
