// SPDX-License-Identifier: GPL-2.0
/*
 * Test driver of the Google Cloud KMS provider, through the provider layer the
 * agent uses (retries, deadline, counters):
 *
 *   kms-gcp-client [options] wrap   KEY CONTEXT       -> blob=<b64> pt=<hex> key_version=
 *   kms-gcp-client [options] unwrap KEY CONTEXT B64   -> pt=<hex>
 *   kms-gcp-client [options] state  KEY               -> state=<state>
 *   kms-gcp-client [options] ident  KEY               -> principal=<service account email>
 *   kms-gcp-client [options] repeat KEY N MS          -> N key_state calls, MS ms apart
 * options: --endpoint URL --ca FILE --creds SRC --key-file F --metadata URL
 *          --metadata-timeout MS --attempts N --deadline MS
 *          --attempt-timeout MS --base-delay MS
 * Every run ends with one line
 *   result ok|error class=<CLASS> code=<n> attempts=<n> ms=<n> reqid=<id> msg=<msg>
 * and exits 0 (ok) or 2 (error).  The plaintext is printed: test keys only.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "http.h"
#include "kms-gcp.h"
#include "provider.h"

static void hex(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		printf("%02x", p[i]);
}

int main(int argc, char **argv)
{
	struct lc_kms_gcp_config cfg = { 0 };
	struct lc_retry_policy pol = LC_RETRY_POLICY_DEFAULT;
	struct lc_provider p;
	struct lc_provider_reply rep = { 0 };
	struct lc_error err = { 0 };
	struct lc_kms_gcp *gcp = NULL;
	struct timespec a, b;
	int i, r;

	pol.base_delay_ms = 50;
	pol.max_delay_ms = 400;
	pol.attempt_timeout_ms = 3000;
	pol.deadline_ms = 15000;
	for (i = 1; i + 1 < argc && !strncmp(argv[i], "--", 2); i += 2) {
		const char *o = argv[i], *v = argv[i + 1];

		if (!strcmp(o, "--endpoint"))
			cfg.endpoint = v;
		else if (!strcmp(o, "--ca"))
			cfg.ca_file = v;
		else if (!strcmp(o, "--creds"))
			cfg.credentials = v;
		else if (!strcmp(o, "--key-file"))
			cfg.key_file = v;
		else if (!strcmp(o, "--metadata"))
			cfg.metadata_endpoint = v;
		else if (!strcmp(o, "--metadata-timeout"))
			cfg.metadata_timeout_ms = strtoull(v, NULL, 10);
		else if (!strcmp(o, "--attempts"))
			pol.max_attempts = (unsigned int)atoi(v);
		else if (!strcmp(o, "--deadline"))
			pol.deadline_ms = strtoull(v, NULL, 10);
		else if (!strcmp(o, "--attempt-timeout"))
			pol.attempt_timeout_ms = strtoull(v, NULL, 10);
		else if (!strcmp(o, "--base-delay"))
			pol.base_delay_ms = strtoull(v, NULL, 10);
		else {
			fprintf(stderr, "unknown option %s\n", o);
			return 64;
		}
	}
	if (i >= argc) {
		fprintf(stderr, "usage: kms-gcp-client [options] wrap|unwrap|state|repeat KEY ...\n");
		return 64;
	}
	clock_gettime(CLOCK_MONOTONIC, &a);
	r = lc_kms_gcp_new(&gcp, &cfg, &err);
	if (!r) {
		lc_kms_gcp_provider_init(&p, gcp);
		r = lc_provider_set_policy(&p, &pol, &err);
	}
	if (!r && !strcmp(argv[i], "wrap") && i + 2 < argc) {
		struct lc_secret pt = { 0 };
		struct lc_buf blob;

		lc_secret_alloc(&pt, 32);
		RAND_bytes(pt.p, 32);
		r = lc_provider_wrap(&p, argv[i + 1], &pt, argv[i + 2], &blob, &rep, &err);
		if (!r) {
			char *b64 = malloc(4 * ((blob.len + 2) / 3) + 1);

			lc_base64_encode(blob.p, blob.len, b64);
			printf("blob=%s\npt=", b64);
			hex(pt.p, pt.len);
			printf("\nkey_id=%s\nkey_version=%s\n", rep.key_id, rep.key_version);
			free(b64);
			free(blob.p);
		}
		lc_secret_free(&pt);
	} else if (!r && !strcmp(argv[i], "unwrap") && i + 3 < argc) {
		struct lc_secret pt = { 0 };
		struct lc_buf blob = { malloc(strlen(argv[i + 3]) + 3), 0 };

		if (lc_base64_decode(argv[i + 3], strlen(argv[i + 3]), blob.p, &blob.len)) {
			fprintf(stderr, "bad base64\n");
			return 64;
		}
		r = lc_provider_unwrap(&p, argv[i + 1], &blob, argv[i + 2], &pt, &rep, &err);
		if (!r) {
			printf("pt=");
			hex(pt.p, pt.len);
			printf("\n");
		}
		free(blob.p);
		lc_secret_free(&pt);
	} else if (!r && !strcmp(argv[i], "repeat") && i + 3 < argc) {
		int n = atoi(argv[i + 2]);
		long ms = atol(argv[i + 3]);

		for (int k = 0; k < n && !r; k++) {
			if (k)
				nanosleep(&(struct timespec){ .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000 }, NULL);
			r = lc_provider_key_state(&p, argv[i + 1], &rep, &err);
		}
		if (!r)
			printf("state=%s\n", lc_key_state_name(rep.state));
	} else if (!r && !strcmp(argv[i], "ident") && i + 1 < argc) {
		char who[LC_PROVIDER_IDENTITY_MAX];

		r = p.ops->identity(p.priv, argv[i + 1], 5000, who, sizeof(who), &rep, &err);
		rep.attempts = 1;
		if (!r)
			printf("principal=%s\n", who);
	} else if (!r && !strcmp(argv[i], "state") && i + 1 < argc) {
		r = lc_provider_key_state(&p, argv[i + 1], &rep, &err);
		if (!r)
			printf("state=%s\nkey_id=%s\nkey_version=%s\ndeletion_date=%lld\n",
			       lc_key_state_name(rep.state), rep.key_id, rep.key_version,
			       (long long)rep.deletion_date);
	} else if (!r) {
		fprintf(stderr, "bad command\n");
		return 64;
	}
	if (gcp)
		lc_provider_close(&p);
	clock_gettime(CLOCK_MONOTONIC, &b);
	if (!r)
		printf("result ok attempts=%u ms=%ld reqid=%s\n", rep.attempts,
		       (long)((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000),
		       rep.request_id);
	else
		printf("result error class=%s code=%d attempts=%u ms=%ld reqid=%s msg=%s\n",
		       lc_err_class_name(err.cls), err.code, rep.attempts,
		       (long)((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000),
		       rep.request_id, err.msg);
	return r ? 2 : 0;
}
