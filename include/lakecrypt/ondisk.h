/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * lakecrypt on-disk volume header, version 2 (3 while a segment is
 * re-keyed, see below): the single source of truth
 * for magic, offsets, field sizes and limits.  The codec (agent/lib/header.c)
 * and Documentation/on-disk-format.md follow this file; change all three
 * together, and bump LC_HDR_VERSION for any change a version 1 reader would
 * misread.
 *
 * All integers are little-endian and unsigned.  Offsets are in bytes from
 * the start of one header copy unless stated otherwise.
 *
 * Device (or detached header file) layout:
 *
 *   0                      copy A: hdr_size bytes, then zero padding
 *   area_size              copy B: the same header, copy index 1
 *   2 * area_size          (unused up to the data area)
 *   data_offset * 512      data area: segment_count segments of
 *                          segment_sectors sectors (attached header only)
 *
 *   hdr_size  = LC_HDR_FIXED_SIZE + segment_count * dek_stride
 *   area_size = max(LC_HDR_AREA_MIN, next power of two >= hdr_size)
 *   data_offset (default) = round_up(2 * area_size, LC_HDR_DATA_ALIGN) / 512
 *
 * area_size is a power of two so that copy B can be found when copy A is
 * destroyed: it sits at one of the LC_HDR_AREA_CANDIDATES offsets
 * LC_HDR_AREA_MIN << i.
 *
 * Copy (one header), fixed part of LC_HDR_FIXED_SIZE bytes:
 */
#ifndef _LAKECRYPT_ONDISK_H
#define _LAKECRYPT_ONDISK_H

#define LC_HDR_MAGIC			"LAKECR\xba\xbe"
#define LC_HDR_MAGIC_LEN		8
#define LC_HDR_VERSION			2	/* written; version 1 is read to refuse or migrate it */
#define LC_HDR_VERSION_V1		1
#define LC_HDR_VERSION_V3		3	/* version 2 + a re-key journal (below) */

/*                 field                offset    size */
#define LC_HDR_OFF_MAGIC		0x0000	/*    8  LC_HDR_MAGIC */
#define LC_HDR_OFF_VERSION		0x0008	/*    2  u16 LC_HDR_VERSION */
#define LC_HDR_OFF_COPY			0x000a	/*    2  u16 0 = copy A, 1 = copy B */
#define LC_HDR_OFF_FLAGS		0x000c	/*    4  u32 LC_HDR_F_* */
#define LC_HDR_OFF_SEQNO		0x0010	/*    8  u64 sequence number */
#define LC_HDR_OFF_HDR_SIZE		0x0018	/*    8  u64 bytes covered by the checksum */
#define LC_HDR_OFF_AREA_SIZE		0x0020	/*    8  u64 bytes reserved per copy */
#define LC_HDR_OFF_CREATED		0x0028	/*    8  u64 creation time, Unix seconds */
#define LC_HDR_OFF_CHECKSUM		0x0030	/*   32  SHA-256 */
#define LC_HDR_OFF_UUID			0x0050	/*   16  volume uuid (RFC 4122 bytes) */
#define LC_HDR_OFF_KEY_SIZE		0x0060	/*    4  u32 DEK size in bytes */
#define LC_HDR_OFF_SEGMENT_COUNT	0x0064	/*    4  u32 */
#define LC_HDR_OFF_SEGMENT_SECTORS	0x0068	/*    8  u64 512-byte sectors per segment */
#define LC_HDR_OFF_DATA_OFFSET		0x0070	/*    8  u64 data area start, sectors */
#define LC_HDR_OFF_DEK_STRIDE		0x0078	/*    4  u32 bytes per DEK record */
#define LC_HDR_OFF_DEK_TABLE		0x007c	/*    4  u32 offset of DEK record 0 */
#define LC_HDR_OFF_KEK_LEN		0x0080	/*    4  u32 wrapped KEK length */
#define LC_HDR_OFF_WRAP_CTX_LEN		0x0084	/*    4  u32 wrap context length */
#define LC_HDR_OFF_SECTOR_SIZE		0x0088	/*    4  u32 encryption sector size */
#define LC_HDR_OFF_MAC			0x008c	/*   32  HMAC-SHA256, key from the KEK (v2) */
#define LC_HDR_OFF_RESERVED1		0x00ac	/*   84  zero */
#define LC_HDR_OFF_WORKSPACE		0x0100	/*   64  string */
#define LC_HDR_OFF_PROJECT		0x0140	/*   64  string */
#define LC_HDR_OFF_KEYCONFIG		0x0180	/*   64  string */
#define LC_HDR_OFF_PROVIDER		0x01c0	/*   32  string, provider kind */
#define LC_HDR_OFF_CIPHER		0x01e0	/*  128  string, dm-crypt spec */
#define LC_HDR_OFF_CMK_VERSION		0x0260	/*  256  string, may be empty */
#define LC_HDR_OFF_RESERVED2		0x0360	/*  160  zero */
#define LC_HDR_OFF_PROVIDER_REF		0x0400	/* 2048  string, provider key ref */
#define LC_HDR_OFF_CMK_ID		0x0c00	/* 2048  string, CMK id as reported */
#define LC_HDR_OFF_WRAP_CTX		0x1400	/* 1024  bytes, then zero */
#define LC_HDR_OFF_KEK			0x1800	/* 8192  bytes, then zero */
#define LC_HDR_OFF_RESERVED3		0x3800	/* 2048  zero (v2); v3: re-key journal */
#define LC_HDR_FIXED_SIZE		0x4000	/* DEK table starts here */

