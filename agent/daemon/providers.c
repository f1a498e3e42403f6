// SPDX-License-Identifier: GPL-2.0
/*
 * The KMS provider table.  A provider kind is one entry here: a cloud or
 * HSM provider plugs in by adding its init function; everything else
 * (retries, counters, audit) is shared.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "kms-aws.h"
#include "kms-azure.h"
#include "kms-gcp.h"
#include "kms-kmip.h"
#include "kms-pkcs11.h"

/* init: build the provider from a->cfg with no network I/O (start-up and
 * --check-config alike); 0, or -errno and @err (MISCONFIG: the section). */
struct provider_kind {
	const char *kind;
	int (*init)(struct agent *a, struct provider_slot *s, struct lc_error *err);
};

/*
 * A file a provider reads only at its first call (a CA bundle, a key
 * file): that it is a regular file this process can read is checked at
 * start, so --check-config and start-up say so before any KMS call.
 * 0, or -errno (MISCONFIG) naming the section, the key and the file.
 */
static int readable_file(const char *section, const char *key, const char *path,
			 struct lc_error *err)
{
	struct stat st;
	int fd;

	if (!path || !path[0])
		return 0;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return lc_err(err, -errno, LC_ERRC_MISCONFIG, "[%s] %s %s cannot be read: %s",
			      section, key, path, strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG, "[%s] %s %s is not a regular file",
			      section, key, path);
	}
	close(fd);
	return 0;
}

/*
 * Tests only ([test] kms_stall_file): a KMS that never answers.  While the
 * file exists every call waits, as a provider stuck on a dead connection
 * would; removing it lets the calls through to the local KMS.  A call that
 * starts waiting appends "<op> <context>\n" to "<stall_file>.calls" (the
 * encryption context: no secret), so that a test waits for the call it
 * means to hold instead of sleeping.
 */
static const char *stall_file;

static void stall(const char *op, const char *context)
{
	char calls[LC_CONFIG_PATH_MAX + 8];

	if (!stall_file || access(stall_file, F_OK))
		return;
	if (snprintf(calls, sizeof(calls), "%s.calls", stall_file) < (int)sizeof(calls)) {
		FILE *f = fopen(calls, "ae");

		if (f) {
			fprintf(f, "%s %s\n", op, context ? context : "-");
			fclose(f);
		}
	}
	while (access(stall_file, F_OK) == 0)
		nanosleep(&(struct timespec){ .tv_nsec = 50000000 }, NULL);
}

/*
 * Tests only ([test] kms_fault_file): a KMS that is unreachable or flaky.
 * While the file exists, its first word decides: "transient" fails every
 * call as a dropped connection would (TRANSIENT, retried by provider.c),
 * "flaky" every other call; anything else lets calls through.
 */
static const char *fault_file;
static _Atomic unsigned long fault_calls;

