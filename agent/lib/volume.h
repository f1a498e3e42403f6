/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Volumes: format, open, close, re-wrap and revoke, the work behind the
 * agent's volume.* and cache.* operations.
 *
 *   format   one KMS call (wrap the new KEK under the workspace's CMK with
 *            context lc_kek_context(identity)); one DEK per segment wrapped
 *            by the KEK (generation 1); the header sealed with its MAC
 *            (key derived from the KEK) and both copies written.
 *   open     header read; identity checked against the workspace's
 *            current binding; one KMS call (unwrap the KEK); the header's
 *            MAC verified (a forged copy loses to the genuine one) and its
 *            seqno checked against the rollback memory before any key
 *            reaches the kernel; the other copy repaired only then;
 *            every DEK unwrapped locally;
 *            DEKs added as logon keys "lakecrypt:<uuid>:<n>", the dm device
 *            created and "key load" sent from this process, in batches of
 *            LC_VOLUME_KEY_BATCH keys (the kernel's key quota); the keys
 *            dropped and the DEKs wiped.  Only the KEK stays, in locked
 *            memory, for re-wrapping.  Any failure unwinds everything.
 *   cache    ephemeral: random DEKs made at open and never written, table
 *            option "ephemeral" (the target discards the data on revoke);
 *            the volume belongs to its workspace's CMK for revocation.
 *   revoke   "revoke" to the target, every lakecrypt key purged from the
 *            keyrings, the KEK wiped; the volume stays listed as revoked.
 *
 * The kernel is reached only through struct lc_volume_backend, so unit
 * tests run all of this without device-mapper or a keyring: they count
 * KMS calls, see the table line and every message.
 *
 * CMK uses ("cmk.wrap", "cmk.unwrap", "cmk.verify": the read-back of each
 * new wrapped KEK before any header write, "cmk.key_state") and the operations
 * ("format", "open", "close", "rotate", "revoke") are audited through
 * env->audit, never with key material.
 */
#ifndef LC_VOLUME_H
#define LC_VOLUME_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <json-c/json.h>
#include <lakecrypt/ondisk.h>

#include "audit.h"
#include "dm.h"
#include "envelope.h"
#include "header.h"
#include "opguard.h"
#include "keyring.h"
#include "lc-error.h"
#include "provider.h"
#include "registry.h"
#include "secmem.h"
#include "seqstore.h"
#include "uuidscan.h"

/* Keys added, loaded and dropped at a time: root's default key quota
 * (kernel.keys.root_maxkeys 1,000,000, root_maxbytes 25 MB) holds one
 * batch of 64-byte keys comfortably, not 2^20 of them. */
#define LC_VOLUME_KEY_BATCH	65536u

struct lc_volume;

/* The kernel side: device-mapper and the keyring. */
struct lc_volume_backend {
	const char *name;
	bool regular_files;	/* a table may name a regular file (tests only) */
	int (*kr_open)(void *ctx, struct lc_keyring *kr, const char *name, const char *prefix,
		       struct lc_error *err);
	int (*kr_add)(void *ctx, struct lc_keyring *kr, uint32_t first, uint32_t count,
		      const uint8_t *payloads, size_t key_size, struct lc_error *err);
	int (*kr_drop)(void *ctx, struct lc_keyring *kr, struct lc_error *err);
	void (*kr_close)(void *ctx, struct lc_keyring *kr);
	int (*kr_purge)(void *ctx, unsigned int *removed, unsigned int *left, struct lc_error *err);
	int (*dm_create)(void *ctx, const char *name, const char *uuid, const char *line,
			 struct lc_error *err);
	int (*dm_message)(void *ctx, const char *name, const char *msg, struct lc_error *err);
	/* Replace the live table and resume, as lc_dm_reload() (-EAGAIN:
	 * swapped in but suspended until keys and dm_resume); NULL: a backend
	 * that cannot resize. */
	int (*dm_reload)(void *ctx, const char *name, const char *line, struct lc_error *err);
	int (*dm_resume)(void *ctx, const char *name, struct lc_error *err);
	/* Tell udev a new device has its keys, as lc_dm_announce(); NULL: a
	 * backend without udev. */
	int (*dm_announce)(void *ctx, const char *name, struct lc_error *err);
	int (*dm_status)(void *ctx, const char *name, struct lc_dm_status *st, struct lc_error *err);
	int (*dm_remove)(void *ctx, const char *name, struct lc_error *err);
	int (*dm_list)(void *ctx, struct lc_dm_device **devs, size_t *n, struct lc_error *err);
	/* The live table of @name, as lc_dm_table_get(); NULL: a backend
	 * that cannot tell (an unknown mapping is then never adopted from
	 * its device, only wiped). */
	int (*dm_table)(void *ctx, const char *name, char **params, uint64_t *length,
			struct lc_error *err);
};

/* libdevmapper and libkeyutils (dm.h, keyring.h). */
extern const struct lc_volume_backend lc_volume_backend_kernel;

struct lc_volume_env {
	const struct lc_volume_backend *be;
	void *be_ctx;
	/* The provider of kind @kind ("local", ...), NULL if there is none. */
	struct lc_provider *(*provider)(void *ctx, const char *kind);
	void *provider_ctx;
	struct lc_audit *audit;		/* NULL: no audit records */
	int64_t peer_uid;		/* for audit records; < 0: the agent itself */
	uint32_t key_batch;		/* 0: LC_VOLUME_KEY_BATCH */
	struct lc_seqstore *seqs;	/* rollback memory; NULL: none (tests) */
	/* The kill switch's hold on the running key-lifecycle operation
	 * (opguard.h): every header or data write of rotate.c, segrekey.c
	 * and lc_volume_rewrap() is made under it.  NULL: none. */
	struct lc_op_guard *guard;
	/* Open and cache open call it after every check and before the dm
	 * device is created, with @v as it will be listed (name, uuid,
	 * device, header, workspace, key configuration, CMK; no key): the
	 * caller records it durably, so that a crash between the create and
	 * the caller's list of open volumes leaves a record a restarted
	 * agent adopts the mapping from (Documentation/lakecrypt-agent.md,
	 * "Restart").  < 0 (with @err): the open fails, nothing is mapped.
	 * NULL: no record. */
	int (*before_create)(void *ctx, const struct lc_volume *v, struct lc_error *err);
	void *before_create_ctx;
};

/*
 * Ciphers lakecrypt formats and opens: wide-block or tweakable modes whose
 * per-sector IV (plain64) never repeats a keystream when a sector is
 * rewritten.  aes-xts-plain64 (32- or 64-byte keys) and
 * xchacha12,aes-adiantum-plain64 / xchacha20,aes-adiantum-plain64 (32),
 * and their capi: spellings.  Stream modes (ctr, ofb, cfb, rfc3686) and
 * everything else are refused with -EINVAL naming the allowed set.
 */
int lc_cipher_allowed(const char *cipher, uint32_t key_size, struct lc_error *err);

/*
 * 0 if block device @rdev is one that a pattern of @acc names (glob(7),
 * symlinks followed); -EPERM (DENIED-free class INVALID) naming the device
 * and the workspace otherwise.
 */
int lc_device_allowed(const struct lc_ws_access *acc, const char *workspace, dev_t rdev,
		      const char *path, struct lc_error *err);

enum lc_volume_kind { LC_VOLUME_PROJECT = 0, LC_VOLUME_CACHE };

/* An open volume.  Never holds a DEK; the KEK only while it is usable. */
struct lc_volume {
	char name[LC_HDR_NAME_SIZE];		/* dm name: /dev/mapper/<name> */
	enum lc_volume_kind kind;
	char uuid[LC_UUID_STR_LEN];
	char device[PATH_MAX];			/* the device as resolved at open */
	char devno[24];				/* "major:minor", what the table names */
	char header[PATH_MAX];			/* detached header path, "" if attached */
	char workspace[LC_HDR_NAME_SIZE];
	char project[LC_HDR_NAME_SIZE];		/* cache: the volume name */
	char keyconfig[LC_HDR_NAME_SIZE];
	char provider[LC_HDR_PROVIDER_SIZE];
	char provider_ref[LC_HDR_PROVIDER_REF_SIZE];
	char cmk_id[LC_HDR_CMK_ID_SIZE];
	char cmk_version[LC_HDR_CMK_VERSION_SIZE];
	char cipher[LC_HDR_CIPHER_SIZE];
	uint32_t key_size;
	uint32_t sector_size;
	uint32_t segments;			/* segments of the mapping */
	uint64_t segment_sectors;
	uint64_t data_offset;			/* sectors */
	uint64_t length;			/* sectors mapped */
	int64_t opened;				/* epoch seconds */
	bool revoked;
	char revoke_cause[256];
	bool have_kek;				/* false after revoke, for caches, after restart */
	struct lc_secret kek;
};

void lc_volume_free(struct lc_volume *v);
static inline void lc_volume_freep(struct lc_volume **v)
{
	lc_volume_free(*v);
}
#define _cleanup_volume_ _cleanup_(lc_volume_freep)

/*
 * What a caller checked a path to name before an operation that writes it
 * (the agent's claim on the storage, agent/daemon/uuid-claim.c): the
 * operation opens the path itself, and refuses (-EBUSY, INVALID: "changed
 * under us", nothing written) when what it opened is other storage -- a
 * directory symbolic link or a rename between the check and the open.
 */
struct lc_storage_pin {
	bool exists;	/* false: nothing was there (a detached header is then only created, O_EXCL) */
	bool blk;	/* a block device (@rdev); else a regular file (@dev, @ino) */
	dev_t rdev;
	dev_t dev;
	ino_t ino;
};

struct lc_format_args {
	const char *device;		/* block device or regular file */
	const char *header;		/* detached header file, NULL: attached */
	const char *workspace;
	const char *project;
	const char *cipher;		/* NULL: LC_DM_DEFAULT_CIPHER */
	uint32_t key_size;		/* bytes; 0: 64 */
	uint64_t segment_size;		/* bytes; 0: 1 MiB */
	uint32_t sector_size;		/* 0: 512 */
	/* Overwrite what is there: a lakecrypt volume, any other signature
	 * libblkid finds (file system, partition table, LUKS, ...), or an
	 * existing detached header file.  An admin's decision. */
	bool force;
	const struct lc_ws_access *allow;	/* devices an operator may use; NULL: any */
	/* What @device and @header were checked to be; NULL: not checked. */
	const struct lc_storage_pin *pin_device, *pin_header;
};

/*
 * Format @a->device in workspace @a->workspace under key configuration
 * @kc (the caller resolved the binding).  Segments: the data area divided
 * by the segment size, rounded up (the last one may be shorter).  @out
 * (may be NULL) receives the header written.  Before the header is
 * written, every signature libblkid finds anywhere on the device (and a
 * detached header device) is wiped, as wipefs -a does (only --force gets
 * there when one is valid); the log and audit record name them
 * (type@byte offset); -EEXIST if libblkid still finds one after that.
 * A detached header file is held with flock(LOCK_EX | LOCK_NB) from its
 * open to the end (-EBUSY while another lakecrypt operation holds it);
 * -EBUSY when the device or header opened is not what @a->pin_device /
 * @a->pin_header say was checked (before a byte is written).
 */
int lc_volume_format(const struct lc_volume_env *env, const struct lc_keyconfig *kc,
		     const struct lc_format_args *a, struct lc_header **out,
		     struct lc_error *err);

struct lc_open_args {
	const char *device;
	const char *header;		/* detached header file, NULL: attached */
	const char *workspace;		/* must be the header's */
	const char *name;		/* dm device name */
	const struct lc_keyconfig *kc;	/* the workspace's current binding */
	const struct lc_ws_access *allow;	/* devices an operator may use; NULL: any */
	/* The volume the caller expects (lakecrypttab's UUID=: lower-case
	 * 8-4-4-4-12), NULL or "": any.  A header copy of another volume is
	 * refused before any KMS call or mapping (-EPERM, REFUSED), and
	 * @uuid_source (e.g. "/etc/lakecrypt/lakecrypttab line 3") is named. */
	const char *uuid;
	const char *uuid_source;
	/* @device must be plain (lc_crypttab_path_plain(): no //, /./,
	 * /../; else -EINVAL, INVALID).  An open BY UUID (@uuid set, or
	 * @device under /dev/disk/by-uuid/ or /dev/disk/by-lakecrypt/, or
	 * any other path that goes through a symbolic link; a by-uuid path's
	 * uuid is also required of the header) of an attached header is
	 * refused with -ENOTUNIQ
	 * (INVALID; audited as refused), before any KMS call, when another block device carries
	 * the volume's uuid (uuidscan.h: a copy of the header could have
	 * taken the link).  Where to look; NULL: the system's. */
	const struct lc_blk_roots *blk;
};

int lc_volume_open(const struct lc_volume_env *env, const struct lc_open_args *a,
		   struct lc_volume **out, struct lc_error *err);

struct lc_cache_args {
	const char *device;
	const char *workspace;
	const char *name;
	const char *cipher;		/* NULL: LC_DM_DEFAULT_CIPHER */
	uint32_t key_size;		/* 0: 64 */
	uint64_t segment_size;		/* bytes; 0: 1 MiB */
	const struct lc_ws_access *allow;	/* devices an operator may use; NULL: any */
	/* A cache shreds its whole device when it closes: a device holding a
	 * lakecrypt header or any libblkid signature is refused unless set
	 * (an admin's decision), as for format. */
	bool force;
	const struct lc_storage_pin *pin_device;	/* see lc_storage_pin; NULL: not checked */
};

/* One key_state call (audited) first: the CMK must be enabled. */
int lc_volume_cache_open(const struct lc_volume_env *env, const struct lc_keyconfig *kc,
			 const struct lc_cache_args *a, struct lc_volume **out,
			 struct lc_error *err);

/* Remove the device first: if that fails (busy) nothing is destroyed and
 * the volume stays as it was.  Then wipe the KEK and, for a cache, discard
 * its backing device (its key died with the table). */
int lc_volume_close(const struct lc_volume_env *env, struct lc_volume *v, struct lc_error *err);

/*
 * Migrate a version 1 header to version 2 (an admin's operation; the
 * volume must be closed): the header's identity must match @a->kc, the
 * KEK is unwrapped under the version 1 context (one KMS call), every DEK
 * record must authenticate under it, the KEK is wrapped again under the
 * identity context (one KMS call) and the header is sealed with its MAC
 * and written crash-safely.  Fields version 1 did not authenticate
 * (cipher, sizes, offsets, labels) are taken as the admin finds them:
 * check them with `lakecryptctl dump` first.  -EALREADY for a version 2
 * header.  @out (may be NULL) receives the new header.
 */
int lc_volume_migrate(const struct lc_volume_env *env, const struct lc_open_args *a,
		      struct lc_header **out, struct lc_error *err);

/* Re-wrap the KEK under the CMK's current primary version (one wrap call)
 * and rewrite the header atomically. */
int lc_volume_rewrap(const struct lc_volume_env *env, struct lc_volume *v, struct lc_error *err);

/*
 * Resize open project volume @v online to @size bytes of data (a multiple
 * of 512; 0: all that its device now offers), without a KMS call.
 * Growing: new segments get fresh DEKs wrapped under the KEK in memory,
 * the header is written (crash-safely, moving to a larger area if needed),
 * the table is reloaded with the new length (the target carries the
 * loaded keys over) and the new keys are loaded.  Shrinking: the table is
 * reloaded first, then the header drops the removed segments' wrapped
 * DEKs (their data is unrecoverable afterwards).  A power cut at any point
 * leaves a volume that opens at the old or the new size.  Errors: -ENOSPC
 * (the device is smaller than @size), -EFBIG (an attached header's area in
 * front of the data holds no more segments: the message gives the limit),
 * -ESTALE (the path is no longer the opened device), -EKEYREVOKED,
 * -ENOKEY (no KEK since an agent restart).  On success @v's length and
 * segment count are updated; resizing to the current size does nothing.
 */
int lc_volume_resize(const struct lc_volume_env *env, struct lc_volume *v, uint64_t size,
		     struct lc_error *err);

/*
 * The kill switch for one volume: "revoke" to the target, purge of every
 * lakecrypt key from the keyrings, KEK wiped, volume marked revoked with
 * @cause.  @denied: the cause is an authoritative KMS answer (audited with
 * class denied) rather than an admin's revoke.  Completes as far as it
 * can; returns the first error.
 */
int lc_volume_revoke(const struct lc_volume_env *env, struct lc_volume *v, const char *cause,
		     bool denied, struct lc_error *err);

/* The "revoke" audit record of @v (lc_volume_revoke() writes it; callers
 * that revoke with env->audit NULL, so that a slow audit disk cannot
 * delay what they do next, write it with this afterwards).  @failed: the
 * first error, NULL on success; @denied: caused by an authoritative KMS
 * answer. */
void lc_volume_audit_revoke(const struct lc_volume_env *env, const struct lc_volume *v,
			    bool denied, const struct lc_error *failed, int64_t latency_ms);

/* Live status of the mapping. */
int lc_volume_status(const struct lc_volume_env *env, const struct lc_volume *v,
		     struct lc_dm_status *st, struct lc_error *err);

/* The protocol's "open volume" object; @st may be NULL (counters 0). */
json_object *lc_volume_to_json(const struct lc_volume *v, const struct lc_dm_status *st);

/*
 * The runtime list of open volumes (no key material: the KEK is never
 * saved), so a restarted agent finds its devices again and can revoke
 * them.  Save writes atomically, 0600.  Rediscover loads @path and keeps
 * the volumes whose dm device still exists with the right uuid; they come
 * back without KEK (have_kek false).  A missing file is an empty list.
 */
int lc_volumes_save(const char *path, struct lc_volume *const *vols, size_t n,
		    struct lc_error *err);
int lc_volumes_rediscover(const struct lc_volume_env *env, const char *path,
			  struct lc_volume ***vols, size_t *n, struct lc_error *err);

/*
 * One volume from @path, a file lc_volumes_save() wrote with exactly one
 * entry (the agent's open record): *@out (free with lc_volume_free(); no
 * KEK).  -ENOENT: no such file; -EINVAL (INVALID): not one well-formed
 * entry (bounded by LC_FILE_MAX; each string by its field's size).
 */
int lc_volume_record_load(const char *path, struct lc_volume **out, struct lc_error *err);

/* Size in bytes of a block device or regular file open at @fd. */
int lc_device_size(int fd, const char *path, uint64_t *bytes, bool *is_blk,
		   struct lc_error *err);

#endif /* LC_VOLUME_H */
