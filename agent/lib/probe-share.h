/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shared probes in a fleet ([registry] backend = etcd, Documentation/
 * etcd.md "Shared probes"): the values under
 *   <prefix>probe/<unit>          the holder: the agent that probes the
 *                                 unit for the fleet, attached to its lease
 *   <prefix>probe-result/<unit>   the holder's last result, same lease
 * where <unit> is lc_probe_unit_hash() of what one watcher probe covers:
 * a CMK (provider, key reference) and the key configuration whose canary
 * it unwraps.  Values are JSON objects, "v": 1; none is a secret.
 *
 * Everything read from etcd is hostile: any writer under the prefix may
 * have put it.  A result is never acted on as a verdict: a published
 * "ok" only lets other agents skip their own probe for a while; a
 * denial reaches other agents only as a revocation record.
 */
#ifndef LC_PROBE_SHARE_H
#define LC_PROBE_SHARE_H

#include <stdint.h>

#include <json-c/json.h>

#include "header.h"
#include "revconf.h"

#define LC_PROBE_AGENT_SIZE	128	/* "<host name>/<pid>", printable */
#define LC_PROBE_UNIT_HEX	65	/* 64 hex digits and a NUL */

/* <prefix>probe/<unit>: who holds it (its lease is the key's). */
struct lc_probe_holder {
	char agent[LC_PROBE_AGENT_SIZE];
	int64_t since;				/* epoch s, the holder's clock (shown only) */
};

/* <prefix>probe-result/<unit>: one probe's outcome. */
struct lc_probe_result {
	char agent[LC_PROBE_AGENT_SIZE];	/* who probed */
	char provider[LC_HDR_PROVIDER_SIZE];
	char key_ref[LC_HDR_PROVIDER_REF_SIZE];
	char keyconfig[LC_HDR_NAME_SIZE];	/* "": the key state only */
	enum lc_probe_outcome outcome;		/* "ok", "denied", "unknown" */
	enum lc_revconf_verdict verdict;	/* the holder's verdict after it */
	int64_t time;				/* epoch s, the holder's clock (shown only) */
	uint64_t seq;				/* the holder's count of results, from 1 */
};

/* The unit's key suffix: lower-case hex SHA-256 of provider, NUL,
 * key_ref, NUL, keyconfig (NULL: ""). */
void lc_probe_unit_hash(const char *provider, const char *key_ref, const char *keyconfig,
			char hex[LC_PROBE_UNIT_HEX]);
/* Is @s (@n bytes) a unit: exactly 64 lower-case hex digits? */
bool lc_probe_unit_valid(const char *s, size_t n);

/* From JSON (an object, "v" already checked by the caller): every field
 * checked (printable strings within their sizes, agent not empty, known
 * outcome and verdict names, times and seq non-negative integers, a
 * result's provider and key_ref set).  0, or -EINVAL and *@why. */
int lc_probe_holder_from_json(json_object *o, struct lc_probe_holder *h, const char **why);
int lc_probe_result_from_json(json_object *o, struct lc_probe_result *r, const char **why);
/* To JSON, with "v": 1 (NULL: out of memory). */
json_object *lc_probe_holder_to_json(const struct lc_probe_holder *h);
json_object *lc_probe_result_to_json(const struct lc_probe_result *r);

#endif /* LC_PROBE_SHARE_H */