static int fault(struct lc_error *err)
{
	char w[16] = "";
	int fd;
	ssize_t n;

	if (!fault_file)
		return 0;
	fd = open(fault_file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return 0;
	n = read(fd, w, sizeof(w) - 1);
	close(fd);
	w[n > 0 ? n : 0] = '\0';
	w[strcspn(w, " \t\r\n")] = '\0';
	if (!strcmp(w, "transient") || (!strcmp(w, "flaky") && (fault_calls++ & 1)))
		return lc_err(err, -ECONNREFUSED, LC_ERRC_TRANSIENT,
			      "[test] kms_fault_file says %s: connection refused", w);
	return 0;
}

static int stall_wrap(void *priv, const char *key_ref, const struct lc_secret *pt,
		      const char *context, uint64_t timeout_ms, struct lc_buf *blob,
		      struct lc_provider_reply *reply, struct lc_error *err)
{
	stall("wrap", context);
	if (fault(err))
		return err->code;
	return lc_kms_local_ops.wrap(priv, key_ref, pt, context, timeout_ms, blob, reply, err);
}

static int stall_unwrap(void *priv, const char *key_ref, const struct lc_buf *blob,
			const char *context, uint64_t timeout_ms, struct lc_secret *pt,
			struct lc_provider_reply *reply, struct lc_error *err)
{
	stall("unwrap", context);
	if (fault(err))
		return err->code;
	return lc_kms_local_ops.unwrap(priv, key_ref, blob, context, timeout_ms, pt, reply, err);
}

static int stall_key_state(void *priv, const char *key_ref, uint64_t timeout_ms,
			   struct lc_provider_reply *reply, struct lc_error *err)
{
	stall("key_state", NULL);
	if (fault(err))
		return err->code;
	return lc_kms_local_ops.key_state(priv, key_ref, timeout_ms, reply, err);
}

static const struct lc_provider_ops stall_ops = {
	.name		= LC_KMS_LOCAL_NAME,
	.wrap		= stall_wrap,
	.unwrap		= stall_unwrap,
	.key_state	= stall_key_state,
};

static int local_init(struct agent *a, struct provider_slot *s, struct lc_error *err)
{
	struct lc_provider *p = &s->p;

	(void)err;
	lc_kms_local_provider_init(p, a->kms);
	if (a->cfg.test_kms_stall_file[0]) {
		stall_file = a->cfg.test_kms_stall_file;
		lc_provider_init(p, &stall_ops, a->kms);
		lc_warn("[test] kms_stall_file = %s: local KMS calls wait while it exists (for tests only)",
			stall_file);
	}
	if (a->cfg.test_kms_fault_file[0]) {
		fault_file = a->cfg.test_kms_fault_file;
		lc_provider_init(p, &stall_ops, a->kms);
		lc_warn("[test] kms_fault_file = %s: local KMS calls fail while it says so (for tests only)",
			fault_file);
	}
	return 0;
}

/* AWS KMS from [aws-kms]; credentials are looked up at the first call. */
static int aws_init(struct agent *a, struct provider_slot *s, struct lc_error *err)
{
	const struct lc_config *c = &a->cfg;
	struct lc_kms_aws_config ac = {
		.endpoint = c->aws_endpoint[0] ? c->aws_endpoint : NULL,
		.region = c->aws_region[0] ? c->aws_region : NULL,
		.ca_file = c->aws_ca_bundle[0] ? c->aws_ca_bundle : NULL,
		.credentials = c->aws_credentials[0] ? c->aws_credentials : NULL,
		.profile = c->aws_profile[0] ? c->aws_profile : NULL,
		.imds_endpoint = c->aws_imds_endpoint[0] ? c->aws_imds_endpoint : NULL,
		.connect_timeout_ms = c->aws_connect_timeout_ms,
		.imds_timeout_ms = c->aws_imds_timeout_ms,
		.sts_endpoint = c->aws_sts_endpoint[0] ? c->aws_sts_endpoint : NULL,
	};
	struct lc_kms_aws *aws;
	int r = readable_file("aws-kms", "ca_bundle", ac.ca_file, err);

	if (r < 0 || (r = lc_kms_aws_new(&aws, &ac, err)) < 0)
		return r;
	lc_kms_aws_provider_init(&s->p, aws);
	return 0;
}

/* KMIP without [kmip] server: every call says what to configure. */
static int kmip_unset(struct lc_error *err)
{
	return lc_err(err, -ENOPROTOOPT, LC_ERRC_MISCONFIG,
		      "provider \"kmip\" is not configured: set server, ca_bundle, client_cert and client_key in [kmip] of agent.conf");
}

static int kmip_unset_wrap(void *priv, const char *key_ref, const struct lc_secret *pt,
			   const char *context, uint64_t timeout_ms, struct lc_buf *blob,
			   struct lc_provider_reply *reply, struct lc_error *err)
{
	(void)priv, (void)key_ref, (void)pt, (void)context, (void)timeout_ms, (void)blob, (void)reply;
	return kmip_unset(err);
}

static int kmip_unset_unwrap(void *priv, const char *key_ref, const struct lc_buf *blob,
			     const char *context, uint64_t timeout_ms, struct lc_secret *pt,
			     struct lc_provider_reply *reply, struct lc_error *err)
{
	(void)priv, (void)key_ref, (void)pt, (void)context, (void)timeout_ms, (void)blob, (void)reply;
	return kmip_unset(err);
}

static int kmip_unset_key_state(void *priv, const char *key_ref, uint64_t timeout_ms,
				struct lc_provider_reply *reply, struct lc_error *err)
{
	(void)priv, (void)key_ref, (void)timeout_ms, (void)reply;
	return kmip_unset(err);
}

static const struct lc_provider_ops kmip_unset_ops = {
	.name		= LC_KMS_KMIP_NAME,
	.wrap		= kmip_unset_wrap,
	.unwrap		= kmip_unset_unwrap,
	.key_state	= kmip_unset_key_state,
};

/* KMIP from [kmip]: the TLS context (client key checked) is loaded here,
 * so a bad certificate or key leaves kmip unavailable from the start. */
static int kmip_init(struct agent *a, struct provider_slot *s, struct lc_error *err)
{
	struct lc_provider *p = &s->p;
	const struct lc_config *c = &a->cfg;
	const char *mv = c->kmip_max_version;
	struct lc_kms_kmip_config kc = {
		.server = c->kmip_server,
		.ca_file = c->kmip_ca_bundle[0] ? c->kmip_ca_bundle : NULL,
		.cert_file = c->kmip_client_cert[0] ? c->kmip_client_cert : NULL,
		.key_file = c->kmip_client_key[0] ? c->kmip_client_key : NULL,
		.connect_timeout_ms = c->kmip_connect_timeout_ms,
	};
	struct lc_kms_kmip *k;
	int r;

	if (!c->kmip_server[0]) {
		lc_provider_init(p, &kmip_unset_ops, NULL);
		return 0;
	}
	if ((r = readable_file("kmip", "ca_bundle", kc.ca_file, err)) < 0 ||
	    (r = readable_file("kmip", "client_cert", kc.cert_file, err)) < 0 ||
	    (r = readable_file("kmip", "client_key", kc.key_file, err)) < 0)
		return r;
	if (mv[0]) {
		if (strcmp(mv, "1.2") && strcmp(mv, "1.3") && strcmp(mv, "1.4"))
			return lc_err(err, -EINVAL, LC_ERRC_MISCONFIG,
				      "[kmip] max_version = %s: expected 1.2, 1.3 or 1.4", mv);
		kc.max_minor = (unsigned int)(mv[2] - '0');
	}
	r = lc_kms_kmip_new(&k, &kc, err);
	if (r < 0)
		return r;
	lc_kms_kmip_provider_init(p, k);
	return 0;
}

/* PKCS#11 from [pkcs11]: the PIN file is read now, and the module loaded
 * (C_GetFunctionList found, nothing called: no C_Initialize) and held in
 * @s->dl while the provider lives, so the one the workers open at the
 * first call is this one; they initialise and log in.  Without a module
 * every call says so. */
static int pkcs11_init(struct agent *a, struct provider_slot *s, struct lc_error *err)
{
	const struct lc_config *c = &a->cfg;
	struct lc_kms_pkcs11_config pc = {
		.module = c->pkcs11_module,
		.token_label = c->pkcs11_token_label,
		.token_serial = c->pkcs11_token_serial,
		.pin_file = c->pkcs11_pin_file,
		.sessions = c->pkcs11_sessions,
	};
	struct lc_kms_pkcs11 *k;
	int r;

	if (pc.module[0] == '/') {
		s->dl = dlopen(pc.module, RTLD_NOW | RTLD_LOCAL);
		if (!s->dl)
			return lc_err(err, -ENOENT, LC_ERRC_MISCONFIG,
				      "[pkcs11] module %s cannot be loaded: %s", pc.module, dlerror());
		if (!dlsym(s->dl, "C_GetFunctionList")) {
			dlclose(s->dl);
			s->dl = NULL;
			return lc_err(err, -ENOEXEC, LC_ERRC_MISCONFIG,
				      "[pkcs11] module %s is not a PKCS#11 module (no C_GetFunctionList)",
				      pc.module);
		}
	}
	r = lc_kms_pkcs11_new(&k, &pc, err);
	if (r < 0)
		return r;
	lc_kms_pkcs11_provider_init(&s->p, k);
	return 0;
}

/* Google Cloud KMS from [gcp-kms]; tokens are fetched at the first call. */
static int gcp_init(struct agent *a, struct provider_slot *s, struct lc_error *err)
{
	const struct lc_config *c = &a->cfg;
	struct lc_kms_gcp_config gc = {
		.endpoint = c->gcp_endpoint[0] ? c->gcp_endpoint : NULL,
		.ca_file = c->gcp_ca_bundle[0] ? c->gcp_ca_bundle : NULL,
		.credentials = c->gcp_credentials[0] ? c->gcp_credentials : NULL,
		.key_file = c->gcp_key_file[0] ? c->gcp_key_file : NULL,
		.metadata_endpoint = c->gcp_metadata_endpoint[0] ? c->gcp_metadata_endpoint : NULL,
		.connect_timeout_ms = c->gcp_connect_timeout_ms,
		.metadata_timeout_ms = c->gcp_metadata_timeout_ms,
	};
	struct lc_kms_gcp *gcp;
	int r = readable_file("gcp-kms", "ca_bundle", gc.ca_file, err);

	if (r < 0 || (r = readable_file("gcp-kms", "key_file", gc.key_file, err)) < 0 ||
	    (r = lc_kms_gcp_new(&gcp, &gc, err)) < 0)
		return r;
	lc_kms_gcp_provider_init(&s->p, gcp);
	return 0;
}

/* Azure Key Vault / Managed HSM from [azure-kv]; tokens at the first call. */
static int azure_init(struct agent *a, struct provider_slot *s, struct lc_error *err)
{
	const struct lc_config *c = &a->cfg;
#define AZ(f) (c->azure_##f[0] ? c->azure_##f : NULL)
	struct lc_kms_azure_config ac = {
		.credentials = AZ(credentials),
		.tenant_id = AZ(tenant_id),
		.client_id = AZ(client_id),
		.client_secret_file = AZ(client_secret_file),
		.client_certificate_file = AZ(client_certificate_file),
		.authority = AZ(authority),
		.imds_endpoint = AZ(imds_endpoint),
		.resource = AZ(resource),
		.ca_file = AZ(ca_bundle),
		.connect_timeout_ms = c->azure_connect_timeout_ms,
		.imds_timeout_ms = c->azure_imds_timeout_ms,
	};
#undef AZ
	struct lc_kms_azure *az;
	int r = readable_file("azure-kv", "ca_bundle", ac.ca_file, err);

	if (r < 0 || (r = lc_kms_azure_new(&az, &ac, err)) < 0)
		return r;
	lc_kms_azure_provider_init(&s->p, az);
	return 0;
}

static const struct provider_kind kinds[] = {
	{ LC_KMS_LOCAL_NAME, local_init },
	{ LC_KMS_AWS_NAME, aws_init },
	{ LC_KMS_AZURE_NAME, azure_init },
	{ LC_KMS_KMIP_NAME, kmip_init },
	{ LC_KMS_PKCS11_NAME, pkcs11_init },
	{ LC_KMS_GCP_NAME, gcp_init },
};

/* A provider whose section was unusable at start: every call fails
 * MISCONFIG (never a kill) with the reason start-up found. */
static int unavailable(void *priv, struct lc_error *err)
{
	const struct provider_slot *s = priv;

	return lc_err(err, -ENOPROTOOPT, LC_ERRC_MISCONFIG,
		      "provider \"%s\" is unavailable (fix [%s] in agent.conf, check it with lakecrypt-agent --check-config, restart the agent): %s",
		      s->kind, s->kind, s->why.msg);
}

static int unavailable_wrap(void *priv, const char *key_ref, const struct lc_secret *pt,
			    const char *context, uint64_t timeout_ms, struct lc_buf *blob,
			    struct lc_provider_reply *reply, struct lc_error *err)
{
	(void)key_ref, (void)pt, (void)context, (void)timeout_ms, (void)blob, (void)reply;
	return unavailable(priv, err);
}

static int unavailable_unwrap(void *priv, const char *key_ref, const struct lc_buf *blob,
			      const char *context, uint64_t timeout_ms, struct lc_secret *pt,
			      struct lc_provider_reply *reply, struct lc_error *err)
{
	(void)key_ref, (void)pt, (void)context, (void)timeout_ms, (void)blob, (void)reply;
	return unavailable(priv, err);
}

static int unavailable_key_state(void *priv, const char *key_ref, uint64_t timeout_ms,
				 struct lc_provider_reply *reply, struct lc_error *err)
{
	(void)key_ref, (void)timeout_ms, (void)reply;
	return unavailable(priv, err);
}

static const struct lc_provider_ops unavailable_ops = {
	.name		= "unavailable",
	.wrap		= unavailable_wrap,
	.unwrap		= unavailable_unwrap,
	.key_state	= unavailable_key_state,
};

static void slot_release(struct provider_slot *s)
{
	if (s->ready)
		lc_provider_close(&s->p);
	s->ready = false;
	if (s->dl)
		dlclose(s->dl);
	s->dl = NULL;
}

static void retry_policy(const struct lc_config *c, struct lc_retry_policy *pol)
{
	*pol = (struct lc_retry_policy)LC_RETRY_POLICY_DEFAULT;
	pol->max_attempts = c->retry_attempts;
	pol->base_delay_ms = c->retry_base_delay_ms;
	pol->max_delay_ms = c->retry_max_delay_ms;
	pol->deadline_ms = c->deadline_ms;
	if (pol->attempt_timeout_ms > pol->deadline_ms)
		pol->attempt_timeout_ms = pol->deadline_ms;
}

/*
 * Provider kind @i into @s from @a->cfg: the one validation start-up and
 * --check-config share (the provider's own constructor, no network I/O:
 * required keys, files readable with the modes they need, the PKCS#11
 * module loadable).  0 with @s ready, or -errno and @err (@s released).
 */
static int slot_setup(struct agent *a, size_t i, struct provider_slot *s, struct lc_error *err)
{
	int r;

	memset(s, 0, sizeof(*s));
	s->kind = kinds[i].kind;
	r = kinds[i].init(a, s, err);
	if (r < 0) {
		slot_release(s);
		return r;
	}
	s->ready = true;
	return 0;
}

int agent_providers_init(struct agent *a, struct lc_error *err)
{
	struct lc_retry_policy pol;
	unsigned int bad = 0;
	int r;

	retry_policy(&a->cfg, &pol);
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		struct provider_slot *s = &a->providers[a->nproviders];
		struct lc_error e;

		r = slot_setup(a, i, s, &e);
		if (r < 0) {
			/* One bad section does not stop the others: this
			 * provider refuses its calls with the reason. */
			s->kind = kinds[i].kind;
			s->unavailable = true;
			s->why = e;
			lc_provider_init(&s->p, &unavailable_ops, s);
			s->ready = true;
			bad++;
			lc_error_log("provider %s is unavailable until [%s] is fixed and the agent restarted: %s",
				     s->kind, s->kind, e.msg);
		}
		r = lc_provider_set_policy(&s->p, &pol, err);
		if (r < 0) {
			slot_release(s);
			return r;
		}
		a->nproviders++;
	}
	if (bad)
		lc_warn("%u provider(s) unavailable (see above; lakecrypt-agent --check-config); volumes under the others work",
			bad);
	return 0;
}

