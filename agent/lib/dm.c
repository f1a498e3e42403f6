// SPDX-License-Identifier: GPL-2.0
/*
 * Device-mapper plumbing: table lines, status, create/message/remove/list
 * through libdevmapper.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libdevmapper.h>

#include "dm.h"

/* ---- pure functions: table line and status ---- */

static bool is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

static bool has_space(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || *s == 0x7f)
			return true;
	return false;
}

static bool valid_volume_id(const char *id)
{
	size_t n = strlen(id);

	if (n < 1 || n > LAKECRYPT_MAX_VOLUME_ID)
		return false;
	for (; *id; id++)
		if (!((*id >= 'A' && *id <= 'Z') || (*id >= 'a' && *id <= 'z') ||
		      (*id >= '0' && *id <= '9') || *id == '.' || *id == '_' || *id == '-'))
			return false;
	return true;
}

uint64_t lc_dm_table_segments(const struct lc_dm_table *t)
{
	if (!t->segment_sectors)
		return 0;
	return t->length / t->segment_sectors + !!(t->length % t->segment_sectors);
}

static int check_table(const struct lc_dm_table *t, struct lc_error *err)
{
	const char *cipher = t->cipher ? t->cipher : LC_DM_DEFAULT_CIPHER;
	const char *iv = "-" LAKECRYPT_CIPHER_IV;
	size_t clen = strlen(cipher), ivlen = strlen(iv);
	unsigned int ss = t->sector_size ? t->sector_size : LAKECRYPT_MIN_SECTOR_SIZE;
	uint64_t ss_sectors;
	const char *colon;

	if (clen <= ivlen || strcmp(cipher + clen - ivlen, iv) || has_space(cipher))
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "cipher \"%s\" is not usable: expected a dm-crypt cipher spec ending in \"%s\" without spaces, e.g. %s",
			      cipher, iv, LC_DM_DEFAULT_CIPHER);
	if (strchr(cipher, ':') && strncmp(cipher, "capi:", 5))
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "cipher \"%s\": multi-key forms and IV options are not supported by the lakecrypt target",
			      cipher);
	if (t->key_size < 1 || t->key_size > LAKECRYPT_MAX_KEY_SIZE)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "key size %u bytes is out of range: expected 1 to %d", t->key_size,
			      LAKECRYPT_MAX_KEY_SIZE);
	if (!t->key_prefix || !*t->key_prefix || strlen(t->key_prefix) > LAKECRYPT_MAX_KEY_PREFIX ||
	    has_space(t->key_prefix))
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "key prefix must be 1 to %d characters without spaces",
			      LAKECRYPT_MAX_KEY_PREFIX);
	colon = strchr(t->key_prefix, ':');
	if (!colon || colon == t->key_prefix)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "key prefix \"%s\" needs a \"<service>:\" part (a colon after at least one character), e.g. lakecrypt:vol1:",
			      t->key_prefix);
	if (t->key_prefix[strlen(t->key_prefix) - 1] != ':')
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "key prefix \"%s\" must end with ':' (else segment 10 of one prefix and 0 of a longer one share a key name)",
			      t->key_prefix);
	if (!is_pow2(t->segment_sectors) || t->segment_sectors < LAKECRYPT_MIN_SEGMENT_SECTORS ||
	    t->segment_sectors > (1ULL << 31))
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "segment size %" PRIu64 " sectors is not usable: expected a power of two from %d to 2^31",
			      t->segment_sectors, LAKECRYPT_MIN_SEGMENT_SECTORS);
	if (!t->device || !*t->device || has_space(t->device))
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "backing device must be a path or major:minor without spaces");
	if (!t->volume_id || !valid_volume_id(t->volume_id))
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "volume id \"%s\" is not usable: expected 1 to %d characters from A-Z a-z 0-9 . _ -",
			      t->volume_id ? t->volume_id : "", LAKECRYPT_MAX_VOLUME_ID);
	if (!is_pow2(ss) || ss < LAKECRYPT_MIN_SECTOR_SIZE || ss > LAKECRYPT_MAX_SECTOR_SIZE)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "sector size %u is not usable: expected 512, 1024, 2048 or 4096", ss);
	ss_sectors = ss / 512;
	if (!t->length || t->length % ss_sectors)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "mapping length %" PRIu64 " sectors must be non-zero and a multiple of the sector size (%u bytes)",
			      t->length, ss);
	if (t->offset % ss_sectors)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "data offset %" PRIu64 " sectors must be a multiple of the sector size (%u bytes)",
			      t->offset, ss);
	if (t->offset > UINT64_MAX - t->length)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "data offset plus length overflows");
	if (lc_dm_table_segments(t) > LAKECRYPT_MAX_SEGMENTS)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "%" PRIu64 " segments is too many: the target maps at most %u; use larger segments",
			      lc_dm_table_segments(t), LAKECRYPT_MAX_SEGMENTS);
	return 0;
}

