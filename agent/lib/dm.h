/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Device-mapper plumbing for lakecrypt volumes, through libdevmapper (never
 * by running dmsetup).
 *
 * The table line and message words come from <linux/dm-lakecrypt.h>; see
 * Documentation/admin-guide/dm-lakecrypt.rst.  Devices created here carry
 * the DM uuid "LAKECRYPT-<volume uuid>", which is how lc_dm_list() tells
 * them from other mappings.
 *
 * udev: if the environment has DM_DISABLE_UDEV=1 (the QEMU test machine has
 * no udev), udev synchronisation is switched off and libdevmapper creates
 * and removes /dev/mapper nodes itself; otherwise every ioctl that makes a
 * uevent carries a udev cookie and we wait for udev to finish with it.
 */
#ifndef LC_DM_H
#define LC_DM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/dm-lakecrypt.h>

#include "lc-error.h"

#define LC_DM_UUID_PREFIX	"LAKECRYPT-"
#define LC_DM_DEFAULT_CIPHER	"aes-xts-plain64"
#define LC_DM_NAME_MAX		127	/* DM_NAME_LEN - 1 */
#define LC_DM_UUID_MAX		128	/* DM_UUID_LEN - 1 */

/* Everything that goes into one lakecrypt table line. */
struct lc_dm_table {
	uint64_t length;		/* mapping length, 512-byte sectors */
	const char *cipher;		/* NULL: LC_DM_DEFAULT_CIPHER */
	unsigned int key_size;		/* bytes, 1..LAKECRYPT_MAX_KEY_SIZE */
	const char *key_prefix;		/* "lakecrypt:<id>:", segment N is <prefix>N */
	uint64_t segment_sectors;	/* power of two >= LAKECRYPT_MIN_SEGMENT_SECTORS */
	const char *device;		/* path or major:minor */
	uint64_t offset;		/* data area start on device, sectors */
	const char *volume_id;		/* [A-Za-z0-9._-]{1,64} */
	bool allow_discards;
	unsigned int sector_size;	/* 0 or 512: default; else 1024/2048/4096 */
	bool ephemeral;
};

/*
 * Build "0 <length> lakecrypt <cipher> :<size>:logon:<prefix> <seg> <dev>
 * <offset> <volume_id> [<n> <opts>...]" into a malloc'd string.  Every
 * parameter is checked against the target's rules first, so a line built
 * here is never refused by the kernel for its syntax.
 */
int lc_dm_table_line(const struct lc_dm_table *t, char **line, struct lc_error *err);

/* Number of segments a table maps (ceil(length / segment_sectors)). */
uint64_t lc_dm_table_segments(const struct lc_dm_table *t);

enum lc_dm_state { LC_DM_STATE_ACTIVE, LC_DM_STATE_REVOKED };
enum lc_dm_discard {
	LC_DM_DISCARD_NONE,		/* "-" */
	LC_DM_DISCARD_DONE,		/* "discarded" */
	LC_DM_DISCARD_UNSUPPORTED,	/* "unsupported" */
	LC_DM_DISCARD_FAILED,		/* "failed" */
	LC_DM_DISCARD_PENDING,		/* "pending": revoked, waiting for bios in flight */
};

/* INFO status of the target: see the "Status" section of the admin guide. */
struct lc_dm_status {
	enum lc_dm_state state;
	uint32_t segments;
	uint32_t keys_loaded;
	uint64_t reads;
	uint64_t writes;
	uint64_t io_errors;
	enum lc_dm_discard discard;
};

/* Parse the target's INFO status parameters (without start, length and
 * target name).  Strict: exactly seven fields, each well formed. */
int lc_dm_status_parse(const char *params, struct lc_dm_status *st, struct lc_error *err);
const char *lc_dm_state_name(enum lc_dm_state s);
const char *lc_dm_discard_name(enum lc_dm_discard d);

/*
 * Create and activate device @name (read-write) with the one-target table
 * @line ("<start> <len> lakecrypt <params>", as lc_dm_table_line() builds),
 * DM uuid LC_DM_UUID_PREFIX @volume_uuid, with udev's disk and other rules
 * disabled until lc_dm_announce().  -EEXIST if the name is taken.
 */
int lc_dm_create(const char *name, const char *volume_uuid, const char *line,
		 struct lc_error *err);

/*
 * Replace the table of live device @name with the one-target table @line
 * (DM_DEVICE_RELOAD, then DM_DEVICE_RESUME: the kernel suspends, swaps and
 * resumes, flushing I/O in flight).  The target carries the keys of a
 * table of the same volume over (Documentation/admin-guide/dm-lakecrypt.rst,
 * "Reload and resize"); segments beyond the old length start without a
 * key.  If the kernel refuses the table, the old one goes on serving
 * (-EINVAL and others).  If it swaps the table in but refuses to resume it
 * (the keys could not be carried over), -EAGAIN: the device is suspended
 * with the new table until its keys are loaded and lc_dm_resume() runs.
 * -ENXIO if @name does not exist.
 */
int lc_dm_reload(const char *name, const char *line, struct lc_error *err);
/* DM_DEVICE_RESUME of @name. */
int lc_dm_resume(const char *name, struct lc_error *err);

/*
 * Announce live device @name to udev once its keys are loaded:
 * lc_dm_create() made it with udev's disk and other rules disabled (no
 * blkid on a device without keys, no SYSTEMD_READY); a suspend and a
 * resume with a fresh cookie make the "change" uevent in which dm's rules
 * run in full (blkid, /dev/disk/by-uuid of the filesystem inside,
 * SYSTEMD_READY=1), as a cryptsetup open's resume does.  A synthetic
 * change event would not do: dm's rules restore the disabling flags from
 * the udev database for those.  Errors: those of the suspend (the device
 * goes on serving, unannounced) and of lc_dm_resume() (left suspended).
 */
int lc_dm_announce(const char *name, struct lc_error *err);

/* Send target message @msg to sector 0 of @name. */
int lc_dm_message(const char *name, const char *msg, struct lc_error *err);

/* The three messages of the target, formatted from the uapi words. */
int lc_dm_key_load(const char *name, uint32_t first, uint32_t last, struct lc_error *err);
int lc_dm_key_wipe(const char *name, uint32_t first, uint32_t last, struct lc_error *err);
int lc_dm_revoke(const char *name, bool discard, struct lc_error *err);

/* Read and parse the INFO status of @name; -EINVAL if it is not lakecrypt. */
int lc_dm_status(const char *name, struct lc_dm_status *st, struct lc_error *err);

/* The live table of @name (its one lakecrypt target, at sector 0): *@params
 * (malloc'd; free it) is the target's TABLE line as the kernel prints it
 * (Documentation/admin-guide/dm-lakecrypt.rst, "Parameters": the device
 * as "major:minor"), *@length its length in 512-byte sectors.  -ENXIO: no
 * such device; -EINVAL: not one lakecrypt target. */
int lc_dm_table_get(const char *name, char **params, uint64_t *length, struct lc_error *err);

/* Remove @name, retrying while it is busy (an fsck or udev may still hold
 * it briefly).  -ENXIO if there is no such device. */
int lc_dm_remove(const char *name, struct lc_error *err);

struct lc_dm_device {
	char name[LC_DM_NAME_MAX + 1];
	char uuid[LC_DM_UUID_MAX + 1];
	uint32_t major, minor;
};

/* Every mapped device whose DM uuid starts with LC_DM_UUID_PREFIX, as a
 * malloc'd array (NULL and 0 if there is none). */
int lc_dm_list(struct lc_dm_device **devs, size_t *n, struct lc_error *err);

#endif /* LC_DM_H */
