/* SPDX-License-Identifier: GPL-2.0 */
/*
 * volume.c's helpers for the other volume operations of the library
 * (rotate.c): the audit record, the CMK wrap of a KEK (audited) and the
 * provider lookup, each as volume.c does it for its own operations.
 */
#ifndef LC_VOLUME_INTERNAL_H
#define LC_VOLUME_INTERNAL_H

#include "volume.h"

/* Audit @op about @v (its workspace, project, key configuration, CMK);
 * @rep (may be NULL) adds the request id and CMK version used. */
void lc_vol_audit(const struct lc_volume_env *env, const char *op, enum lc_audit_outcome o,
		  const struct lc_volume *v, const struct lc_provider_reply *rep,
		  const struct lc_error *e, int64_t latency_ms);

/* lc_vol_audit() with the record's "detail": @detail is the library's own
 * words (counts, segment numbers), never request data or key material. */
void lc_vol_audit_detail(const struct lc_volume_env *env, const char *op,
			 enum lc_audit_outcome o, const struct lc_volume *v,
			 const struct lc_error *e, int64_t latency_ms, const char *detail);

/* Wrap @kek under @key_ref with context @ctx (one KMS call, audited as
 * "cmk.wrap" about @v) into @h: wrapped_kek, cmk_id, cmk_version.  The new
 * blob is unwrapped again (a second call, "cmk.verify") and compared with
 * @kek in constant time first: on a mismatch or a failed unwrap @h is
 * untouched and the error says nothing was written (-EBADMSG INVALID, or
 * the provider's error). */
int lc_vol_wrap_kek(const struct lc_volume_env *env, struct lc_provider *p, const char *key_ref,
		    const struct lc_secret *kek, const char *ctx, struct lc_header *h,
		    const struct lc_volume *v, struct lc_provider_reply *rep, struct lc_error *err);

/* The provider of kind @kind, or NULL and -ENOPROTOOPT (MISCONFIG) in @err. */
struct lc_provider *lc_vol_provider(const struct lc_volume_env *env, const char *kind,
				    struct lc_error *err);

int64_t lc_vol_now_ms(void);

/* volume.c's checked open of a device or header file (see dev_open()
 * there): read-write, regular files allowed, no allow-list (admins). */
int lc_vol_dev_open_admin(const char *path, const char *workspace, struct lc_error *err);

#endif /* LC_VOLUME_INTERNAL_H */
