// SPDX-License-Identifier: GPL-2.0
/*
 * Test driver of the KMIP provider, through the provider layer the agent
 * uses (retries, deadline, counters):
 *
 *   kms-kmip-client [options] wrap   UID CONTEXT       -> blob=<b64> pt=<hex>
 *   kms-kmip-client [options] unwrap UID CONTEXT B64   -> pt=<hex>
 *   kms-kmip-client [options] state  UID               -> state=<state>
 *   kms-kmip-client [options] twice  UID               -> key_state twice on one
 *                              provider (the version is discovered once)
 *   kms-kmip-client [options] race   SLOW FAST         -> fast_ms=<n>: FAST's
 *                              key_state while SLOW's hangs in another thread
 *   kms-kmip-client [options] ident  [UID]             -> principal=<p>: the
 *                              provider's identity op (no request is made)
 * options: --server HOST:PORT --ca FILE --cert FILE --key FILE
 *          --max-version 1.N --connect-timeout MS --attempts N
 *          --deadline MS --attempt-timeout MS --base-delay MS
 * Every run ends with one line
 *   result ok|error class=<CLASS> code=<n> attempts=<n> ms=<n> reqid=<id> key_id=<uid> msg=<msg>
 * and exits 0 (ok) or 2 (error).  The plaintext is printed: test keys only.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "http.h"
#include "kms-kmip.h"
#include "provider.h"

struct slow {
	struct lc_provider *p;
	const char *key;
	int r;
};

static void *slow_call(void *arg)
{
	struct slow *s = arg;
	struct lc_error e;

	s->r = lc_provider_key_state(s->p, s->key, NULL, &e);
	return NULL;
}

static void hex(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		printf("%02x", p[i]);
}

int main(int argc, char **argv)
{
	struct lc_kms_kmip_config cfg = { 0 };
	struct lc_retry_policy pol = LC_RETRY_POLICY_DEFAULT;
	struct lc_provider p;
	struct lc_provider_reply rep = { 0 };
	struct lc_error err = { 0 };
	struct lc_kms_kmip *k = NULL;
	struct timespec a, b;
	int i, r;

	signal(SIGPIPE, SIG_IGN);	/* as the agent does */
	pol.base_delay_ms = 50;
	pol.max_delay_ms = 400;
	pol.attempt_timeout_ms = 5000;
	pol.deadline_ms = 20000;
	for (i = 1; i + 1 < argc && !strncmp(argv[i], "--", 2); i += 2) {
		const char *o = argv[i], *v = argv[i + 1];

		if (!strcmp(o, "--server"))
			cfg.server = v;
		else if (!strcmp(o, "--ca"))
			cfg.ca_file = v;
		else if (!strcmp(o, "--cert"))
			cfg.cert_file = v;
		else if (!strcmp(o, "--key"))
			cfg.key_file = v;
		else if (!strcmp(o, "--max-version"))
			cfg.max_minor = !strncmp(v, "1.", 2) ? (unsigned int)atoi(v + 2) : 99;
		else if (!strcmp(o, "--connect-timeout"))
			cfg.connect_timeout_ms = strtoull(v, NULL, 10);
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
		fprintf(stderr, "usage: kms-kmip-client [options] wrap|unwrap|state|twice UID ...\n");
		return 64;
	}
	clock_gettime(CLOCK_MONOTONIC, &a);
	r = lc_kms_kmip_new(&k, &cfg, &err);
	if (!r) {
		lc_kms_kmip_provider_init(&p, k);
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
			printf("\nmode=%u\n", blob.p[4]);
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
	} else if (!r && !strcmp(argv[i], "race") && i + 2 < argc) {
		/* key_state of SLOW in a thread; 300 ms later FAST on the same
		 * provider must not wait for it. */
		struct slow sl = { &p, argv[i + 1], 0 };
		pthread_t t;

		pthread_create(&t, NULL, slow_call, &sl);
		nanosleep(&(struct timespec){ .tv_nsec = 300000000 }, NULL);
		clock_gettime(CLOCK_MONOTONIC, &a);
		r = lc_provider_key_state(&p, argv[i + 2], &rep, &err);
		clock_gettime(CLOCK_MONOTONIC, &b);
		printf("fast_ms=%ld\n", (long)((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000));
		pthread_join(t, NULL);
		printf("slow_result=%d\n", sl.r);
	} else if (!r && (!strcmp(argv[i], "state") || !strcmp(argv[i], "twice")) && i + 1 < argc) {
		r = lc_provider_key_state(&p, argv[i + 1], &rep, &err);
		if (!r && !strcmp(argv[i], "twice"))
			r = lc_provider_key_state(&p, argv[i + 1], &rep, &err);
		if (!r)
			printf("state=%s\ndeletion_date=%lld\nbound_ref=%s\n", lc_key_state_name(rep.state),
			       (long long)rep.deletion_date, rep.bound_ref);
	} else if (!r && !strcmp(argv[i], "ident")) {
		char pr[LC_PROVIDER_IDENTITY_MAX];

		r = p.ops->identity(p.priv, i + 1 < argc ? argv[i + 1] : "", pol.attempt_timeout_ms, pr,
				    sizeof(pr), &rep, &err);
		if (!r)
			printf("principal=%s\n", pr);
	} else if (!r) {
		fprintf(stderr, "bad command\n");
		return 64;
	}
	if (k) {
		struct lc_provider_counters c;

		lc_provider_counters(&p, &c);
		printf("calls=%llu\n", (unsigned long long)(c.wrap + c.unwrap + c.key_state));
		lc_provider_close(&p);
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	if (!r)
		printf("result ok attempts=%u ms=%ld reqid=%s key_id=%s\n", rep.attempts,
		       (long)((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000),
		       rep.request_id, rep.key_id);
	else
		printf("result error class=%s code=%d attempts=%u ms=%ld reqid=%s key_id=%s msg=%s\n",
		       lc_err_class_name(err.cls), err.code, rep.attempts,
		       (long)((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000),
		       rep.request_id, rep.key_id, err.msg);
	return r ? 2 : 0;
}