int lc_dm_table_line(const struct lc_dm_table *t, char **line, struct lc_error *err)
{
	const char *opts[3];
	char ssbuf[32], optbuf[256] = "";
	size_t nopt = 0, used = 0;
	int r;

	*line = NULL;
	r = check_table(t, err);
	if (r < 0)
		return r;

	if (t->allow_discards)
		opts[nopt++] = LAKECRYPT_OPT_ALLOW_DISCARDS;
	if (t->sector_size && t->sector_size != LAKECRYPT_MIN_SECTOR_SIZE) {
		snprintf(ssbuf, sizeof(ssbuf), "%s:%u", LAKECRYPT_OPT_SECTOR_SIZE, t->sector_size);
		opts[nopt++] = ssbuf;
	}
	if (t->ephemeral)
		opts[nopt++] = LAKECRYPT_OPT_EPHEMERAL;
	if (nopt) {
		used = (size_t)snprintf(optbuf, sizeof(optbuf), " %zu", nopt);
		for (size_t i = 0; i < nopt; i++)
			used += (size_t)snprintf(optbuf + used, sizeof(optbuf) - used, " %s", opts[i]);
	}

	if (asprintf(line, "0 %" PRIu64 " %s %s :%u:%s:%s %" PRIu64 " %s %" PRIu64 " %s%s",
		     t->length, LAKECRYPT_TARGET_NAME,
		     t->cipher ? t->cipher : LC_DM_DEFAULT_CIPHER, t->key_size,
		     LAKECRYPT_KEY_TYPE, t->key_prefix, t->segment_sectors, t->device,
		     t->offset, t->volume_id, optbuf) < 0) {
		*line = NULL;
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory building the table line");
	}
	return 0;
}

/* Strict decimal: digits only, no sign, no leading garbage, no overflow. */
static int parse_u64(const char *s, size_t len, uint64_t max, uint64_t *v)
{
	uint64_t x = 0;

	if (!len || len > 20)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		unsigned int d;

		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		d = (unsigned int)(s[i] - '0');
		if (x > (UINT64_MAX - d) / 10)
			return -ERANGE;
		x = x * 10 + d;
	}
	if (x > max)
		return -ERANGE;
	*v = x;
	return 0;
}

static bool tok_is(const char *tok, size_t len, const char *word)
{
	return strlen(word) == len && !memcmp(tok, word, len);
}

