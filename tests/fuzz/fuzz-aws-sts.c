// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target: the STS GetCallerIdentity answer reader
 * (lc_aws_parse_caller_identity), which sees whatever an STS endpoint, a
 * proxy or an attacker on the path sends.  Byte 0 picks the HTTP status,
 * the rest is the body (NUL-terminated copy, as the HTTP core gives it).
 * Any result is fine; a crash, a leak or UB is not; a success must be a
 * printable principal ARN that fits, and a failure must say why.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kms-aws.h"

static const long statuses[] = { 200, 400, 403, 404, 429, 500, 503, 302 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char arn[LC_PROVIDER_IDENTITY_MAX];
	struct lc_error err = { 0 };
	char *body;
	long status;

	if (size < 1)
		return 0;
	status = statuses[data[0] % (sizeof(statuses) / sizeof(statuses[0]))];
	body = malloc(size);
	if (!body)
		return 0;
	memcpy(body, data + 1, size - 1);
	body[size - 1] = 0;
	if (!lc_aws_parse_caller_identity(status, body, size - 1, arn, sizeof(arn), &err)) {
		size_t n = strlen(arn);

		if (status != 200 || n < 4 || n >= sizeof(arn) || strncmp(arn, "arn:", 4))
			abort();
		for (size_t i = 0; i < n; i++)
			if (arn[i] < 0x21 || arn[i] > 0x7e || arn[i] == '"' || arn[i] == '\\')
				abort();
	} else if (err.cls == LC_ERRC_NONE || !err.msg[0] || arn[0]) {
		abort();
	}
	free(body);
	return 0;
}