void agent_providers_close(struct agent *a)
{
	for (size_t i = 0; i < a->nproviders; i++)
		slot_release(&a->providers[i]);
	a->nproviders = 0;
}

/*
 * --check-config: every provider section through slot_setup(), as
 * start-up does, and closed again.  "[kind] ok" or "[kind] unusable:
 * <reason>" per kind on @out ("local" has no section and is not listed).
 * The number of unusable ones, or -ENOMEM.
 */
int agent_providers_check(const struct lc_config *cfg, FILE *out)
{
	struct agent *a = calloc(1, sizeof(*a));
	struct lc_retry_policy pol;
	int bad = 0;

	if (!a)
		return -ENOMEM;
	a->cfg = *cfg;
	retry_policy(cfg, &pol);
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		struct provider_slot s;
		struct lc_error e;

		if (kinds[i].init == local_init)
			continue;
		if (slot_setup(a, i, &s, &e) < 0 || lc_provider_set_policy(&s.p, &pol, &e) < 0) {
			fprintf(out, "[%s] unusable: %s\n", kinds[i].kind, e.msg);
			bad++;
		} else if (s.p.ops == &kmip_unset_ops || (kinds[i].init == pkcs11_init && !s.dl)) {
			fprintf(out, "[%s] not configured: its calls are refused\n", kinds[i].kind);
		} else {
			fprintf(out, "[%s] ok\n", kinds[i].kind);
		}
		slot_release(&s);
	}
	free(a);
	return bad;
}