int lc_dm_status_parse(const char *params, struct lc_dm_status *st, struct lc_error *err)
{
	static const char *const names[] = { "state", "segments", "keys_loaded", "reads",
					     "writes", "io_errors", "discard" };
	const char *tok[7];
	size_t len[7];
	const char *p = params;
	uint64_t v[7] = { 0 };
	size_t n = 0;

	memset(st, 0, sizeof(*st));
	if (!params)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID, "no status from the lakecrypt target");
	for (;;) {
		while (*p == ' ')
			p++;
		if (!*p)
			break;
		if (n == 7)
			return lc_err(err, -EINVAL, LC_ERRC_INVALID,
				      "lakecrypt status \"%.128s\" has more than 7 fields: is the module newer than this agent?",
				      params);
		tok[n] = p;
		while (*p && *p != ' ')
			p++;
		len[n] = (size_t)(p - tok[n]);
		n++;
	}
	if (n != 7)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "lakecrypt status \"%.128s\" has %zu fields, expected 7 (state segments keys_loaded reads writes io_errors discard)",
			      params, n);

	if (tok_is(tok[0], len[0], LAKECRYPT_STATE_ACTIVE))
		st->state = LC_DM_STATE_ACTIVE;
	else if (tok_is(tok[0], len[0], LAKECRYPT_STATE_REVOKED))
		st->state = LC_DM_STATE_REVOKED;
	else
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "lakecrypt status: state \"%.*s\" is neither \"%s\" nor \"%s\"",
			      (int)(len[0] > 32 ? 32 : len[0]), tok[0], LAKECRYPT_STATE_ACTIVE,
			      LAKECRYPT_STATE_REVOKED);
	for (size_t i = 1; i < 6; i++) {
		uint64_t max = i <= 2 ? LAKECRYPT_MAX_SEGMENTS : UINT64_MAX;

		if (parse_u64(tok[i], len[i], max, &v[i]) < 0)
			return lc_err(err, -EINVAL, LC_ERRC_INVALID,
				      "lakecrypt status: %s \"%.*s\" is not a number in range",
				      names[i], (int)(len[i] > 32 ? 32 : len[i]), tok[i]);
	}
	if (v[2] > v[1])
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "lakecrypt status: keys_loaded %" PRIu64 " exceeds segments %" PRIu64,
			      v[2], v[1]);
	if (tok_is(tok[6], len[6], LAKECRYPT_DISCARD_NONE))
		st->discard = LC_DM_DISCARD_NONE;
	else if (tok_is(tok[6], len[6], LAKECRYPT_DISCARD_DONE))
		st->discard = LC_DM_DISCARD_DONE;
	else if (tok_is(tok[6], len[6], LAKECRYPT_DISCARD_UNSUPPORTED))
		st->discard = LC_DM_DISCARD_UNSUPPORTED;
	else if (tok_is(tok[6], len[6], LAKECRYPT_DISCARD_FAILED))
		st->discard = LC_DM_DISCARD_FAILED;
	else if (tok_is(tok[6], len[6], LAKECRYPT_DISCARD_PENDING))
		st->discard = LC_DM_DISCARD_PENDING;
	else
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "lakecrypt status: discard \"%.*s\" is not one of - pending discarded unsupported failed",
			      (int)(len[6] > 32 ? 32 : len[6]), tok[6]);
	st->segments = (uint32_t)v[1];
	st->keys_loaded = (uint32_t)v[2];
	st->reads = v[3];
	st->writes = v[4];
	st->io_errors = v[5];
	return 0;
}

const char *lc_dm_state_name(enum lc_dm_state s)
{
	return s == LC_DM_STATE_REVOKED ? LAKECRYPT_STATE_REVOKED : LAKECRYPT_STATE_ACTIVE;
}

const char *lc_dm_discard_name(enum lc_dm_discard d)
{
	switch (d) {
	case LC_DM_DISCARD_DONE:
		return LAKECRYPT_DISCARD_DONE;
	case LC_DM_DISCARD_UNSUPPORTED:
		return LAKECRYPT_DISCARD_UNSUPPORTED;
	case LC_DM_DISCARD_FAILED:
		return LAKECRYPT_DISCARD_FAILED;
	case LC_DM_DISCARD_PENDING:
		return LAKECRYPT_DISCARD_PENDING;
	case LC_DM_DISCARD_NONE:
		break;
	}
	return LAKECRYPT_DISCARD_NONE;
}

/* ---- libdevmapper ---- */

/* libdevmapper reports through a global log function: keep the last error
 * of this thread so it can go into struct lc_error, send the rest to our
 * log at debug level. */
static _Thread_local char dm_last_error[256];	/* reset by task_new() */

static void dm_log_cb(int level, const char *file, int line, int dm_errno_or_class,
		      const char *f, ...) __attribute__((format(printf, 5, 6)));
