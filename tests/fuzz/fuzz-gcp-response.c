// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target: the Google Cloud KMS reply reader
 * (lc_gcp_parse_response), which sees whatever an endpoint, a proxy or an
 * attacker on the path sends.  Byte 0 picks the operation and the
 * endpoint's location, byte 1 the HTTP status, the rest is the body.  Any
 * result is fine; a crash, a leak or UB is not; a success must come with
 * a well-formed result whose CRC32C matches, and nothing but an answer
 * Cloud KMS gives with a 4xx status may be DENIED.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "kms-gcp.h"

#define KEY "projects/p/locations/global/keyRings/r/cryptoKeys/k"

static const long statuses[] = { 200, 400, 401, 403, 404, 429, 500, 503 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lc_gcp_result res;
	struct lc_error err;
	enum lc_gcp_op op;
	long status;

	if (size < 2)
		return 0;
	op = (enum lc_gcp_op)(data[0] % 4);
	status = statuses[data[1] % (sizeof(statuses) / sizeof(statuses[0]))];
	memset(&err, 0, sizeof(err));
	if (!lc_gcp_parse_response(op, status, (const char *)data + 2, size - 2,
				   op == LC_GCP_GET_VERSION ? KEY "/cryptoKeyVersions/3" : KEY,
				   data[0] & 0x80 ? "us-east1" : "", &res, &err)) {
		if (status != 200)
			abort();
		/* a duplicate or escaped member name is never accepted */
		if (lc_json_check_names((const char *)data + 2, size - 2))
			abort();
		if (op == LC_GCP_ENCRYPT && (!res.blob.p || !res.blob.len || res.blob.len > LC_KMS_GCP_MAX_BLOB ||
					     strncmp(res.key_version, KEY "/cryptoKeyVersions/", 19 + strlen(KEY))))
			abort();
		if (op == LC_GCP_DECRYPT && (!res.plaintext.p || !res.plaintext.len ||
					     res.plaintext.len > LC_KMS_GCP_MAX_PLAINTEXT))
			abort();
		if ((op == LC_GCP_GET_KEY || op == LC_GCP_GET_VERSION) && res.state == LC_KEY_UNKNOWN)
			abort();
		if (op == LC_GCP_GET_VERSION && strcmp(res.key_version, KEY "/cryptoKeyVersions/3"))
			abort();
	} else if (err.cls == LC_ERRC_NONE || !err.msg[0] ||
		   (err.cls == LC_ERRC_DENIED && (status < 400 || status >= 500 || status == 429))) {
		abort();
	}
	lc_gcp_result_free(&res);
	return 0;
}
