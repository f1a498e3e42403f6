// SPDX-License-Identifier: GPL-2.0
/*
 * volume.rekey-segment (admins): a new DEK for segments of a closed volume,
 * their data re-encrypted, journaled and resumable (agent/lib/segrekey.h;
 * Documentation/agent-protocol.md, key-hierarchy.md "DEK re-key of a
 * segment").  Runs without a->lock (it may take minutes: it rewrites the
 * segments' data); the exclusive open of the device keeps the volume from
 * being opened meanwhile.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "rotate.h"
#include "segrekey.h"

#define JADD(o, k, v) json_object_object_add(o, k, v)

int op_volume_rekey_segment(struct agent *a, struct client *c, json_object *args,
			    json_object **result, struct lc_error *err)
{
	struct lc_open_args oa = { 0 };
	struct lc_segrekey_result res;
	const struct lc_keyconfig *kc;
	struct lc_keyconfig bound;
	const char *range;
	char hbuf[PATH_MAX], rd[PATH_MAX], rh[PATH_MAX];
	uint32_t first, last;
	bool resume = false, have_d, have_h;
	struct running_op *op;
	struct uuid_claim uk;
	struct lc_segrekey_opts opts = { 0 };
	int r;

	if ((r = arg_str(args, "device", true, &oa.device, err)) < 0 ||
	    (r = arg_str(args, "workspace", true, &oa.workspace, err)) < 0 ||
	    (r = arg_header(a, c, args, hbuf, sizeof(hbuf), &oa.header, err)) < 0 ||
	    (r = arg_str(args, "segments", true, &range, err)) < 0 ||
	    (r = arg_bool(args, "resume", &resume, err)) < 0 ||
	    (r = arg_u64(args, "accept_damaged_sector", false, &opts.damaged_sector, err)) < 0 ||
	    (r = lc_segment_range_parse(range, &first, &last, err)) < 0 ||
	    (r = lc_name_check("workspace", oa.workspace, err)) < 0 ||
	    (r = lc_registry_resolve(&a->reg, oa.workspace, &kc, err)) < 0)
		return r;
	if (oa.device[0] != '/')
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "argument \"device\" is \"%s\": expected an absolute path", oa.device);
	opts.resume = resume;
	opts.accept_damaged = json_object_object_get_ex(args, "accept_damaged_sector", NULL);
	if (opts.accept_damaged && !resume)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "\"accept_damaged_sector\" is for finishing an interrupted re-key: give it with \"resume\"");
	/* Offline only: a volume this agent has open is refused by name (the
	 * exclusive open below refuses any mapped device too). */
	have_d = agent_realpath(c, oa.device, rd);	/* paths.c */
	have_h = oa.header && agent_realpath(c, oa.header, rh);
	for (size_t i = 0; i < a->nvols; i++) {
		const struct lc_volume *ov = a->vols[i]->v;

		if ((have_d && !strcmp(ov->device, rd)) ||
		    (have_h && ov->header[0] && !strcmp(ov->header, rh)))
			return lc_err(err, -EBUSY, LC_ERRC_INVALID,
				      "%s is open as /dev/mapper/%s: close it first (a segment is re-keyed offline)",
				      oa.device, ov->name);
	}
	bound = *kc;
	oa.kc = &bound;
	/* ... and under any other path (a loop device set up since, a
	 * hard link): its uuid is claimed until the re-key ends. */
	if ((r = agent_uuid_claim(a, &uk, &agent_uc_rekey_segment, oa.device, oa.header, err)) < 0)
		return r;
	if (a->cfg.test_segrekey_pause_file[0])
		lc_warn("[test] segrekey_pause_file = %s: the re-key waits while it exists (for tests only)",
			a->cfg.test_segrekey_pause_file);
	lc_segrekey_pause_file(a->cfg.test_segrekey_pause_file);
	/* A revocation of the CMK stops it between zones (ops-life.c). */
	{
		char what[64];

		snprintf(what, sizeof(what), "rekey-segment of a %s volume", oa.workspace);
		op = agent_op_begin(a, c, what, bound.provider, bound.key_ref, bound.cmk_id, NULL,
				    NULL, NULL);
		agent_op_keyconfigs(op, bound.name, NULL);
	}
	if (!op) {
		agent_uuid_release(a, &uk);
		return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
	}
	agent_unlock(a);
	r = lc_segment_rekey_opts(&c->env, &oa, first, last, &opts, NULL, &res, err);
	agent_relock(a);
	(void)agent_op_end(a, c, op);
	agent_uuid_release(a, &uk);
	if (r < 0)
		return r;
	*result = json_object_new_object();
	JADD(*result, "device", json_object_new_string(oa.device));
	JADD(*result, "first", json_object_new_int64(res.first));
	JADD(*result, "last", json_object_new_int64(res.last));
	if (res.first > res.asked_first) {
		char skipped[32];

		/* --resume starts at the journaled segment: say what it left. */
		snprintf(skipped, sizeof(skipped), "%" PRIu32 "-%" PRIu32, res.asked_first,
			 res.first - 1);
		JADD(*result, "not_rekeyed", json_object_new_string(skipped));
	}
	JADD(*result, "rekeyed", json_object_new_int64(res.rekeyed));
	JADD(*result, "resumed", json_object_new_boolean(res.resumed));
	if (res.resumed)
		JADD(*result, "resumed_segment", json_object_new_int64(res.resumed_segment));
	JADD(*result, "generation", json_object_new_int64(res.generation));
	JADD(*result, "sectors", json_object_new_uint64(res.sectors));
	JADD(*result, "seqno", json_object_new_uint64(res.seqno));
	if (opts.accept_damaged) {
		/* What the administrator gave up, if anything was damaged. */
		JADD(*result, "damaged_sector_accepted", json_object_new_boolean(res.damaged_accepted));
		if (res.damaged_accepted)
			JADD(*result, "damaged_offset", json_object_new_uint64(res.damaged_offset));
	}
	return 0;
}