static void dm_log_cb(int level, const char *file, int line, int dm_errno_or_class,
		      const char *f, ...)
{
	char buf[sizeof(dm_last_error)];
	va_list ap;

	(void)file;
	(void)line;
	(void)dm_errno_or_class;
	va_start(ap, f);
	vsnprintf(buf, sizeof(buf), f, ap);
	va_end(ap);
	level &= 7;	/* strip _LOG_STDERR / _LOG_ONCE */
	/* The first error of a task names the cause; later ones are
	 * consequences ("Incompatible libdevmapper ..."). */
	if (level <= 3 && !dm_last_error[0])
		memcpy(dm_last_error, buf, sizeof(buf));
	lc_debug("libdevmapper: %s", buf);
}

static pthread_once_t dm_once = PTHREAD_ONCE_INIT;

static void dm_setup(void)
{
	const char *e = getenv("DM_DISABLE_UDEV");

	dm_log_with_errno_init(dm_log_cb);
	if (e && !strcmp(e, "1"))
		dm_udev_set_sync_support(0);
}

static struct dm_task *task_new(int type)
{
	pthread_once(&dm_once, dm_setup);
	dm_last_error[0] = '\0';
	return dm_task_create(type);
}

static void task_destroyp(struct dm_task **dmt)
{
	if (*dmt)
		dm_task_destroy(*dmt);
}

#define _cleanup_task_ _cleanup_(task_destroyp)

/* A udev cookie for ioctls that make uevents, with the udev flags @flags
 * (DM_UDEV_*_FLAG, libdevmapper.h).  Without udev sync the cookie is 0 and
 * dm_udev_wait() just performs libdevmapper's own node updates. */
static int task_set_cookie_flags(struct dm_task *dmt, uint32_t *cookie, uint16_t flags)
{
	*cookie = 0;
	if (dm_udev_get_sync_support())
		flags |= DM_UDEV_DISABLE_LIBRARY_FALLBACK;
	return dm_task_set_cookie(dmt, cookie, flags);
}

static int task_set_cookie(struct dm_task *dmt, uint32_t *cookie)
{
	return task_set_cookie_flags(dmt, cookie, 0);
}

static int task_errno(struct dm_task *dmt)
{
	int e = dm_task_get_errno(dmt);

	return e > 0 ? -e : -EIO;
}

static const char *last_error(void)
{
	return dm_last_error[0] ? dm_last_error : "no detail from libdevmapper";
}

/* dm_task_create() fails when the control device cannot be opened far
 * more often than for lack of memory. */
static int no_task(struct lc_error *err)
{
	return lc_err(err, -ENODEV, LC_ERRC_MISCONFIG,
		      "cannot talk to the kernel's device-mapper (%s): is dm_mod loaded and the caller root (CAP_SYS_ADMIN)?",
		      last_error());
}

static int check_name(const char *name, struct lc_error *err)
{
	if (!name || !*name || strlen(name) > LC_DM_NAME_MAX || strchr(name, '/'))
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "device name \"%s\" is not usable: expected 1 to %d characters without '/'",
			      name ? name : "", LC_DM_NAME_MAX);
	return 0;
}

/* "<start> <len> <target> <params>" of a one-target table. */
static int split_line(const char *line, uint64_t *start, uint64_t *len, char *target,
		      size_t tsize, const char **params, struct lc_error *err)
{
	const char *p = line, *f[3];
	size_t fl[3];

	for (int i = 0; i < 3; i++) {
		while (*p == ' ' || *p == '\t')
			p++;
		f[i] = p;
		while (*p && *p != ' ' && *p != '\t' && *p != '\n')
			p++;
		fl[i] = (size_t)(p - f[i]);
		if (!fl[i])
			goto bad;
	}
	while (*p == ' ' || *p == '\t')
		p++;
	if (!*p || strchr(p, '\n'))
		goto bad;
	if (parse_u64(f[0], fl[0], UINT64_MAX, start) < 0 ||
	    parse_u64(f[1], fl[1], UINT64_MAX, len) < 0 || !*len || fl[2] >= tsize)
		goto bad;
	memcpy(target, f[2], fl[2]);
	target[fl[2]] = '\0';
	*params = p;
	return 0;
bad:
	return lc_err(err, -EINVAL, LC_ERRC_INVALID,
		      "table line is malformed: expected one line \"<start> <length> %s <parameters>\"",
		      LAKECRYPT_TARGET_NAME);
}

