/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * dm-lakecrypt: the vocabulary of the device-mapper target "lakecrypt",
 * shared by the kernel module, the agent, the tools and the documentation
 * (Documentation/admin-guide/dm-lakecrypt.rst).
 *
 * Table line:
 *   <start> <len> lakecrypt <cipher> <key> <segment_sectors> <device> \
 *       <offset> <volume_id> [<#opt_params> <opt_params>...]
 *
 *   <cipher>           dm-crypt cipher spec with a plain64 IV:
 *                      aes-xts-plain64, xchacha12,aes-adiantum-plain64,
 *                      capi:xts(aes)-plain64, ...; stream modes (ctr, ofb,
 *                      cfb, chacha20: block size 1) are refused
 *   <key>              :<key_size>:logon:<key_prefix>
 *                      the DEK of segment N is the logon key whose
 *                      description is <key_prefix><N> (N in decimal);
 *                      <key_prefix> has a "<service>:" part and ends in ':'
 *   <segment_sectors>  segment size in 512-byte sectors, a power of two,
 *                      at least LAKECRYPT_MIN_SEGMENT_SECTORS
 *   <device>           backing device (path or major:minor)
 *   <offset>           start of the data area on <device>, in sectors
 *   <volume_id>        1..LAKECRYPT_MAX_VOLUME_ID characters [A-Za-z0-9._-]
 *
 * Every number (here and in messages) is plain decimal: no sign, no '+',
 * no hex, no trailing characters, no overflow.
 *
 * Optional parameters (at most LAKECRYPT_MAX_OPT_PARAMS):
 *   allow_discards     pass discards to the backing device
 *   sector_size:<n>    encryption unit, 512..4096, a power of two
 *   ephemeral          the volume is a cache: revoke also discards it
 *   no_read_workqueue  decrypt a read in the task that completes it when
 *                      that task submitted it, else in one work item;
 *                      never sliced over CPUs
 *   no_write_workqueue encrypt a write in the task that submits it, whole
 *   no_inline_crypt    always hand crypto to the workqueue (dm-crypt's
 *                      default); conflicts with the two above
 *   same_cpu_crypt     never slice a bio over CPUs; queued work runs on
 *                      the CPU that queued it
 *
 * Reload: a new table of the same volume (same volume_id, key prefix,
 * cipher, key size, segment size and sector size) takes over the keys of
 * the live table when it is resumed (segments beyond the old length start
 * without a key).  A table of the same volume_id that differs is refused
 * at load while the live table holds keys.
 *
 * Messages (dmsetup message <dev> 0 ...):
 *   key load <range>   load the DEKs of <range> from the keyring (all or
 *                      nothing); <range> is "all", "<n>" or "<first>-<last>";
 *                      a loaded key with the same bytes is kept, different
 *                      bytes are refused with EBUSY unless the device is
 *                      suspended (wipe first)
 *   key wipe <range>   forget and zero the DEKs of <range>
 *   stats              reply (printed by dmsetup) with the transform cache
 *                      and bounce page figures, LAKECRYPT_STAT_* below;
 *                      changes nothing, works after a revoke too
 *   revoke [discard]   wipe every key, fail all I/O from now on and, if
 *                      the volume is ephemeral or "discard" is given,
 *                      discard the data area; permanent for this table.
 *                      Returns without waiting for the backing device:
 *                      bios in flight are waited for and the discard is
 *                      done by a work item (<discard> is "pending" until
 *                      then)
 *
 * Status INFO (dmsetup status):
 *   <state> <segments> <keys_loaded> <reads> <writes> <io_errors> <discard>
 *   <state>   is LAKECRYPT_STATE_ACTIVE or LAKECRYPT_STATE_REVOKED
 *   <discard> is one of LAKECRYPT_DISCARD_* (what revoke did)
 *
 * When revoke's outcome is known the mapped disk gets a KOBJ_CHANGE uevent with
 * LAKECRYPT_UEVENT_EVENT=LAKECRYPT_UEVENT_REVOKED,
 * LAKECRYPT_UEVENT_VOLUME=<volume_id> and LAKECRYPT_UEVENT_DISCARD=<discard>.
 */
#ifndef _UAPI_LINUX_DM_LAKECRYPT_H
#define _UAPI_LINUX_DM_LAKECRYPT_H

#define LAKECRYPT_TARGET_NAME		"lakecrypt"
#define LAKECRYPT_VERSION_MAJOR		1
#define LAKECRYPT_VERSION_MINOR		1
#define LAKECRYPT_VERSION_PATCH		0

/* Table line */
#define LAKECRYPT_CIPHER_IV		"plain64"
#define LAKECRYPT_KEY_TYPE		"logon"
#define LAKECRYPT_MIN_SEGMENT_SECTORS	8		/* 4 KiB */
#define LAKECRYPT_MAX_SEGMENTS		(1U << 20)
#define LAKECRYPT_MAX_KEY_SIZE		128		/* bytes */
#define LAKECRYPT_MAX_KEY_PREFIX	128		/* characters */
#define LAKECRYPT_MAX_VOLUME_ID		64		/* characters */
#define LAKECRYPT_MIN_SECTOR_SIZE	512
#define LAKECRYPT_MAX_SECTOR_SIZE	4096

/* Optional parameters */
#define LAKECRYPT_OPT_ALLOW_DISCARDS	"allow_discards"
#define LAKECRYPT_OPT_SECTOR_SIZE	"sector_size"	/* sector_size:<n> */
#define LAKECRYPT_OPT_EPHEMERAL		"ephemeral"
#define LAKECRYPT_OPT_NO_READ_WORKQUEUE	"no_read_workqueue"
#define LAKECRYPT_OPT_NO_WRITE_WORKQUEUE "no_write_workqueue"
#define LAKECRYPT_OPT_NO_INLINE_CRYPT	"no_inline_crypt"
#define LAKECRYPT_OPT_SAME_CPU_CRYPT	"same_cpu_crypt"
#define LAKECRYPT_MAX_OPT_PARAMS	7

/* Messages */
#define LAKECRYPT_MSG_KEY		"key"
#define LAKECRYPT_MSG_KEY_LOAD		"load"
#define LAKECRYPT_MSG_KEY_WIPE		"wipe"
#define LAKECRYPT_MSG_RANGE_ALL		"all"
#define LAKECRYPT_MSG_REVOKE		"revoke"
#define LAKECRYPT_MSG_REVOKE_DISCARD	"discard"
#define LAKECRYPT_MSG_STATS		"stats"

/* Reply to "stats": <name>=<decimal> words, separated by one space */
#define LAKECRYPT_STAT_TFM_CACHED	"tfm_cached"	/* keyed transforms held */
#define LAKECRYPT_STAT_TFM_MAX		"tfm_max"	/* ... at most (key_cache) */
#define LAKECRYPT_STAT_TFM_HITS		"tfm_hits"	/* slices that found theirs keyed */
#define LAKECRYPT_STAT_TFM_MISSES	"tfm_misses"	/* slices that keyed one (setkey) */
#define LAKECRYPT_STAT_TFM_EVICTIONS	"tfm_evictions"	/* misses that dropped another key */
#define LAKECRYPT_STAT_BOUNCE_PAGES	"bounce_pages"	/* write bounce pages in use */
#define LAKECRYPT_STAT_BOUNCE_MAX	"bounce_max"	/* ... at most */

/* Status */
#define LAKECRYPT_STATE_ACTIVE		"active"
#define LAKECRYPT_STATE_REVOKED		"revoked"
#define LAKECRYPT_DISCARD_NONE		"-"		/* not revoked, or not asked */
#define LAKECRYPT_DISCARD_PENDING	"pending"	/* waiting for bios in flight */
#define LAKECRYPT_DISCARD_DONE		"discarded"
#define LAKECRYPT_DISCARD_UNSUPPORTED	"unsupported"	/* device has no discard */
#define LAKECRYPT_DISCARD_FAILED	"failed"

/* Uevent */
#define LAKECRYPT_UEVENT_EVENT		"LAKECRYPT_EVENT"
#define LAKECRYPT_UEVENT_VOLUME		"LAKECRYPT_VOLUME"
#define LAKECRYPT_UEVENT_DISCARD	"LAKECRYPT_DISCARD"
#define LAKECRYPT_UEVENT_REVOKED	"revoked"

#endif /* _UAPI_LINUX_DM_LAKECRYPT_H */
