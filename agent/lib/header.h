/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The lakecrypt volume header: codec, validation and crash-safe I/O of the
 * two header copies.  The byte layout is defined in
 * include/lakecrypt/ondisk.h and described in
 * Documentation/on-disk-format.md.
 *
 * Typical use:
 *   format:  h = lc_header_new(count, key_size); fill h; lc_header_layout()
 *            gives h->data_offset; lc_header_write(fd, h, &err)
 *   open:    lc_header_read(fd, &h, &info, &err); if info.state[other] is
 *            not LC_COPY_VALID, lc_header_write(fd, h, &err) repairs it
 *   update:  change h; lc_header_write(fd, h, &err) (seqno is bumped)
 *
 * All functions return 0 or a negative errno and, on failure, fill @err
 * (class LC_ERRC_INVALID for a bad or missing header, LC_ERRC_MISCONFIG
 * when a path cannot be opened, LC_ERRC_INTERNAL for memory and write
 * errors).  Nothing here ever prints key material: the
 * header holds only wrapped keys, and dumps show only their lengths and
 * fingerprints.
 */
#ifndef LC_HEADER_H
#define LC_HEADER_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <lakecrypt/ondisk.h>

#include "lc-error.h"
#include "lc-types.h"
#include "secmem.h"

/* The re-key journal of a version 3 header (ondisk.h, on-disk-format.md
 * 3.4): present (@active) exactly when the version is LC_HDR_VERSION_V3. */
struct lc_rekey_journal {
	bool active;
	uint32_t segment;		/* < segment_count */
	uint32_t old_gen, new_gen;	/* new_gen = old_gen + 1 */
	uint32_t zone;			/* encryption sectors in flight, <= LC_RKJ_ZONE_MAX */
	uint64_t done;			/* encryption sectors done before the zone */
	struct lc_wrapped_dek dek;	/* the new DEK, wrapped for new_gen */
	uint8_t old_digest[LC_RKJ_ZONE_MAX][LC_RKJ_DIGEST_LEN];
	uint8_t new_digest[LC_RKJ_ZONE_MAX][LC_RKJ_DIGEST_LEN];
};

/* A decoded header.  It owns its memory: release with lc_header_free(). */
struct lc_header {
	uint16_t version;		/* LC_HDR_VERSION (2), _V3 (re-key running) or _V1 as read */
	uint64_t seqno;			/* bumped by every lc_header_write() */
	uint32_t flags;			/* LC_HDR_F_* */
	uint8_t uuid[LC_UUID_LEN];
	uint64_t created;		/* Unix seconds */
	char workspace[LC_HDR_NAME_SIZE];
	char project[LC_HDR_NAME_SIZE];
	char keyconfig[LC_HDR_NAME_SIZE];
	char provider[LC_HDR_PROVIDER_SIZE];	/* provider kind: "local", "aws-kms" */
	char provider_ref[LC_HDR_PROVIDER_REF_SIZE];
	char cmk_id[LC_HDR_CMK_ID_SIZE];	/* as the provider reports it */
	char cmk_version[LC_HDR_CMK_VERSION_SIZE];	/* may be "" */
	char cipher[LC_HDR_CIPHER_SIZE];	/* dm-crypt spec, "-plain64" IV */
	struct lc_buf wrapped_kek;	/* KMS ciphertext blob, 1..LC_HDR_KEK_MAX */
	struct lc_buf wrap_context;	/* AAD / encryption context, 1..LC_HDR_WRAP_CTX_MAX */
	uint32_t key_size;		/* DEK bytes */
	uint32_t sector_size;		/* encryption unit, 512..4096 */
	uint64_t segment_sectors;	/* power of two >= 8 */
	uint64_t data_offset;		/* sectors; 0 allowed for a detached header */
	uint32_t segment_count;
	struct lc_wrapped_dek *deks;	/* segment_count records */
	uint8_t mac[LC_HDR_MAC_LEN];	/* as read (version 2); see lc_header_verify() */
	struct lc_rekey_journal journal;	/* version 3 only */
	/* Not stored: when set (LC_HDR_MAC_LEN bytes, the caller's secret
	 * memory, from lc_header_mac_key()), every encode and write computes
	 * the MAC with it; when NULL, @mac is written as it is. */
	const uint8_t *mac_key;
};

/* Where each copy lives and what state it is in, from lc_header_read(). */
enum lc_copy_state {
	LC_COPY_VALID = 0,	/* valid, same seqno as the copy used */
	LC_COPY_STALE,		/* valid but older: an update was interrupted */
	LC_COPY_DAMAGED,	/* unreadable or invalid: see why[] */
};

