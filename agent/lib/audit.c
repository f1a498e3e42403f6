// SPDX-License-Identifier: GPL-2.0
/*
 * The audit log writer.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "audit.h"

const char *const lc_audit_fields[] = {
	"time", "peer_uid", "op", "workspace", "project", "keyconfig", "provider",
	"cmk_id", "cmk_version", "outcome", "error_class", "latency_ms", "request_id",
	"detail",
	NULL,
};

void lc_audit_event_init(struct lc_audit_event *ev, const char *op, enum lc_audit_outcome outcome)
{
	memset(ev, 0, sizeof(*ev));
	ev->op = op;
	ev->outcome = outcome;
	ev->peer_uid = -1;
	ev->latency_ms = -1;
	ev->error_class = LC_ERRC_NONE;
}

const char *lc_audit_outcome_name(enum lc_audit_outcome o)
{
	switch (o) {
	case LC_AUDIT_SUCCESS:
		return "success";
	case LC_AUDIT_FAILURE:
		return "failure";
	case LC_AUDIT_REFUSED:
		return "refused";
	}
	return NULL;
}

/* Length of the valid UTF-8 sequence at @s (at most @n bytes), 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	size_t len;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return len;
}

/* Valid UTF-8, at most LC_AUDIT_FIELD_MAX bytes (cut on a character). */
static struct json_object *field_string(const char *s)
{
	char out[LC_AUDIT_FIELD_MAX + 4];
	size_t n = strlen(s), o = 0;

	for (size_t i = 0; i < n;) {
		size_t l = utf8_len((const unsigned char *)s + i, n - i);
		const char *src = s + i;
		size_t copy = l;

		if (!l) {
			src = "\xef\xbf\xbd";	/* U+FFFD */
			copy = 3;
			l = 1;
		}
		if (o + copy > LC_AUDIT_FIELD_MAX)
			break;
		memcpy(out + o, src, copy);
		o += copy;
		i += l;
	}
	return json_object_new_string_len(out, (int)o);
}

static int add_str(struct json_object *o, const char *key, const char *val)
{
	struct json_object *v;

	if (!val)
		return 0;
	v = field_string(val);
	if (!v)
		return -ENOMEM;
	json_object_object_add(o, key, v);
	return 0;
}

int lc_audit_format(const struct lc_audit_event *ev, const struct timespec *ts, char **line,
		    struct lc_error *err)
{
	struct json_object *o = NULL;
	const char *outcome = lc_audit_outcome_name(ev->outcome), *s;
	char tbuf[64];
	struct tm tm;
	size_t len;
	int r = 0;

	*line = NULL;
	if (!ev->op || !*ev->op)
		return lc_err(err, -EINVAL, LC_ERRC_INTERNAL, "audit record without an operation");
	if (!outcome)
		return lc_err(err, -EINVAL, LC_ERRC_INTERNAL, "audit record with outcome %d",
			      (int)ev->outcome);
	if (!gmtime_r(&ts->tv_sec, &tm) || !strftime(tbuf, sizeof(tbuf), "%Y-%m-%dT%H:%M:%S", &tm))
		return lc_err(err, -EINVAL, LC_ERRC_INTERNAL, "audit record time is out of range");
	snprintf(tbuf + strlen(tbuf), sizeof(tbuf) - strlen(tbuf), ".%03ldZ",
		 (long)(ts->tv_nsec / 1000000));

	o = json_object_new_object();
	if (!o)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	json_object_object_add(o, "time", json_object_new_string(tbuf));
	if (ev->peer_uid >= 0)
		json_object_object_add(o, "peer_uid", json_object_new_int64(ev->peer_uid));
	r |= add_str(o, "op", ev->op);
	r |= add_str(o, "workspace", ev->workspace);
	r |= add_str(o, "project", ev->project);
	r |= add_str(o, "keyconfig", ev->keyconfig);
	r |= add_str(o, "provider", ev->provider);
	r |= add_str(o, "cmk_id", ev->cmk_id);
	r |= add_str(o, "cmk_version", ev->cmk_version);
	json_object_object_add(o, "outcome", json_object_new_string(outcome));
	if (ev->error_class != LC_ERRC_NONE)
		json_object_object_add(o, "error_class",
				       json_object_new_string(lc_err_class_name(ev->error_class)));
	if (ev->latency_ms >= 0)
		json_object_object_add(o, "latency_ms", json_object_new_int64(ev->latency_ms));
	r |= add_str(o, "request_id", ev->request_id);
	r |= add_str(o, "detail", ev->detail);
	if (r) {
		json_object_put(o);
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	}
	s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN |
					      JSON_C_TO_STRING_NOSLASHESCAPE, &len);
	if (s) {
		*line = malloc(len + 2);
		if (*line) {
			memcpy(*line, s, len);
			(*line)[len] = '\n';
			(*line)[len + 1] = '\0';
		}
	}
	json_object_put(o);
	if (!*line)
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	return 0;
}

static int open_log(const char *path, struct lc_error *err)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);

	if (fd < 0)
		return lc_err(err, -errno, LC_ERRC_MISCONFIG,
			      "cannot open audit log %s: %s; check audit_log in the config and the directory's permissions",
			      path, strerror(errno));
	return fd;
}

int lc_audit_open(struct lc_audit *a, const char *path, bool fsync_each, struct lc_error *err)
{
	int fd;

	memset(a, 0, sizeof(*a));
	a->fd = -1;
	fd = open_log(path, err);
	if (fd < 0)
		return fd;
	a->path = strdup(path);
	if (!a->path) {
		close(fd);
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	}
	a->fd = fd;
	a->fsync_each = fsync_each;
	pthread_mutex_init(&a->lock, NULL);
	return 0;
}

int lc_audit_write(struct lc_audit *a, const struct lc_audit_event *ev, struct lc_error *err)
{
	_cleanup_free_ char *line = NULL;
	struct timespec ts;
	size_t len, off = 0;
	int r = 0;

	clock_gettime(CLOCK_REALTIME, &ts);
	r = lc_audit_format(ev, &ts, &line, err);
	if (r < 0)
		return r;
	len = strlen(line);

	pthread_mutex_lock(&a->lock);
	while (off < len) {
		/* One write for the whole record; a short write (disk full)
		 * is continued, and is the only way a record can be cut. */
		ssize_t w = write(a->fd, line + off, len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			r = w < 0 ? -errno : -EIO;
			break;
		}
		off += (size_t)w;
	}
	if (!r && a->fsync_each && fdatasync(a->fd) < 0)
		r = -errno;
	pthread_mutex_unlock(&a->lock);
	if (r < 0)
		return lc_err(err, r, LC_ERRC_INTERNAL, "writing the audit log %s failed: %s",
			      a->path, strerror(-r));
	return 0;
}

int lc_audit_reopen(struct lc_audit *a, struct lc_error *err)
{
	int fd = open_log(a->path, err);

	if (fd < 0)
		return fd;
	pthread_mutex_lock(&a->lock);
	close(a->fd);
	a->fd = fd;
	pthread_mutex_unlock(&a->lock);
	return 0;
}

void lc_audit_close(struct lc_audit *a)
{
	if (!a->path)
		return;
	if (a->fd >= 0) {
		if (a->fsync_each)
			(void)fdatasync(a->fd);
		close(a->fd);
	}
	a->fd = -1;
	free(a->path);
	a->path = NULL;
	pthread_mutex_destroy(&a->lock);
}
