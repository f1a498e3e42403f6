// SPDX-License-Identifier: GPL-2.0
/*
 * bench-open: what the agent costs to open a large volume, natively (no
 * QEMU, no kernel target: device-mapper calls are stubbed; the header
 * read, the one KMS unwrap, the DEK unwraps and the keyring are real).
 *
 *   bench-open [--aws KEY_ARN ENDPOINT CA_FILE] [SEGMENTS [ROUNDS]]
 *                                      default 65536 segments, 5 rounds
 *
 * The CMK is in the embedded local KMS, or with --aws in AWS KMS through
 * the agent's AWS provider (SigV4, HTTPS, credentials from the
 * environment): tools/bench.sh runs it against local-kms behind stunnel.
 * Prints CPU time (user+sys) and wall time per open, and KMS calls per
 * open.  A benchmark, not a test: it asserts nothing about speed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "kms-aws.h"
#include "kms-local.h"
#include "provider.h"
#include "registry.h"
#include "volume.h"

static struct lc_provider local;
static const char *kind = "local";

static struct lc_provider *provider_of(void *ctx, const char *k)
{
	(void)ctx;
	return strcmp(k, kind) ? NULL : &local;
}

static int dm_create(void *c, const char *n, const char *u, const char *l, struct lc_error *e)
{
	(void)c; (void)n; (void)u; (void)l; (void)e;
	return 0;
}

static int dm_message(void *c, const char *n, const char *m, struct lc_error *e)
{
	(void)c; (void)n; (void)m; (void)e;
	return 0;
}

static int dm_remove(void *c, const char *n, struct lc_error *e)
{
	(void)c; (void)n; (void)e;
	return 0;
}

static double cpu_seconds(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
	       (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static double wall_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	const char *aws_key = NULL;
	struct lc_kms_aws_config ac = { .credentials = "env" };
	struct lc_kms_aws *aws;
	unsigned long segs;
	int rounds;
	char dir[] = "/tmp/lc-bench-XXXXXX", dev[64], kmsdir[64];
	struct lc_volume_backend be = lc_volume_backend_kernel;
	struct lc_volume_env env = { .be = &be, .provider = provider_of };
	struct lc_format_args fa = { .workspace = "bench", .project = "bench",
				     .segment_size = 4096, .force = true };
	struct lc_open_args oa = { .workspace = "bench", .name = "bench" };
	struct lc_provider_counters c0, c1;
	struct lc_kms_key_info info;
	struct lc_kms_local *kms = NULL;
	struct lc_keyconfig kc = { 0 };
	struct lc_error err = { 0 };
	double cpu[32], wall[32];
	uint64_t hdr, area, off;
	FILE *f;

	if (argc > 4 && !strcmp(argv[1], "--aws")) {
		aws_key = argv[2];
		ac.endpoint = argv[3];
		ac.ca_file = argv[4];
		kind = LC_KMS_AWS_NAME;
		argc -= 4;
		argv += 4;
	}
	segs = argc > 1 ? strtoul(argv[1], NULL, 10) : 65536;
	rounds = argc > 2 ? atoi(argv[2]) : 5;
	if (!segs || segs > LAKECRYPT_MAX_SEGMENTS || rounds < 1 || rounds > 32) {
		fprintf(stderr, "usage: bench-open [--aws KEY_ARN ENDPOINT CA_FILE] "
			"[SEGMENTS (1..%u) [ROUNDS (1..32)]]\n",
			LAKECRYPT_MAX_SEGMENTS);
		return 2;
	}
	be.name = "bench (keyring real, device-mapper stubbed)";
	be.regular_files = true;
	be.dm_create = dm_create;
	be.dm_message = dm_message;
	be.dm_remove = dm_remove;

	if (!mkdtemp(dir))
		return perror("mkdtemp"), 1;
	snprintf(dev, sizeof(dev), "%s/volume.img", dir);
	snprintf(kmsdir, sizeof(kmsdir), "%s/kms", dir);
	if (lc_header_layout(segs, 64, &hdr, &area, &off, &err))
		goto fail;
	if (aws_key) {
		if (lc_kms_aws_new(&aws, &ac, &err))
			goto fail;
		lc_kms_aws_provider_init(&local, aws);
	} else {
		if (lc_kms_local_open(&kms, kmsdir, &err) ||
		    lc_kms_local_create(kms, "bench", &info, &err))
			goto fail;
		lc_kms_local_provider_init(&local, kms);
	}
	f = fopen(dev, "w");
	if (!f || ftruncate(fileno(f), (off_t)(off * 512 + segs * 4096ULL)))
		return perror(dev), 1;
	fclose(f);
	snprintf(kc.name, sizeof(kc.name), "bench");
	snprintf(kc.provider, sizeof(kc.provider), "%s", kind);
	snprintf(kc.key_ref, sizeof(kc.key_ref), "%s", aws_key ? aws_key : info.key_id);
	snprintf(kc.cmk_id, sizeof(kc.cmk_id), "%s", aws_key ? aws_key : info.key_id);
	fa.device = dev;
	oa.device = dev;
	oa.kc = &kc;	/* the binding the open checks the header against */
	if (lc_volume_format(&env, &kc, &fa, NULL, &err))
		goto fail;

	for (int i = 0; i < rounds; i++) {
		struct lc_volume *v = NULL;
		double t0, w0;

		lc_provider_counters(&local, &c0);
		t0 = cpu_seconds();
		w0 = wall_seconds();
		if (lc_volume_open(&env, &oa, &v, &err))
			goto fail;
		cpu[i] = cpu_seconds() - t0;
		wall[i] = wall_seconds() - w0;
		lc_provider_counters(&local, &c1);
		printf("open %d: %lu segments, cpu %.3f s, wall %.3f s, KMS calls %llu (unwrap %llu)\n",
		       i + 1, segs, cpu[i], wall[i],
		       (unsigned long long)(c1.wrap + c1.unwrap + c1.key_state -
					    c0.wrap - c0.unwrap - c0.key_state),
		       (unsigned long long)(c1.unwrap - c0.unwrap));
		if (lc_volume_close(&env, v, &err))
			goto fail;
		lc_volume_free(v);
	}
	qsort(cpu, rounds, sizeof(cpu[0]), cmp_double);
	qsort(wall, rounds, sizeof(wall[0]), cmp_double);
	printf("open of %lu segments (provider %s): median cpu %.3f s (goal <= 1 s: %s), median wall %.3f s\n",
	       segs, kind, cpu[rounds / 2], cpu[rounds / 2] <= 1.0 ? "ok" : "MISS", wall[rounds / 2]);
	lc_provider_close(&local);
	if (kms)
		lc_kms_local_close(kms);
	snprintf(kmsdir, sizeof(kmsdir), "rm -rf '%s'", dir);
	if (system(kmsdir) != 0)
		fprintf(stderr, "cleanup of %s failed\n", dir);
	return 0;
fail:
	fprintf(stderr, "bench-open: %s\n", err.msg);
	return 1;
}