struct lc_header_info {
	int used;			/* copy used: 0 = A, 1 = B */
	enum lc_copy_state state[2];	/* state of copy A and copy B */
	uint64_t seqno[2];		/* seqno of each valid copy */
	uint64_t offset[2];		/* byte offset of each copy (B: expected) */
	char why[2][LC_ERROR_MSG_MAX];	/* for a damaged copy: what is wrong */
	bool checked[2];		/* valid and its checksum verified (always,
					 * except past lc_header_identify_io()'s budget) */
};

/* Storage under the header: a device, a file or, in tests, memory.
 * pread/pwrite return bytes transferred or -errno (short is allowed). */
struct lc_header_io {
	void *ctx;
	ssize_t (*pread)(void *ctx, void *buf, size_t len, uint64_t off);
	ssize_t (*pwrite)(void *ctx, const void *buf, size_t len, uint64_t off);
	int (*sync)(void *ctx);		/* make every write so far durable */
};

/* A new header with room for @segment_count zeroed DEK records, defaults
 * filled in (cipher "aes-xts-plain64", sector size 512); NULL if the counts
 * are out of range or memory is short. */
struct lc_header *lc_header_new(uint32_t segment_count, uint32_t key_size);
void lc_header_free(struct lc_header *h);

/* A copy of @h with @segment_count DEK records: the first
 * min(@segment_count, h->segment_count) copied, any others zeroed; not
 * sealed (mac_key NULL).  NULL if the count is out of range or memory is
 * short.  For a resize: the caller wraps the new records' DEKs. */
struct lc_header *lc_header_resized(const struct lc_header *h, uint32_t segment_count);

/* Bytes per DEK record; 0 if @key_size is out of range. */
uint32_t lc_header_dek_stride(uint32_t key_size);

/* Layout for a volume of @segment_count segments with @key_size-byte DEKs:
 * bytes of one copy as written (@hdr_bytes, may be NULL), bytes reserved
 * per copy (@area_bytes: copy B starts there) and the default data offset
 * in sectors for an attached header (after both copies, 1 MiB aligned). */
int lc_header_layout(uint32_t segment_count, uint32_t key_size, uint64_t *hdr_bytes,
		     uint64_t *area_bytes, uint64_t *data_offset_sectors, struct lc_error *err);

/* Check every field of @h against the format's rules (the same rules the
 * decoder applies). */
int lc_header_check(const struct lc_header *h, struct lc_error *err);

/* Encode @h as copy @copy (0 = A, 1 = B) into a new buffer of *@len bytes
 * (the hdr_size of the layout), checksum included.  Free with free(). */
int lc_header_encode(const struct lc_header *h, int copy, uint8_t **buf, size_t *len,
		     struct lc_error *err);

/* Decode and validate one copy at the start of @buf.  @out may be NULL to
 * validate only.  If @copy is not NULL it receives the copy index. */
int lc_header_decode(const void *buf, size_t len, struct lc_header **out, int *copy,
		     struct lc_error *err);

/* SHA-256 of a copy of @hdr_size bytes with its checksum field as zeros. */
int lc_header_checksum(const void *buf, size_t hdr_size, uint8_t out[LC_HDR_CHECKSUM_LEN]);

/* Storage I/O on the file descriptor *@fd (pread/pwrite retried on EINTR,
 * fsync; offsets beyond INT64_MAX read nothing and refuse writes with
 * -EFBIG): what lc_header_read() and lc_header_write() use. */
struct lc_header_io lc_header_io_fd(int *fd);

/* Read both copies and return the valid one with the higher seqno.  @info
 * (may be NULL) says which copy was used and what state the other is in.
 * Fails with -ENOENT/-EINVAL ("no valid lakecrypt header: copy A: ...;
 * copy B: ...") if neither copy is valid. */
int lc_header_read_io(const struct lc_header_io *io, struct lc_header **out,
		      struct lc_header_info *info, struct lc_error *err);
/*
 * Identify the header cheaply (the udev probe): the same choice of copy as
 * lc_header_read_io(), but only the fixed part of the copy is returned
 * (@out->deks is NULL: nothing to open with) and the reads are bounded
 * whatever the storage claims: each copy's fixed part (LC_HDR_FIXED_SIZE
 * bytes) is decoded field by field, then the rest of the copy is streamed
 * through SHA-256 in 64 KiB pieces to verify the checksum, as long as it
 * fits in what is left of @budget bytes.  A copy that does not fit is not
 * read past its fixed part: it counts as valid, with info->checked[i]
 * false.  In all, at most LC_HDR_IDENTIFY_FIXED_MAX + @budget bytes are
 * read and about 100 KiB of memory used.  Errors as lc_header_read_io(),
 * and -EUCLEAN when the copies name different volumes or layouts and copy
 * A could not be verified: lc_header_read_io() takes A if its checksum is
 * right and B if not, so the identity cannot be told within @budget
 * (@info is filled; nothing in @out).
 */
