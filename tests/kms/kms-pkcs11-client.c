// SPDX-License-Identifier: GPL-2.0
/*
 * Test driver of the PKCS#11 provider, through the provider layer the
 * agent uses (retries, deadline, counters):
 *
 *   kms-pkcs11-client [options] wrap   KEY CONTEXT     -> blob=<b64> pt=<hex> key_id=<uri>
 *   kms-pkcs11-client [options] unwrap KEY CONTEXT B64 -> pt=<hex>
 *   kms-pkcs11-client [options] state  KEY             -> state=<state> key_id=<uri>
 *   kms-pkcs11-client [options] hang   KEY CONTEXT B64 FILE
 *        unwrap in a thread (the shim makes C_Decrypt wait while FILE
 *        exists); 300 ms later key_state on the same provider; then the
 *        unwrap's outcome; then FILE is removed and the unwrap repeated
 *        -> state_result=<class> hung_result=<class> after_result=<class>
 *   kms-pkcs11-client [options] then KEY RULE
 *        key_state, then RULE appended to $P11SHIM_CTL, then key_state
 *        again on the same provider -> first_result=<class> and the
 *        second call's result line
 *   kms-pkcs11-client [options] setattr KEY encrypt|decrypt 0|1
 *        (administration, straight through the module: C_SetAttributeValue)
 * options: --module PATH --token-label L --token-serial S --pin-file F
 *          --sessions N --attempts N --deadline MS --attempt-timeout MS
 *          --repeat N (the command N times in one provider)
 * Every run ends with one line
 *   result ok|error class=<CLASS> code=<n> attempts=<n> msg=<msg>
 * then "counters wrap=.. unwrap=.. key_state=.. retries=.. failures=.."
 * and exits 0 (ok) or 2 (error).  The plaintext is printed: test keys only.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>
#include <p11-kit/pkcs11.h>

#include "http.h"
#include "kms-pkcs11.h"
#include "provider.h"

static void hex(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		printf("%02x", p[i]);
}

struct hung {
	struct lc_provider *p;
	const char *key, *ctx;
	struct lc_buf *blob;
	struct lc_error err;
	int r;
};

static void *hung_call(void *arg)
{
	struct hung *h = arg;
	struct lc_secret pt = { 0 };

	h->r = lc_provider_unwrap(h->p, h->key, h->blob, h->ctx, &pt, NULL, &h->err);
	lc_secret_free(&pt);
	return NULL;
}

static const char *cls(int r, const struct lc_error *e)
{
	return r ? lc_err_class_name(e->cls) : "ok";
}

/* C_SetAttributeValue of a boolean on the key KEY (label), as an admin would. */
static int setattr(const struct lc_kms_pkcs11_config *c, const char *key, const char *attr,
		   int val, struct lc_error *err)
{
	struct lc_secret pin = { 0 };
	CK_FUNCTION_LIST_PTR f;
	CK_C_GetFunctionList get;
	CK_SLOT_ID slots[64];
	CK_ULONG n = 64, found = 0;
	CK_SESSION_HANDLE s;
	CK_OBJECT_CLASS oc = CKO_SECRET_KEY;
	CK_ATTRIBUTE t[2] = { { CKA_CLASS, &oc, sizeof(oc) }, { CKA_LABEL, (void *)key, strlen(key) } };
	CK_OBJECT_HANDLE h;
	CK_BBOOL b = val ? CK_TRUE : CK_FALSE;
	CK_ATTRIBUTE set = { !strcmp(attr, "encrypt") ? CKA_ENCRYPT : CKA_DECRYPT, &b, sizeof(b) };
	CK_RV rv;
	void *dl = dlopen(c->module, RTLD_NOW);
	int r;

	if (!dl)
		return lc_err(err, -ENOENT, LC_ERRC_MISCONFIG, "dlopen: %s", dlerror());
	get = (CK_C_GetFunctionList)dlsym(dl, "C_GetFunctionList");
	if (!get || get(&f) != CKR_OK)
		return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG, "no C_GetFunctionList");
	r = lc_p11_read_pin(c->pin_file, geteuid(), &pin, err);
	if (r < 0)
		return r;
	rv = f->C_Initialize(NULL);
	if (rv == CKR_OK)
		rv = f->C_GetSlotList(CK_TRUE, slots, &n);
	for (CK_ULONG i = 0; rv == CKR_OK && i < n; i++) {
		CK_TOKEN_INFO ti;
		char l[33];
		size_t m = 32;

		if (f->C_GetTokenInfo(slots[i], &ti) != CKR_OK)
			continue;
		memcpy(l, ti.label, 32);
		while (m && l[m - 1] == ' ')
			m--;
		l[m] = 0;
		if (strcmp(l, c->token_label))
			continue;
		rv = f->C_OpenSession(slots[i], CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s);
		if (rv == CKR_OK)
			rv = f->C_Login(s, CKU_USER, pin.p, pin.len);
		if (rv == CKR_OK)
			rv = f->C_FindObjectsInit(s, t, 2);
		if (rv == CKR_OK) {
			rv = f->C_FindObjects(s, &h, 1, &found);
			f->C_FindObjectsFinal(s);
		}
		if (rv == CKR_OK && found)
			rv = f->C_SetAttributeValue(s, h, &set, 1);
		break;
	}
	f->C_Finalize(NULL);
	lc_secret_free(&pin);
	if (rv != CKR_OK || !found)
		return lc_err(err, -EIO, LC_ERRC_INTERNAL, "setattr failed: rv 0x%lx found %lu",
			      (unsigned long)rv, (unsigned long)found);
	return 0;
}

