// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target: the values an etcd member (or anyone who can write
 * under the registry's prefix) hands the agent's registry
 * (registry-etcd.c): byte 0 picks the reader ('k' key configuration, 'b'
 * binding, 'h' shared probe's holder, 'p' shared probe's result
 * (probe-share.h), else revocation record), the rest is the value, parsed as the
 * registry parses it (lc_json_parse, then the entry's reader).  Any
 * outcome is fine; a crash, a leak or UB is not, and neither is an
 * accepted entry that breaks what the agent relies on: NUL-terminated
 * printable names that pass lc_name_check, a record that names a CMK, a
 * holder that names its agent, a result with a known outcome and verdict
 * that names its CMK;
 * and an accepted entry written back and read again is the same entry.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "registry-etcd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_object *o, *o2;
	const char *why = NULL;

	if (size < 1 || size > 65536)
		return 0;
	o = lc_json_parse((const char *)data + 1, size - 1);
	if (!o)
		return 0;
	if (data[0] == 'k') {
		struct lc_keyconfig kc, kc2;

		if (!lc_keyconfig_from_json(o, &kc, &why)) {
			if (lc_name_check("k", kc.name, NULL) || !kc.provider[0] || !kc.key_ref[0])
				abort();
			o2 = lc_keyconfig_to_json(&kc);
			if (lc_keyconfig_from_json(o2, &kc2, &why) || memcmp(&kc, &kc2, sizeof(kc)))
				abort();
			json_object_put(o2);
		} else if (!why) {
			abort();
		}
	} else if (data[0] == 'b') {
		struct lc_binding b, b2;

		if (!lc_binding_from_json(o, &b, &why)) {
			if (lc_name_check("w", b.workspace, NULL) ||
			    b.access.ngroups > LC_WS_MAX_GROUPS || b.access.ndevices > LC_WS_MAX_DEVICES)
				abort();
			o2 = lc_binding_to_json(&b);
			if (lc_binding_from_json(o2, &b2, &why) ||
			    strcmp(b.workspace, b2.workspace) || strcmp(b.keyconfig, b2.keyconfig) ||
			    b.access.ngroups != b2.access.ngroups || b.access.ndevices != b2.access.ndevices)
				abort();
			json_object_put(o2);
		} else if (!why) {
			abort();
		}
	} else if (data[0] == 'h') {
		struct lc_probe_holder h, h2;

		if (!lc_probe_holder_from_json(o, &h, &why)) {
			if (!h.agent[0] || strlen(h.agent) >= sizeof(h.agent) || h.since < 0)
				abort();
			o2 = lc_probe_holder_to_json(&h);
			if (lc_probe_holder_from_json(o2, &h2, &why) || memcmp(&h, &h2, sizeof(h)))
				abort();
			json_object_put(o2);
		} else if (!why) {
			abort();
		}
	} else if (data[0] == 'p') {
		struct lc_probe_result r, r2;
		char hex[LC_PROBE_UNIT_HEX];

		if (!lc_probe_result_from_json(o, &r, &why)) {
			if (!r.agent[0] || !r.provider[0] || !r.key_ref[0] || r.time < 0 ||
			    r.outcome > LC_PROBE_UNKNOWN || r.verdict > LC_VERDICT_FAIL_CLOSED ||
			    r.seq > INT64_MAX)
				abort();
			lc_probe_unit_hash(r.provider, r.key_ref, r.keyconfig, hex);
			if (!lc_probe_unit_valid(hex, strlen(hex)))
				abort();
			o2 = lc_probe_result_to_json(&r);
			if (lc_probe_result_from_json(o2, &r2, &why) || memcmp(&r, &r2, sizeof(r)))
				abort();
			json_object_put(o2);
		} else if (!why) {
			abort();
		}
	} else {
		struct lc_revocation r, r2;

		if (!lc_revocation_from_json(o, &r, &why)) {
			if (!r.cmk_id[0] && !r.key_ref[0])
				abort();
			o2 = lc_revocation_to_json(&r);
			if (lc_revocation_from_json(o2, &r2, &why) || memcmp(&r, &r2, sizeof(r)))
				abort();
			json_object_put(o2);
		} else if (!why) {
			abort();
		}
	}
	json_object_put(o);
	return 0;
}