#define LC_HDR_IDENTIFY_FIXED_MAX \
	(4ull * LC_HDR_FIXED_SIZE + LC_HDR_AREA_CANDIDATES * (uint64_t)LC_HDR_OFF_SECTOR_SIZE)
int lc_header_identify_io(const struct lc_header_io *io, uint64_t budget,
			  struct lc_header **out, struct lc_header_info *info,
			  struct lc_error *err);
int lc_header_read(int fd, struct lc_header **out, struct lc_header_info *info,
		   struct lc_error *err);
int lc_header_read_path(const char *path, struct lc_header **out,
			struct lc_header_info *info, struct lc_error *err);

/* Write @h crash-safely: its seqno becomes one more than the highest found
 * on the storage (or than h->seqno; for a sealed write, with @h->mac_key
 * set, one more than h->seqno alone: the copies on the storage are not
 * authenticated), the copy that is not current is written and synced
 * first, then the other.  An interruption at any point
 * leaves a valid copy holding either the old or the new header.  Where no
 * valid header of the same volume exists (format), stale header copies at
 * the other possible copy-B offsets are erased first.
 * A header of the same volume whose segment count moves it to another area
 * size (a resize) is written in the order that keeps a valid copy at every
 * moment, and the old copy B is erased after both new copies are in
 * place: growing writes the new copy B (beyond both old copies) first,
 * shrinking writes copy A first.  Both need the two old copies valid and
 * current, else the write fails with -EAGAIN and writes nothing (write the
 * current header once, which repairs the other copy, then retry). */
int lc_header_write_io(const struct lc_header_io *io, struct lc_header *h, struct lc_error *err);
int lc_header_write(int fd, struct lc_header *h, struct lc_error *err);
/* Opens @path read-write; with @create, creates a regular file (0600) if
 * missing, for a detached header. */
int lc_header_write_path(const char *path, bool create, struct lc_header *h,
			 struct lc_error *err);

/*
 * Read both copies: @copies[i] is the decoded copy A (0) / B (1), NULL
 * where that copy is not valid (see info->why).  The caller frees both.
 * The copy lc_header_read() would use is copies[info->used].  Callers that
 * can authenticate (lc_header_verify) try the other valid copy when the
 * used one does not verify: a forged copy with a higher seqno must not win.
 */
int lc_header_read_copies(int fd, struct lc_header *copies[2], struct lc_header_info *info,
			  struct lc_error *err);
int lc_header_read_copies_io(const struct lc_header_io *io, struct lc_header *copies[2],
			     struct lc_header_info *info, struct lc_error *err);

/*
 * How far lakecrypt metadata reaches on the storage at @fd: 2 * the largest
 * area of any header copy (valid or not) whose magic is at byte 0 or at a
 * possible copy-B offset; 0 if there is none.  Reformatting zeroes up to
 * there so no wrapped key of the old volume survives.
 */
int lc_header_extent(int fd, uint64_t *end);

/*
 * The header MAC key of a volume: HKDF-SHA256 (RFC 5869) with the volume's
 * KEK (LC_KEK_LEN bytes) as input keying material, salt = @uuid and info
 * LC_HDR_MAC_INFO, LC_HDR_MAC_LEN bytes into @key (allocated here, locked).
 */
int lc_header_mac_key(const struct lc_secret *kek, const uint8_t uuid[LC_UUID_LEN],
		      struct lc_secret *key, struct lc_error *err);

/*
 * Check @h's MAC (as read) with @key (LC_HDR_MAC_LEN bytes): 0, or
 * -EBADMSG / LC_ERRC_INVALID "header authentication failed ..." when any
 * authenticated byte differs from what the KEK's holder wrote, or
 * -EPROTO when @h is a version 1 header (it has no MAC).  Constant time
 * in the MAC comparison.
 */
int lc_header_verify(const struct lc_header *h, const uint8_t *key, struct lc_error *err);

/* "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" */
void lc_header_uuid_str(const struct lc_header *h, char out[37]);

/* Dump for lakecryptctl dump: never key material, only lengths and
 * fingerprints (first 8 bytes of SHA-256) of wrapped keys.  @info may be
 * NULL.  The JSON string is malloc'ed. */
int lc_header_to_json(const struct lc_header *h, const struct lc_header_info *info,
		      char **json, struct lc_error *err);
int lc_header_dump_text(const struct lc_header *h, const struct lc_header_info *info, FILE *f);

#endif /* LC_HEADER_H */