/* Field sizes (strings: NUL-terminated, zero-padded to the field size). */
#define LC_HDR_CHECKSUM_LEN		32
#define LC_HDR_NAME_SIZE		64	/* workspace, project, keyconfig */
#define LC_HDR_PROVIDER_SIZE		32
#define LC_HDR_CIPHER_SIZE		128
#define LC_HDR_CMK_VERSION_SIZE		256
#define LC_HDR_PROVIDER_REF_SIZE	2048
#define LC_HDR_CMK_ID_SIZE		2048
#define LC_HDR_WRAP_CTX_MAX		1024
#define LC_HDR_KEK_MAX			8192
#define LC_HDR_MAC_LEN			32
#define LC_HDR_RESERVED1_SIZE		84
#define LC_HDR_RESERVED2_SIZE		160
#define LC_HDR_RESERVED3_SIZE		2048

/*
 * Header MAC (version 2): HMAC-SHA256 over bytes [0, hdr_size) of a copy
 * with the copy index, checksum and MAC fields taken as zeros, so both
 * copies carry the same MAC and every other byte (identity, cipher, key
 * and sector size, geometry, seqno, wrapped KEK, wrap context, every DEK
 * record) is authenticated.  Key: HKDF-SHA256 (RFC 5869) of the KEK with
 * salt = uuid (16 bytes) and info = LC_HDR_MAC_INFO, 32 bytes.
 */
#define LC_HDR_MAC_INFO			"lakecrypt header mac v2"

/*
 * Version 3: a version 2 header whose reserved bytes at LC_HDR_OFF_JOURNAL
 * hold the journal of a DEK re-key of one segment in progress
 * (agent/lib/segrekey.c).  Everything else is version 2, byte for byte;
 * version 3 exists only while a re-key runs: the re-key's last write puts
 * the new DEK record in the table and goes back to version 2 with these
 * bytes zero.  A version 2 reader refuses version 3 (unknown version, and
 * non-zero reserved bytes) instead of using the old DEK on data that is
 * half re-encrypted.  Covered by the checksum and the MAC like every
 * other byte of [0, hdr_size).  Journal, offsets from LC_HDR_OFF_JOURNAL:
 *   +0    8   LC_RKJ_MAGIC
 *   +8    4   u32 segment being re-keyed (< segment_count)
 *   +12   4   u32 old generation (= the table record's; >= 1)
 *   +16   4   u32 new generation (= old + 1)
 *   +20   4   u32 zone: encryption sectors being rewritten (0..LC_RKJ_ZONE_MAX)
 *   +24   8   u64 done: encryption sectors of the segment (from its start)
 *               re-encrypted and synced before the zone; the zone follows
 *   +32   160 the new DEK record (DEK record layout, dek_stride bytes used,
 *               generation = new generation, wrapped under the KEK for
 *               (uuid, segment, new generation)), then zero
 *   +192  1024 LC_RKJ_ZONE_MAX digest pairs, for zone sector i at +192+16i:
 *               8 bytes SHA-256(old ciphertext)[0..8), 8 bytes
 *               SHA-256(new ciphertext)[0..8); zero beyond the zone
 *   +1216 832 zero
 */
