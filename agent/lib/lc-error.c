// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "lc-error.h"

int lc_err(struct lc_error *err, int code, enum lc_err_class cls, const char *fmt, ...)
{
	va_list ap;

	if (err) {
		err->code = code;
		err->cls = cls;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
	}
	return code;
}

void lc_err_clear(struct lc_error *err)
{
	if (err)
		memset(err, 0, sizeof(*err));
}

const char *lc_err_class_name(enum lc_err_class cls)
{
	switch (cls) {
	case LC_ERRC_NONE:
		return "none";
	case LC_ERRC_DENIED:
		return "denied";
	case LC_ERRC_TRANSIENT:
		return "transient";
	case LC_ERRC_MISCONFIG:
		return "misconfigured";
	case LC_ERRC_INVALID:
		return "invalid";
	case LC_ERRC_INTERNAL:
		return "internal";
	case LC_ERRC_REFUSED:
		return "refused";
	}
	return "unknown";
}

static int log_syslog;
static enum lc_log_level log_max = LC_LOG_INFO;
static const char *log_ident = "lakecrypt";

void lc_log_open(const char *ident, int use_syslog, enum lc_log_level max_level)
{
	log_ident = ident;
	log_syslog = use_syslog;
	log_max = max_level;
	if (use_syslog)
		openlog(ident, LOG_PID, LOG_DAEMON);
}

void lc_log(enum lc_log_level level, const char *fmt, ...)
{
	va_list ap;

	if (level > log_max)
		return;
	va_start(ap, fmt);
	if (log_syslog) {
		vsyslog((int)level, fmt, ap);
	} else {
		int saved = errno;

		fprintf(stderr, "%s: ", log_ident);
		vfprintf(stderr, fmt, ap);
		fputc('\n', stderr);
		errno = saved;
	}
	va_end(ap);
}

void lc_freep(void *p)
{
	free(*(void **)p);
}

void lc_closep(int *fd)
{
	if (*fd >= 0)
		close(*fd);
}
