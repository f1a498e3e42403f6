// SPDX-License-Identifier: GPL-2.0
/*
 * Google Cloud: who the agent is (the provider's identity operation,
 * kms-gcp.h): the service account of the credential in use, by its
 * email: a key file's "client_email", or the metadata server's
 * instance/service-accounts/default/email ("About VM metadata").  Both
 * are read as hostile: one address, bounded, of the characters a
 * service-account email has.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "kms-gcp.h"

int lc_gcp_email_check(const char *s, size_t n, char *out, size_t size, struct lc_error *err)
{
	size_t at = 0, nat = 0;

	if (size)
		out[0] = 0;
	/* the metadata server ends its text with no newline, but a proxy may */
	while (s && n && (s[n - 1] == '\n' || s[n - 1] == '\r'))
		n--;
	if (!s || n < 3 || n > LC_GCP_EMAIL_MAX)
		return lc_err(err, -EPROTO, LC_ERRC_TRANSIENT,
			      "GCP: the service account email is empty or longer than %d characters",
			      LC_GCP_EMAIL_MAX);
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (c == '@') {
			at = i;
			nat++;
		} else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			     c == '.' || c == '_' || c == '-' || c == '+')) {
			return lc_err(err, -EPROTO, LC_ERRC_TRANSIENT,
				      "GCP: the service account email has a character an email address cannot have");
		}
	}
	if (nat != 1 || at == 0 || at == n - 1)
		return lc_err(err, -EPROTO, LC_ERRC_TRANSIENT,
			      "GCP: the service account email is not one address (name@domain)");
	if (n >= size)
		return lc_err(err, -E2BIG, LC_ERRC_INTERNAL, "GCP: the service account email does not fit");
	memcpy(out, s, n);
	out[n] = 0;
	return 0;
}