#define LC_HDR_OFF_JOURNAL		LC_HDR_OFF_RESERVED3
#define LC_HDR_JOURNAL_SIZE		LC_HDR_RESERVED3_SIZE
#define LC_RKJ_MAGIC			"LCRKJNL1"
#define LC_RKJ_MAGIC_LEN		8
#define LC_RKJ_OFF_SEGMENT		8
#define LC_RKJ_OFF_OLD_GEN		12
#define LC_RKJ_OFF_NEW_GEN		16
#define LC_RKJ_OFF_ZONE			20
#define LC_RKJ_OFF_DONE			24
#define LC_RKJ_OFF_DEK			32
#define LC_RKJ_DEK_SIZE			160	/* largest dek_stride */
#define LC_RKJ_OFF_DIGESTS		192
#define LC_RKJ_DIGEST_LEN		8	/* per ciphertext, truncated SHA-256 */
#define LC_RKJ_ZONE_MAX			64	/* encryption sectors per zone */
#define LC_RKJ_END			(LC_RKJ_OFF_DIGESTS + LC_RKJ_ZONE_MAX * 2 * LC_RKJ_DIGEST_LEN)

/* Flags */
#define LC_HDR_F_DETACHED		0x00000001u	/* header kept apart from the data */
#define LC_HDR_F_ALL			LC_HDR_F_DETACHED

/*
 * DEK record, dek_stride bytes, record i for segment i:
 *   +0   4         u32 key generation
 *   +4   12        AES-GCM nonce
 *   +16  16        AES-GCM tag
 *   +32  key_size  wrapped DEK (ciphertext)
 *   then zero up to dek_stride
 * dek_stride = round_up(LC_DEK_REC_HDR + key_size, LC_DEK_REC_ALIGN)
 */
#define LC_DEK_REC_OFF_GENERATION	0
#define LC_DEK_REC_OFF_NONCE		4
#define LC_DEK_REC_OFF_TAG		16
#define LC_DEK_REC_OFF_CT		32
#define LC_DEK_REC_HDR			32
#define LC_DEK_REC_ALIGN		16
/* A record with generation 0 and nonce, tag and ciphertext all zero is a
 * crypto-shredded segment: it has no DEK, and no key is loaded for it.
 * Live DEKs have generations from 1 (format) up. */
#define LC_DEK_GEN_SHREDDED		0

/* Limits */
#define LC_HDR_KEY_SIZE_MIN		16
#define LC_HDR_KEY_SIZE_MAX		128	/* LAKECRYPT_MAX_KEY_SIZE */
#define LC_HDR_SEGMENTS_MIN		1
#define LC_HDR_SEGMENTS_MAX		(1u << 20)	/* LAKECRYPT_MAX_SEGMENTS */
#define LC_HDR_SEGMENT_SECTORS_MIN	8	/* LAKECRYPT_MIN_SEGMENT_SECTORS */
#define LC_HDR_SEGMENT_SECTORS_MAX	(1ull << 32)	/* 2 TiB */
#define LC_HDR_SECTOR_SIZE_MIN		512
#define LC_HDR_SECTOR_SIZE_MAX		4096
#define LC_HDR_MAX_SECTORS		(1ull << 55)	/* data end, in sectors */
#define LC_HDR_AREA_MIN			(1ull << 15)	/* 32 KiB */
#define LC_HDR_AREA_MAX			(1ull << 28)	/* 256 MiB */
#define LC_HDR_AREA_CANDIDATES		14	/* 2^15 .. 2^28 */
#define LC_HDR_DATA_ALIGN		(1ull << 20)	/* 1 MiB */
#define LC_HDR_CIPHER_SUFFIX		"-plain64"

#endif /* _LAKECRYPT_ONDISK_H */