int lc_dm_create(const char *name, const char *volume_uuid, const char *line,
		 struct lc_error *err)
{
	_cleanup_task_ struct dm_task *dmt = NULL;
	char uuid[LC_DM_UUID_MAX + 1], target[64];
	const char *params = NULL;
	uint64_t start = 0, len = 0;
	uint32_t cookie = 0;
	int r;

	r = check_name(name, err);
	if (r < 0)
		return r;
	if (!volume_uuid || !*volume_uuid || has_space(volume_uuid) ||
	    strlen(LC_DM_UUID_PREFIX) + strlen(volume_uuid) > LC_DM_UUID_MAX)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "volume uuid \"%s\" is not usable as a device-mapper uuid",
			      volume_uuid ? volume_uuid : "");
	snprintf(uuid, sizeof(uuid), "%s%s", LC_DM_UUID_PREFIX, volume_uuid);
	r = split_line(line, &start, &len, target, sizeof(target), &params, err);
	if (r < 0)
		return r;
	if (strcmp(target, LAKECRYPT_TARGET_NAME))
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "table line is for target \"%s\", expected \"%s\"", target,
			      LAKECRYPT_TARGET_NAME);

	dmt = task_new(DM_DEVICE_CREATE);
	if (!dmt)
		return no_task(err);
	/* No key is loaded yet: udev must not probe the device (blkid's reads
	 * would fail and find nothing) nor tell systemd it is ready; the
	 * caller announces it with lc_dm_announce() once its keys are in. */
	if (!dm_task_set_name(dmt, name) || !dm_task_set_uuid(dmt, uuid) ||
	    !dm_task_add_target(dmt, start, len, target, params) ||
	    !task_set_cookie_flags(dmt, &cookie, DM_UDEV_DISABLE_DISK_RULES_FLAG |
				   DM_UDEV_DISABLE_OTHER_RULES_FLAG))
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL,
			      "cannot prepare the device-mapper create of %s: %s", name, last_error());
	/* Read-write is the default; no dm_task_set_ro(). */
	if (!dm_task_run(dmt)) {
		r = task_errno(dmt);
		(void)dm_udev_wait(cookie);
		if (r == -EBUSY || r == -EEXIST)
			return lc_err(err, -EEXIST, LC_ERRC_INVALID,
				      "device %s already exists (or its uuid %s is in use): close it first",
				      name, uuid);
		return lc_err(err, r, r == -EACCES || r == -EPERM ? LC_ERRC_MISCONFIG : LC_ERRC_INVALID,
			      "creating device %s failed: %s (%s); is dm-lakecrypt loaded and the table valid? see the kernel log",
			      name, strerror(-r), last_error());
	}
	(void)dm_udev_wait(cookie);
	return 0;
}

/* DM_DEVICE_CLEAR: drop an inactive table left by a failed reload. */
static void clear_inactive(const char *name)
{
	_cleanup_task_ struct dm_task *dmt = task_new(DM_DEVICE_CLEAR);

	if (dmt && dm_task_set_name(dmt, name))
		(void)dm_task_run(dmt);
}