int main(int argc, char **argv)
{
	struct lc_kms_pkcs11_config cfg = { 0 };
	struct lc_retry_policy pol = LC_RETRY_POLICY_DEFAULT;
	struct lc_provider p;
	struct lc_provider_counters pc;
	struct lc_provider_reply rep = { 0 };
	struct lc_error err = { 0 };
	struct lc_kms_pkcs11 *k = NULL;
	unsigned int repeat = 1;
	int i, r;

	pol.base_delay_ms = 50;
	pol.max_delay_ms = 400;
	pol.attempt_timeout_ms = 5000;
	pol.deadline_ms = 15000;
	for (i = 1; i + 1 < argc && !strncmp(argv[i], "--", 2); i += 2) {
		const char *o = argv[i], *v = argv[i + 1];

		if (!strcmp(o, "--module"))
			cfg.module = v;
		else if (!strcmp(o, "--token-label"))
			cfg.token_label = v;
		else if (!strcmp(o, "--token-serial"))
			cfg.token_serial = v;
		else if (!strcmp(o, "--pin-file"))
			cfg.pin_file = v;
		else if (!strcmp(o, "--sessions"))
			cfg.sessions = (unsigned int)atoi(v);
		else if (!strcmp(o, "--attempts"))
			pol.max_attempts = (unsigned int)atoi(v);
		else if (!strcmp(o, "--deadline"))
			pol.deadline_ms = strtoull(v, NULL, 10);
		else if (!strcmp(o, "--attempt-timeout"))
			pol.attempt_timeout_ms = strtoull(v, NULL, 10);
		else if (!strcmp(o, "--repeat"))
			repeat = (unsigned int)atoi(v);
		else {
			fprintf(stderr, "unknown option %s\n", o);
			return 64;
		}
	}
	if (i >= argc) {
		fprintf(stderr, "usage: kms-pkcs11-client [options] wrap|unwrap|state|hang|setattr KEY ...\n");
		return 64;
	}
	if (!strcmp(argv[i], "setattr") && i + 3 < argc) {
		r = setattr(&cfg, argv[i + 1], argv[i + 2], atoi(argv[i + 3]), &err);
		printf("result %s\n", r ? err.msg : "ok");
		return r ? 2 : 0;
	}
	r = lc_kms_pkcs11_new(&k, &cfg, &err);
	if (!r) {
		lc_kms_pkcs11_provider_init(&p, k);
		r = lc_provider_set_policy(&p, &pol, &err);
	}
	for (unsigned int n = 0; !r && n < repeat; n++) {
		if (!strcmp(argv[i], "wrap") && i + 2 < argc) {
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
				printf("\nkey_id=%s\n", rep.key_id);
				free(b64);
				free(blob.p);
			}
			lc_secret_free(&pt);
		} else if (!strcmp(argv[i], "unwrap") && i + 3 < argc) {
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
				printf("\nkey_id=%s\n", rep.key_id);
			}
			free(blob.p);
			lc_secret_free(&pt);
		} else if (!strcmp(argv[i], "state") && i + 1 < argc) {
			r = lc_provider_key_state(&p, argv[i + 1], &rep, &err);
			if (!r)
				printf("state=%s\nkey_id=%s\nbound_ref=%s\n", lc_key_state_name(rep.state),
				       rep.key_id, rep.bound_ref);
		} else if (!strcmp(argv[i], "then") && i + 2 < argc) {
			const char *ctl = getenv("P11SHIM_CTL");
			FILE *f = ctl ? fopen(ctl, "a") : NULL;
			struct lc_error e1 = { 0 };
			int r1 = lc_provider_key_state(&p, argv[i + 1], &rep, &e1);

			printf("first_result=%s\n", cls(r1, &e1));
			if (!f) {
				fprintf(stderr, "P11SHIM_CTL not writable\n");
				return 64;
			}
			fprintf(f, "%s\n", argv[i + 2]);
			fclose(f);
			r = lc_provider_key_state(&p, argv[i + 1], &rep, &err);
			if (!r)
				printf("state=%s\n", lc_key_state_name(rep.state));
		} else if (!strcmp(argv[i], "hang") && i + 4 < argc) {
			struct lc_buf blob = { malloc(strlen(argv[i + 3]) + 3), 0 };
			struct hung h = { &p, argv[i + 1], argv[i + 2], &blob, { 0 }, 0 };
			struct lc_secret pt = { 0 };
			struct lc_error e2 = { 0 };
			pthread_t t;
			int r2;

			if (lc_base64_decode(argv[i + 3], strlen(argv[i + 3]), blob.p, &blob.len)) {
				fprintf(stderr, "bad base64\n");
				return 64;
			}
			pthread_create(&t, NULL, hung_call, &h);
			nanosleep(&(struct timespec){ .tv_nsec = 300000000 }, NULL);
			r2 = lc_provider_key_state(&p, argv[i + 1], &rep, &e2);
			printf("state_result=%s\nstate_msg=%s\n", cls(r2, &e2), r2 ? e2.msg : "");
			pthread_join(t, NULL);
			printf("hung_result=%s\nhung_msg=%s\n", cls(h.r, &h.err), h.r ? h.err.msg : "");
			unlink(argv[i + 4]);
			r = lc_provider_unwrap(&p, argv[i + 1], &blob, argv[i + 2], &pt, &rep, &err);
			printf("after_result=%s\n", cls(r, &err));
			lc_secret_free(&pt);
			free(blob.p);
		} else {
			fprintf(stderr, "bad command\n");
			return 64;
		}
	}
	if (k) {
		lc_provider_counters(&p, &pc);
		lc_provider_close(&p);
	} else {
		memset(&pc, 0, sizeof(pc));
	}
	if (!r)
		printf("result ok attempts=%u\n", rep.attempts);
	else
		printf("result error class=%s code=%d attempts=%u msg=%s\n", lc_err_class_name(err.cls),
		       err.code, rep.attempts, err.msg);
	printf("counters wrap=%llu unwrap=%llu key_state=%llu retries=%llu failures=%llu\n",
	       (unsigned long long)pc.wrap, (unsigned long long)pc.unwrap,
	       (unsigned long long)pc.key_state, (unsigned long long)pc.retries,
	       (unsigned long long)pc.failures);
	return r ? 2 : 0;
}
