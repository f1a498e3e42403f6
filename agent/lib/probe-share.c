// SPDX-License-Identifier: GPL-2.0
/*
 * Shared probes' values in etcd (probe-share.h): the holder and the
 * result, read as hostile input.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "probe-share.h"
#include "registry.h"

#define VALUE_VERSION	1

void lc_probe_unit_hash(const char *provider, const char *key_ref, const char *keyconfig,
			char hex[LC_PROBE_UNIT_HEX])
{
	const char *part[3] = { provider ? provider : "", key_ref ? key_ref : "",
				keyconfig ? keyconfig : "" };
	unsigned char md[32];
	unsigned int mdlen = 0;
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	bool ok = c && EVP_DigestInit_ex(c, EVP_sha256(), NULL);

	for (int i = 0; i < 3 && ok; i++)
		ok = EVP_DigestUpdate(c, part[i], strlen(part[i]) + (i < 2));	/* NUL between */
	ok = ok && EVP_DigestFinal_ex(c, md, &mdlen) && mdlen == 32;
	EVP_MD_CTX_free(c);
	if (!ok)
		memset(md, 0, sizeof(md));	/* out of memory: a unit no real one collides with */
	for (unsigned int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	hex[64] = '\0';
}

bool lc_probe_unit_valid(const char *s, size_t n)
{
	if (n != 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* A non-negative integer member (absent: 0). */
static bool get_u63(json_object *o, const char *name, int64_t *out)
{
	json_object *v;

	*out = 0;
	if (!json_object_object_get_ex(o, name, &v))
		return true;
	if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0)
		return false;
	*out = json_object_get_int64(v);
	return true;
}

int lc_probe_holder_from_json(json_object *o, struct lc_probe_holder *h, const char **why)
{
	memset(h, 0, sizeof(*h));
	if (!json_object_is_type(o, json_type_object)) {
		*why = "not a JSON object";
		return -EINVAL;
	}
	if (!lc_registry_json_string(o, "agent", h->agent, sizeof(h->agent), true) || !h->agent[0]) {
		*why = "agent is not a printable string of 1 to 127 characters";
		return -EINVAL;
	}
	if (!get_u63(o, "since", &h->since)) {
		*why = "since is not a number of seconds";
		return -EINVAL;
	}
	return 0;
}

static int outcome_of(const char *s, enum lc_probe_outcome *o)
{
	for (int i = LC_PROBE_OK; i <= LC_PROBE_UNKNOWN; i++)
		if (!strcmp(s, lc_probe_outcome_name((enum lc_probe_outcome)i))) {
			*o = (enum lc_probe_outcome)i;
			return 0;
		}
	return -EINVAL;
}

static int verdict_of(const char *s, enum lc_revconf_verdict *v)
{
	for (int i = LC_VERDICT_KEEP; i <= LC_VERDICT_FAIL_CLOSED; i++)
		if (!strcmp(s, lc_revconf_verdict_name((enum lc_revconf_verdict)i))) {
			*v = (enum lc_revconf_verdict)i;
			return 0;
		}
	return -EINVAL;
}

int lc_probe_result_from_json(json_object *o, struct lc_probe_result *r, const char **why)
{
	char outcome[16], verdict[16];
	int64_t seq;

	memset(r, 0, sizeof(*r));
	if (!json_object_is_type(o, json_type_object)) {
		*why = "not a JSON object";
		return -EINVAL;
	}
	if (!lc_registry_json_string(o, "agent", r->agent, sizeof(r->agent), true) || !r->agent[0] ||
	    !lc_registry_json_string(o, "provider", r->provider, sizeof(r->provider), true) ||
	    !lc_registry_json_string(o, "key_ref", r->key_ref, sizeof(r->key_ref), true) ||
	    !lc_registry_json_string(o, "keyconfig", r->keyconfig, sizeof(r->keyconfig), false) ||
	    !r->provider[0] || !r->key_ref[0]) {
		*why = "agent, provider, key_ref or keyconfig is not a printable string of its size";
		return -EINVAL;
	}
	if (!lc_registry_json_string(o, "outcome", outcome, sizeof(outcome), true) ||
	    outcome_of(outcome, &r->outcome) < 0) {
		*why = "outcome is not ok, denied or unknown";
		return -EINVAL;
	}
	if (!lc_registry_json_string(o, "verdict", verdict, sizeof(verdict), true) ||
	    verdict_of(verdict, &r->verdict) < 0) {
		*why = "verdict is not a known verdict";
		return -EINVAL;
	}
	if (!get_u63(o, "time", &r->time) || !get_u63(o, "seq", &seq)) {
		*why = "time or seq is not a non-negative integer";
		return -EINVAL;
	}
	r->seq = (uint64_t)seq;
	return 0;
}

json_object *lc_probe_holder_to_json(const struct lc_probe_holder *h)
{
	json_object *o = json_object_new_object();

	if (!o)
		return NULL;
	json_object_object_add(o, "v", json_object_new_int(VALUE_VERSION));
	json_object_object_add(o, "agent", json_object_new_string(h->agent));
	json_object_object_add(o, "since", json_object_new_int64(h->since));
	return o;
}

json_object *lc_probe_result_to_json(const struct lc_probe_result *r)
{
	json_object *o = json_object_new_object();

	if (!o)
		return NULL;
	json_object_object_add(o, "v", json_object_new_int(VALUE_VERSION));
	json_object_object_add(o, "agent", json_object_new_string(r->agent));
	json_object_object_add(o, "provider", json_object_new_string(r->provider));
	json_object_object_add(o, "key_ref", json_object_new_string(r->key_ref));
	json_object_object_add(o, "keyconfig", json_object_new_string(r->keyconfig));
	json_object_object_add(o, "outcome", json_object_new_string(lc_probe_outcome_name(r->outcome)));
	json_object_object_add(o, "verdict", json_object_new_string(lc_revconf_verdict_name(r->verdict)));
	json_object_object_add(o, "time", json_object_new_int64(r->time));
	json_object_object_add(o, "seq", json_object_new_int64((int64_t)(r->seq & INT64_MAX)));
	return o;
}