int lc_dm_reload(const char *name, const char *line, struct lc_error *err)
{
	_cleanup_task_ struct dm_task *dmt = NULL, *res = NULL;
	char target[64];
	const char *params = NULL;
	uint64_t start = 0, len = 0;
	uint32_t cookie = 0;
	int r;

	r = check_name(name, err);
	if (r < 0)
		return r;
	r = split_line(line, &start, &len, target, sizeof(target), &params, err);
	if (r < 0)
		return r;
	if (strcmp(target, LAKECRYPT_TARGET_NAME))
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "table line is for target \"%s\", expected \"%s\"", target,
			      LAKECRYPT_TARGET_NAME);
	dmt = task_new(DM_DEVICE_RELOAD);
	if (!dmt)
		return no_task(err);
	if (!dm_task_set_name(dmt, name) || !dm_task_add_target(dmt, start, len, target, params))
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL,
			      "cannot prepare the device-mapper reload of %s: %s", name, last_error());
	if (!dm_task_run(dmt)) {
		r = task_errno(dmt);
		if (r == -ENXIO || r == -ENODEV)
			return lc_err(err, -ENXIO, LC_ERRC_INVALID, "device %s does not exist", name);
		return lc_err(err, r, LC_ERRC_INVALID,
			      "the kernel refused the new table of %s: %s (%s); the old table goes on serving, see the kernel log",
			      name, strerror(-r), last_error());
	}
	res = task_new(DM_DEVICE_RESUME);
	if (!res || !dm_task_set_name(res, name) || !task_set_cookie(res, &cookie)) {
		clear_inactive(name);
		return res ? lc_err(err, -ENOMEM, LC_ERRC_INTERNAL,
				    "cannot prepare the resume of %s: %s", name, last_error())
			   : no_task(err);
	}
	if (!dm_task_run(res)) {
		r = task_errno(res);
		(void)dm_udev_wait(cookie);
		/* The swap happened; the target refused to resume (no keys
		 * carried over): the device is suspended with the new table. */
		return lc_err(err, -EAGAIN, LC_ERRC_INVALID,
			      "the kernel swapped in the new table of %s but refused to resume it: %s (%s); it is suspended until its keys are loaded and it is resumed, see the kernel log",
			      name, strerror(-r), last_error());
	}
	(void)dm_udev_wait(cookie);
	return 0;
}

int lc_dm_resume(const char *name, struct lc_error *err)
{
	_cleanup_task_ struct dm_task *dmt = NULL;
	uint32_t cookie = 0;
	int r;

	r = check_name(name, err);
	if (r < 0)
		return r;
	dmt = task_new(DM_DEVICE_RESUME);
	if (!dmt)
		return no_task(err);
	if (!dm_task_set_name(dmt, name) || !task_set_cookie(dmt, &cookie))
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "cannot prepare the resume of %s: %s",
			      name, last_error());
	if (!dm_task_run(dmt)) {
		r = task_errno(dmt);
		(void)dm_udev_wait(cookie);
		return lc_err(err, r, LC_ERRC_INVALID, "resuming %s failed: %s (%s); see the kernel log",
			      name, strerror(-r), last_error());
	}
	(void)dm_udev_wait(cookie);
	return 0;
}

int lc_dm_announce(const char *name, struct lc_error *err)
{
	_cleanup_task_ struct dm_task *sus = NULL;
	int r;

	r = check_name(name, err);
	if (r < 0)
		return r;
	sus = task_new(DM_DEVICE_SUSPEND);
	if (!sus)
		return no_task(err);
	if (!dm_task_set_name(sus, name))
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "cannot prepare the suspend of %s",
			      name);
	if (!dm_task_run(sus)) {
		r = task_errno(sus);
		return lc_err(err, r, LC_ERRC_INVALID,
			      "suspending %s to announce it to udev failed: %s (%s); see the kernel log",
			      name, strerror(-r), last_error());
	}
	return lc_dm_resume(name, err);
}

int lc_dm_message(const char *name, const char *msg, struct lc_error *err)
{
	_cleanup_task_ struct dm_task *dmt = NULL;
	int r;

	r = check_name(name, err);
	if (r < 0)
		return r;
	dmt = task_new(DM_DEVICE_TARGET_MSG);
	if (!dmt)
		return no_task(err);
	if (!dm_task_set_name(dmt, name) || !dm_task_set_sector(dmt, 0) ||
	    !dm_task_set_message(dmt, msg))
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL,
			      "cannot prepare message \"%s\" to %s", msg, name);
	if (!dm_task_run(dmt)) {
		r = task_errno(dmt);
		if (r == -ENXIO || r == -ENODEV)
			return lc_err(err, -ENXIO, LC_ERRC_INVALID, "device %s does not exist", name);
		if (r == -EPERM)
			return lc_err(err, r, LC_ERRC_DENIED,
				      "device %s refused \"%s\": it is revoked (or the caller lacks CAP_SYS_ADMIN)",
				      name, msg);
		return lc_err(err, r, LC_ERRC_INVALID,
			      "message \"%s\" to %s failed: %s; the kernel log names the cause",
			      msg, name, strerror(-r));
	}
	return 0;
}

