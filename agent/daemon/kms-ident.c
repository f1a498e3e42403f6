// SPDX-License-Identifier: GPL-2.0
/*
 * The KMS principal bound to a key configuration (issue 10: a wrong
 * identity must not read as a revocation).
 *
 * Every call of an agent that runs as another principal than the one
 * the security admin set up (another instance profile or IAM role, ...)
 * is AccessDenied although nobody revoked anything: taken as a denial,
 * a misconfiguration would kill every volume under the CMK, fleet-wide.
 * So keyconfig create asks the provider who the agent is
 * (ops->identity: AWS sts:GetCallerIdentity) and stores the principal in
 * the key configuration (registry.h, kms_identity), and a probe whose
 * answer is DENIED asks again (one bounded call, cached
 * AGENT_IDENT_TTL_MS): another principal makes that answer MISCONFIG
 * (probe.c: not counted, audited, shown in status and check as "wrong
 * KMS identity: bound X, now Y"); the same principal, a failed check, or
 * no binding (configurations made before, providers that name none)
 * leave the denial as it was.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "agent.h"

static uint64_t now_ns(const struct agent *a)
{
	struct timespec ts;

	if (a->clock)
		return a->clock->now_ns(a->clock->arg);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

const char *agent_ident_check_name(enum agent_ident_check c)
{
	switch (c) {
	case AGENT_IDENT_NOT_CHECKED:
		return "not checked";
	case AGENT_IDENT_UNBOUND:
		return "unbound";
	case AGENT_IDENT_SAME:
		return "same";
	case AGENT_IDENT_OTHER:
		return "other";
	case AGENT_IDENT_UNKNOWN:
		break;
	}
	return "unknown";
}

/* The cache slot of @provider (a->lock held); NULL: none. */
static struct agent_ident *slot_of(struct agent *a, const char *provider, bool create)
{
	struct agent_ident *old = &a->ident[0];

	for (size_t i = 0; i < AGENT_IDENT_CACHE; i++) {
		if (!strcmp(a->ident[i].provider, provider))
			return &a->ident[i];
		if (a->ident[i].at_ns < old->at_ns)
			old = &a->ident[i];
	}
	return create ? old : NULL;
}

int agent_kms_whoami(struct agent *a, struct lc_provider *p, const char *provider,
		     const char *key_ref, bool cached, char out[LC_PROVIDER_IDENTITY_MAX],
		     struct lc_error *err)
{
	struct lc_provider_reply rep = { 0 };
	struct agent_ident *s;
	uint64_t t = now_ns(a);
	int r;

	out[0] = 0;
	if (!p->ops->identity)
		return lc_err(err, -EOPNOTSUPP, LC_ERRC_MISCONFIG,
			      "provider %s names no KMS principal", provider);
	if (cached) {
		agent_relock(a);
		s = slot_of(a, provider, false);
		if (s && s->principal[0] && t >= s->at_ns &&
		    t - s->at_ns < (uint64_t)AGENT_IDENT_TTL_MS * 1000000ULL)
			snprintf(out, LC_PROVIDER_IDENTITY_MAX, "%s", s->principal);
		agent_unlock(a);
		if (out[0])
			return 0;
	}
	r = p->ops->identity(p->priv, key_ref, p->policy.attempt_timeout_ms, out,
			     LC_PROVIDER_IDENTITY_MAX, &rep, err);
	if (!r && (!out[0] || memchr(out, 0, LC_PROVIDER_IDENTITY_MAX) == NULL))
		r = lc_err(err, -EPROTO, LC_ERRC_INTERNAL, "provider %s named an empty principal",
			   provider);
	for (const char *c = out; !r && *c; c++)
		if (*c < 0x20 || *c > 0x7e)
			r = lc_err(err, -EPROTO, LC_ERRC_INTERNAL,
				   "provider %s named a principal that is not printable ASCII", provider);
	if (r) {
		out[0] = 0;
		return r;
	}
	agent_relock(a);
	s = slot_of(a, provider, true);
	snprintf(s->provider, sizeof(s->provider), "%s", provider);
	snprintf(s->principal, sizeof(s->principal), "%s", out);
	s->at_ns = t;
	agent_unlock(a);
	return 0;
}

static void audit_identity(struct agent *a, const char *kcname, const char *provider,
			   const char *key_ref, enum lc_err_class cls, const char *detail)
{
	struct lc_audit_event ev;

	lc_audit_event_init(&ev, "cmk.identity", cls == LC_ERRC_NONE ? LC_AUDIT_SUCCESS
								      : LC_AUDIT_FAILURE);
	ev.keyconfig = kcname;
	ev.provider = provider;
	ev.cmk_id = key_ref;
	ev.error_class = cls;
	ev.detail = detail;
	(void)lc_audit_write(&a->audit, &ev, NULL);
}

enum agent_ident_check agent_kms_identity_check(struct agent *a, struct lc_provider *p,
						const char *kcname, const char *provider,
						const char *key_ref, char *detail, size_t dsize)
{
	char bound[LC_PROVIDER_IDENTITY_MAX] = "", now[LC_PROVIDER_IDENTITY_MAX];
	char det[LC_PROVIDER_IDENTITY_MAX * 2 + 64];
	const struct lc_keyconfig *kc;
	struct lc_error e = { 0 };
	bool same;

	if (!kcname || !kcname[0] || !p->ops->identity)
		return AGENT_IDENT_UNBOUND;
	agent_relock(a);
	kc = lc_registry_keyconfig(&a->reg, kcname);
	if (kc && !strcmp(kc->provider, provider))
		snprintf(bound, sizeof(bound), "%s", kc->kms_identity);
	agent_unlock(a);
	if (!bound[0])
		return AGENT_IDENT_UNBOUND;
	if (agent_kms_whoami(a, p, provider, key_ref, true, now, &e) < 0) {
		lc_warn("CMK %s: denied, and who the agent is at %s could not be asked (%s): the denial stands",
			key_ref, provider, e.msg);
		snprintf(det, sizeof(det), "identity check failed (%s); bound %.300s",
			 lc_err_class_name(e.cls), bound);
		audit_identity(a, kcname, provider, key_ref, e.cls == LC_ERRC_NONE ? LC_ERRC_INTERNAL : e.cls,
			       det);
		return AGENT_IDENT_UNKNOWN;
	}
	same = p->ops->identity_match ? p->ops->identity_match(bound, now) : !strcmp(bound, now);
	if (same)
		return AGENT_IDENT_SAME;
	snprintf(det, sizeof(det), "wrong KMS identity: bound %.240s, now %.240s", bound, now);
	lc_warn("CMK %s (key configuration %s): the KMS denies, but the agent is not the principal the key configuration was made with (%s): a misconfiguration (instance profile, role, credentials), not a revocation; no volume is revoked",
		key_ref, kcname, det);
	audit_identity(a, kcname, provider, key_ref, LC_ERRC_MISCONFIG, det);
	snprintf(detail, dsize, "%s", det);
	return AGENT_IDENT_OTHER;
}