/* status "providers": [{"provider", "available", "error"}] per kind. */
json_object *agent_providers_json(struct agent *a)
{
	json_object *arr = json_object_new_array();

	for (size_t i = 0; i < a->nproviders; i++) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "provider", json_object_new_string(a->providers[i].kind));
		json_object_object_add(o, "available", json_object_new_boolean(!a->providers[i].unavailable));
		if (a->providers[i].unavailable)
			json_object_object_add(o, "error",
					       json_object_new_string(a->providers[i].why.msg));
		json_object_array_add(arr, o);
	}
	return arr;
}

struct lc_provider *agent_provider(void *agent, const char *kind)
{
	struct agent *a = agent;

	for (size_t i = 0; kind && i < a->nproviders; i++)
		if (a->providers[i].ready && !strcmp(a->providers[i].kind, kind))
			return &a->providers[i].p;
	return NULL;
}

json_object *agent_kms_calls_json(struct agent *a)
{
	json_object *o = json_object_new_object();

	for (size_t i = 0; i < a->nproviders; i++) {
		struct lc_provider_counters c;
		json_object *p = json_object_new_object();

		lc_provider_counters(&a->providers[i].p, &c);
		json_object_object_add(p, "wrap", json_object_new_uint64(c.wrap));
		json_object_object_add(p, "unwrap", json_object_new_uint64(c.unwrap));
		json_object_object_add(p, "key_state", json_object_new_uint64(c.key_state));
		json_object_object_add(p, "retries", json_object_new_uint64(c.retries));
		json_object_object_add(p, "failures", json_object_new_uint64(c.failures));
		json_object_object_add(p, "denied", json_object_new_uint64(c.denied));
		json_object_object_add(p, "transient", json_object_new_uint64(c.transient));
		json_object_object_add(p, "misconfigured", json_object_new_uint64(c.misconfig));
		json_object_object_add(p, "invalid", json_object_new_uint64(c.invalid));
		json_object_object_add(p, "latency_ms_avg",
				       json_object_new_uint64(c.calls ? c.latency_us_sum / c.calls / 1000 : 0));
		json_object_object_add(p, "latency_ms_max", json_object_new_uint64(c.latency_us_max / 1000));
		json_object_object_add(o, a->providers[i].kind, p);
	}
	return o;
}