static int key_msg(const char *name, const char *verb, uint32_t first, uint32_t last,
		   struct lc_error *err)
{
	char msg[96];

	if (first > last)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "segment range %u-%u is empty: first must not exceed last", first, last);
	if (first == last)
		snprintf(msg, sizeof(msg), "%s %s %u", LAKECRYPT_MSG_KEY, verb, first);
	else
		snprintf(msg, sizeof(msg), "%s %s %u-%u", LAKECRYPT_MSG_KEY, verb, first, last);
	return lc_dm_message(name, msg, err);
}

int lc_dm_key_load(const char *name, uint32_t first, uint32_t last, struct lc_error *err)
{
	return key_msg(name, LAKECRYPT_MSG_KEY_LOAD, first, last, err);
}

int lc_dm_key_wipe(const char *name, uint32_t first, uint32_t last, struct lc_error *err)
{
	return key_msg(name, LAKECRYPT_MSG_KEY_WIPE, first, last, err);
}

int lc_dm_revoke(const char *name, bool discard, struct lc_error *err)
{
	return lc_dm_message(name, discard ? LAKECRYPT_MSG_REVOKE " " LAKECRYPT_MSG_REVOKE_DISCARD
					   : LAKECRYPT_MSG_REVOKE, err);
}

/* Task @type (its @what: "status", "table") run on existing device @name:
 * the task, or NULL with -errno in *@r and @err set. */
static struct dm_task *run_named(int type, const char *what, const char *name, int *r,
				 struct lc_error *err)
{
	_cleanup_task_ struct dm_task *dmt = NULL;
	struct dm_info info;
	struct dm_task *ok;

	*r = check_name(name, err);
	if (*r < 0)
		return NULL;
	dmt = task_new(type);
	if (!dmt) {
		*r = no_task(err);
		return NULL;
	}
	if (!dm_task_set_name(dmt, name)) {
		*r = lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "cannot prepare the %s of %s", what, name);
		return NULL;
	}
	if (!dm_task_run(dmt)) {
		int e = task_errno(dmt);

		*r = lc_err(err, e, LC_ERRC_INVALID, "reading the %s of %s failed: %s (%s)",
			    what, name, strerror(-e), last_error());
		return NULL;
	}
	if (!dm_task_get_info(dmt, &info) || !info.exists) {
		*r = lc_err(err, -ENXIO, LC_ERRC_INVALID, "device %s does not exist", name);
		return NULL;
	}
	ok = dmt;
	dmt = NULL;
	return ok;
}

int lc_dm_status(const char *name, struct lc_dm_status *st, struct lc_error *err)
{
	_cleanup_task_ struct dm_task *dmt = NULL;
	char *ttype = NULL, *params = NULL;
	uint64_t start = 0, len = 0;
	int r;

	dmt = run_named(DM_DEVICE_STATUS, "status", name, &r, err);
	if (!dmt)
		return r;
	(void)dm_get_next_target(dmt, NULL, &start, &len, &ttype, &params);
	if (!ttype || strcmp(ttype, LAKECRYPT_TARGET_NAME))
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "device %s is not a lakecrypt device (target \"%s\")", name,
			      ttype ? ttype : "none");
	return lc_dm_status_parse(params, st, err);
}

int lc_dm_table_get(const char *name, char **params, uint64_t *length, struct lc_error *err)
{
	_cleanup_task_ struct dm_task *dmt = NULL;
	char *ttype = NULL, *p = NULL;
	uint64_t start = 0, len = 0;
	int r;

	*params = NULL;
	*length = 0;
	dmt = run_named(DM_DEVICE_TABLE, "table", name, &r, err);
	if (!dmt)
		return r;
	/* One target, lakecrypt's, at sector 0: anything else is not ours. */
	if (dm_get_next_target(dmt, NULL, &start, &len, &ttype, &p) || start || !ttype ||
	    strcmp(ttype, LAKECRYPT_TARGET_NAME) || !p)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "device %s is not a lakecrypt device of one target (target \"%s\")", name,
			      ttype ? ttype : "none");
	*params = strdup(p);
	if (!*params)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	*length = len;
	return 0;
}

