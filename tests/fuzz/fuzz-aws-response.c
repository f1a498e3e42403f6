// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target: the AWS KMS answer reader (lc_aws_parse_response),
 * which sees whatever an endpoint, a proxy or an attacker on the path
 * sends.  Byte 0 picks the operation, byte 1 the HTTP status, the rest
 * is the body.  Any result is fine; a crash, a leak or UB is not, and a
 * success must come with a well-formed result.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "http.h"
#include "kms-aws.h"

static const long statuses[] = { 200, 400, 403, 404, 429, 500, 503, 201 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lc_aws_result res;
	struct lc_error err;
	enum lc_aws_op op;
	long status;

	if (size < 2)
		return 0;
	op = (enum lc_aws_op)(data[0] % 3);
	status = statuses[data[1] % (sizeof(statuses) / sizeof(statuses[0]))];
	if (!lc_aws_parse_response(op, status, (const char *)data + 2, size - 2,
				   data[0] & 0x80 ? "us-east-1" : "", "eu-west-2", &res, &err)) {
		/* a duplicate or escaped member name is never accepted */
		if (lc_json_check_names((const char *)data + 2, size - 2))
			abort();
		if (op == LC_AWS_ENCRYPT && (!res.blob.p || !res.blob.len || res.blob.len > LC_KMS_AWS_MAX_BLOB))
			abort();
		if (op == LC_AWS_DECRYPT && (!res.plaintext.p || !res.plaintext.len ||
					     res.plaintext.len > LC_KMS_AWS_MAX_PLAINTEXT))
			abort();
	} else if (err.cls == LC_ERRC_NONE || !err.msg[0]) {
		abort();
	}
	lc_aws_result_free(&res);
	return 0;
}
