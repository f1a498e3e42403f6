/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Errors and logging shared by the lakecrypt library, agent and CLI.
 *
 * Functions return 0 or a negative errno.  Where a person must be told what
 * went wrong, they also fill a struct lc_error: a message that says what
 * is wrong and what is expected, and, for KMS failures, the error class
 * that decides between retrying and pulling the kill switch.
 */
#ifndef LC_ERROR_H
#define LC_ERROR_H

#include <stdarg.h>
#include <stddef.h>

/* Error classes: every KMS failure has one (product brief: an outage is
 * not a revocation). */
enum lc_err_class {
	LC_ERRC_NONE = 0,
	LC_ERRC_DENIED,		/* authoritative: key disabled/destroyed/access denied */
	LC_ERRC_TRANSIENT,	/* retry: timeout, throttling, 5xx, connection */
	LC_ERRC_MISCONFIG,	/* fix the configuration: bad key ref, bad endpoint */
	LC_ERRC_INVALID,	/* bad input: header, argument, request */
	LC_ERRC_INTERNAL,	/* out of memory, bug */
	LC_ERRC_REFUSED,	/* the peer's role does not allow the operation (-EACCES) */
};

#define LC_ERROR_MSG_MAX 512

struct lc_error {
	int code;			/* negative errno, 0 if none */
	enum lc_err_class cls;
	char msg[LC_ERROR_MSG_MAX];
};

/* Set @err (if not NULL) and return @code, for "return lc_err(...)". */
int lc_err(struct lc_error *err, int code, enum lc_err_class cls, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void lc_err_clear(struct lc_error *err);
const char *lc_err_class_name(enum lc_err_class cls);

/* Logging: stderr by default, syslog after lc_log_open(true). */
enum lc_log_level { LC_LOG_ERR = 3, LC_LOG_WARNING = 4, LC_LOG_INFO = 6, LC_LOG_DEBUG = 7 };
void lc_log_open(const char *ident, int use_syslog, enum lc_log_level max_level);
void lc_log(enum lc_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define lc_error_log(fmt, ...) lc_log(LC_LOG_ERR, fmt, ##__VA_ARGS__)
#define lc_warn(fmt, ...) lc_log(LC_LOG_WARNING, fmt, ##__VA_ARGS__)
#define lc_info(fmt, ...) lc_log(LC_LOG_INFO, fmt, ##__VA_ARGS__)
#define lc_debug(fmt, ...) lc_log(LC_LOG_DEBUG, fmt, ##__VA_ARGS__)

/* _cleanup_ helpers in the manner of systemd. */
#define _cleanup_(f) __attribute__((cleanup(f)))
void lc_freep(void *p);		/* free(*(void **)p) */
void lc_closep(int *fd);	/* close(*fd) if >= 0 */
#define _cleanup_free_ _cleanup_(lc_freep)
#define _cleanup_close_ _cleanup_(lc_closep)

#endif /* LC_ERROR_H */