#define NO_TASK (-ENOTCONN)	/* no device-mapper control device */

static int remove_once(const char *name)
{
	_cleanup_task_ struct dm_task *dmt = NULL;
	uint32_t cookie = 0;
	int r = 0;

	dmt = task_new(DM_DEVICE_REMOVE);
	if (!dmt)
		return NO_TASK;
	/* dm_task_retry_remove: libdevmapper itself retries a few times on
	 * EBUSY, as cryptsetup relies on. */
	if (!dm_task_set_name(dmt, name) || !dm_task_retry_remove(dmt) ||
	    !task_set_cookie(dmt, &cookie))
		return -ENOMEM;
	if (!dm_task_run(dmt))
		r = task_errno(dmt);
	(void)dm_udev_wait(cookie);
	return r;
}

int lc_dm_remove(const char *name, struct lc_error *err)
{
	int r, tries = 5;

	r = check_name(name, err);
	if (r < 0)
		return r;
	for (;;) {
		r = remove_once(name);
		if (r != -EBUSY || --tries == 0)
			break;
		lc_debug("device %s is busy, retrying removal", name);
		usleep(200 * 1000);
	}
	if (r == -ENXIO || r == -ENODEV)
		return lc_err(err, -ENXIO, LC_ERRC_INVALID, "device %s does not exist", name);
	if (r == NO_TASK)
		return no_task(err);
	if (r == -EBUSY)
		return lc_err(err, r, LC_ERRC_TRANSIENT,
			      "device %s is still in use (mounted or open): unmount or close it, then retry",
			      name);
	if (r < 0)
		return lc_err(err, r, LC_ERRC_INTERNAL, "removing device %s failed: %s (%s)",
			      name, strerror(-r), last_error());
	return 0;
}

static int dev_info(const char *name, struct lc_dm_device *d)
{
	_cleanup_task_ struct dm_task *dmt = NULL;
	struct dm_info info;
	const char *uuid;

	dmt = task_new(DM_DEVICE_INFO);
	if (!dmt)
		return -ENOMEM;
	if (!dm_task_set_name(dmt, name))
		return -ENOMEM;
	if (!dm_task_run(dmt))
		return task_errno(dmt);
	if (!dm_task_get_info(dmt, &info) || !info.exists)
		return -ENXIO;
	uuid = dm_task_get_uuid(dmt);
	snprintf(d->name, sizeof(d->name), "%s", name);
	snprintf(d->uuid, sizeof(d->uuid), "%s", uuid ? uuid : "");
	d->major = info.major;
	d->minor = info.minor;
	return 0;
}

int lc_dm_list(struct lc_dm_device **devs, size_t *n, struct lc_error *err)
{
	_cleanup_task_ struct dm_task *dmt = NULL;
	struct lc_dm_device *out = NULL, d;
	struct dm_names *names;
	size_t cnt = 0, cap = 0;
	unsigned int next = 0;

	*devs = NULL;
	*n = 0;
	dmt = task_new(DM_DEVICE_LIST);
	if (!dmt)
		return no_task(err);
	if (!dm_task_run(dmt)) {
		int r = task_errno(dmt);

		return lc_err(err, r, LC_ERRC_MISCONFIG,
			      "listing device-mapper devices failed: %s (%s)", strerror(-r),
			      last_error());
	}
	names = dm_task_get_names(dmt);
	if (!names || !names->dev)
		return 0;
	do {
		names = (struct dm_names *)((char *)names + next);
		/* A device may vanish between the list and the info. */
		if (dev_info(names->name, &d) == 0 &&
		    !strncmp(d.uuid, LC_DM_UUID_PREFIX, strlen(LC_DM_UUID_PREFIX))) {
			if (cnt == cap) {
				size_t ncap = cap ? cap * 2 : 8;
				struct lc_dm_device *t = realloc(out, ncap * sizeof(*out));

				if (!t) {
					free(out);
					return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
				}
				out = t;
				cap = ncap;
			}
			out[cnt++] = d;
		}
		next = names->next;
	} while (next);
	*devs = out;
	*n = cnt;
	return 0;
}
