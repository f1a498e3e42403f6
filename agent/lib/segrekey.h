/* SPDX-License-Identifier: GPL-2.0 */
/*
 * DEK re-key of segments of a *closed* volume: each segment gets a new
 * DEK with generation + 1 and its data is re-encrypted from the old DEK to
 * the new one, in userspace with OpenSSL AES-XTS, exactly as the target
 * (and dm-crypt) encrypts: one XTS data unit per encryption sector
 * (sector_size bytes), IV = le64 of the 512-byte sector number counted
 * from the start of the data area, zero-padded to 16 bytes
 * (Documentation/admin-guide/dm-lakecrypt.rst, "plain64").
 *
 * Journaled in the header (version 3, include/lakecrypt/ondisk.h and
 * on-disk-format.md section 3.4), one segment at a time:
 *
 *   1. header write: version 3, journal {segment, old and new generation,
 *      the new DEK wrapped under the KEK for (uuid, segment, new
 *      generation), done = 0, zone = 0}.  Before this write is durable the
 *      volume is untouched (version 2, old DEK).
 *   2. per zone of at most LC_RKJ_ZONE_MAX encryption sectors: read the old
 *      ciphertext, decrypt with the old DEK, encrypt with the new one;
 *      header write of the journal with {done, zone, SHA-256[0..8) of each
 *      sector's old and of its new ciphertext}; then the new ciphertext,
 *      one write per encryption sector; fsync.
 *   3. header write: version 2, the new record in the DEK table, no
 *      journal (the commit point: from here the new DEK is the segment's).
 *
 * Resume (after a cut anywhere): the journal's zone is re-done sector by
 * sector: a sector whose digest is the new one is kept, one whose digest
 * is the old one is re-encrypted, and any other is an error (-EIO: a torn
 * sector, i.e. a device that does not write a sector_size block
 * atomically, or damage from elsewhere); then the segment goes on after
 * the zone.  Every header write is lc_header_write_io()'s crash-safe one,
 * sealed with the header MAC of the volume's (unchanged) KEK.
 *
 * Ciphers: aes-xts-plain64 and capi:xts(aes)-plain64 with 32- or 64-byte
 * keys.  Adiantum volumes are refused (-EOPNOTSUPP, nothing written):
 * OpenSSL has no Adiantum.
 */
#ifndef LC_SEGREKEY_H
#define LC_SEGREKEY_H

#include <stdbool.h>
#include <stdint.h>

#include "header.h"
#include "volume.h"

/* Storage for tests; NULL members: the real header and data devices.
 * @data offsets are bytes from the start of the data device. */
struct lc_segrekey_io {
	const struct lc_header_io *hdr;
	const struct lc_header_io *data;
	uint64_t data_bytes;		/* size of @data */
};

struct lc_segrekey_result {
	/* The range this call re-keyed (or was re-keying): the range asked
	 * for, except that a resume starts at the journaled segment, so
	 * segments asked for before it are *not* re-keyed by the call
	 * (asked_first..first - 1, when asked_first < first). */
	uint32_t first, last;
	uint32_t asked_first, asked_last;	/* the range asked for */
	uint32_t rekeyed;		/* segments that got a new DEK */
	bool resumed;			/* a journal was found and finished */
	uint32_t resumed_segment;
	uint32_t generation;		/* new generation of the last segment */
	uint64_t sectors;		/* encryption sectors re-encrypted */
	uint64_t seqno;			/* header seqno at the end */
	bool damaged_accepted;		/* opts->accept_damaged: the sector was damaged
					 * and was rewritten (its data may be lost) */
	uint64_t damaged_offset;	/* its byte offset on the data device */
};

/* lc_segment_rekey_opts(): @resume as for lc_segment_rekey(); with
 * @accept_damaged (only with @resume) the encryption sector
 * @damaged_sector (counted from 0 in the journaled segment, as the -EIO
 * error names it) of the journaled zone is accepted when it is neither the
 * old nor the new ciphertext: it is decrypted with the old DEK and
 * encrypted with the new one like the others, so whatever of it was not
 * damaged survives and the rest (at most sector_size bytes of that
 * segment's data) reads as garbage; the re-key then goes on.  A sector
 * that is not in the journaled zone is -EINVAL, nothing changed.  Audited
 * in the rekey-segment record's detail.  An administrator's decision:
 * lakecryptctl rekey-segment --resume --accept-damaged-journal-sector N. */
struct lc_segrekey_opts {
	bool resume;
	bool accept_damaged;
	uint64_t damaged_sector;
};

/*
 * Re-key segments @first..@last (inclusive) of the closed volume whose
 * header is at @a->header (detached) or @a->device, which must belong to
 * @a->workspace and be under its binding @a->kc.  One KMS call (unwrap of
 * the KEK, audited "cmk.unwrap"); the MAC and the rollback memory are
 * checked as open does.  Audited as "rekey-segment".
 *
 * Without @resume a header with a re-key in progress is refused (-EBUSY,
 * naming the segment); with @resume, the journaled segment (which must be
 * in the range) is finished first and the segments after it up to @last
 * follow (the segments of the range before it are not touched: @res and
 * the audit record's detail say which were re-keyed); @resume with no
 * journal is -EALREADY.  Errors: -EINVAL (range
 * beyond the segment count, shredded segment, generation exhausted),
 * -EOPNOTSUPP (cipher), -EBUSY (device in use: open volumes are refused by
 * the exclusive open; a regular file is flock'ed and refused while a loop
 * device over it is in use, backing.h), -EKEYREVOKED (DENIED: the kill
 * switch stopped it, env->guard, opguard.h), -EIO (a sector that is neither old nor new),
 * and those of the header, the device and the provider.  @io: NULL except
 * in tests.  @res may be NULL.
 */
int lc_segment_rekey(const struct lc_volume_env *env, const struct lc_open_args *a,
		     uint32_t first, uint32_t last, bool resume, const struct lc_segrekey_io *io,
		     struct lc_segrekey_result *res, struct lc_error *err);
int lc_segment_rekey_opts(const struct lc_volume_env *env, const struct lc_open_args *a,
			  uint32_t first, uint32_t last, const struct lc_segrekey_opts *o,
			  const struct lc_segrekey_io *io, struct lc_segrekey_result *res,
			  struct lc_error *err);

/* Test hook: stop (as if the process died: -EINTR, nothing more written)
 * before the @n-th data sector write from now; 0 disables.  For the e2e
 * test of an interrupted re-key (agent config [test] segrekey_stop_after). */
void lc_segrekey_stop_after(uint64_t n);

/* Test hook ([test] segrekey_pause_file of the agent): while @path exists,
 * a re-key waits before writing the data of each zone after the first
 * (its journal already on disk), so an end-to-end test can kill the agent
 * in the middle of a segment.  NULL or "" disables. */
void lc_segrekey_pause_file(const char *path);

#endif /* LC_SEGREKEY_H */
