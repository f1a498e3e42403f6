// SPDX-License-Identifier: GPL-2.0
/*
 * lakecryptctl command line: a table of commands, one generic parser.
 * Every value is checked here, so a wrong argument never reaches the
 * agent and the message says what is wrong and what is expected.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "ctl.h"
#include "proto.h"
#include "registry.h"
#include "rotate.h"

enum opt_type {
	O_FLAG,		/* bool, no value */
	O_STR,		/* non-empty string */
	O_NAME,		/* device-mapper name: 1..127 chars, no '/' (table --name) */
	O_VNAME,	/* a volume name the agent takes: lc_name_check(), 1..63 */
	O_UINT,		/* whole number in [min, max] */
	O_SIZE,		/* byte size with K/M/G/T suffix, checked by check() */
	O_BYTES,	/* byte size with K/M/G/T suffix, a multiple of 512 */
	O_SECTOR,	/* 512, 1024, 2048 or 4096 */
	O_LIST,		/* comma-separated non-empty strings -> JSON array */
};

struct opt_spec {
	const char *name;	/* "--days" */
	enum opt_type type;
	bool required;
	const char *key;	/* member of "args"; NULL: kept locally */
	uint64_t min, max;
	const char *metavar;
	const char *help;
};

struct pos_spec {
	const char *metavar;
	const char *key;	/* member of "args"; NULL: kept locally */
	enum opt_type type;
	bool optional;
};

#define MAX_POS  2
#define MAX_OPTS 10

struct cmd_spec {
	const char *group;	/* "kms" or NULL for top-level */
	const char *name;
	const char *op;		/* NULL: local command */
	enum lc_ctl_action action;
	enum lc_ctl_render render;
	struct pos_spec pos[MAX_POS];
	struct opt_spec opts[MAX_OPTS];
	const char *summary;
	const char *details;
};

#define KEY_POS { { "KEY", "key_id", O_STR, false } }

static const struct cmd_spec cmds[] = {
	{ "kms", "create", "kms.create", LC_CTL_AGENT, LC_R_KEY, { { 0 } },
	  { { "--description", O_STR, false, "description", 0, 0, "TEXT", "what the key is for" } },
	  "create a customer-managed key (CMK) in the embedded local KMS", NULL },
	{ "kms", "list", "kms.list", LC_CTL_AGENT, LC_R_KEYS, { { 0 } }, { { 0 } },
	  "list the keys of the local KMS", NULL },
	{ "kms", "describe", "kms.describe", LC_CTL_AGENT, LC_R_KEY, KEY_POS, { { 0 } },
	  "show one key", NULL },
	{ "kms", "rotate", "kms.rotate", LC_CTL_AGENT, LC_R_KEY, KEY_POS, { { 0 } },
	  "add a new primary version; old versions still decrypt",
	  "Volumes keep working; 'lakecryptctl rewrap NAME' moves a volume's KEK to the\n"
	  "new version.\n" },
	{ "kms", "disable", "kms.disable", LC_CTL_AGENT, LC_R_KEY, KEY_POS, { { 0 } },
	  "disable a key: every use is denied (authoritative, triggers revocation)", NULL },
	{ "kms", "enable", "kms.enable", LC_CTL_AGENT, LC_R_KEY, KEY_POS, { { 0 } },
	  "enable a disabled key again", NULL },
	{ "kms", "deny", "kms.deny", LC_CTL_AGENT, LC_R_KEY, KEY_POS, { { 0 } },
	  "key policy: deny every use of a key while it stays enabled (as removing a grant)",
	  "What a key policy or grant change does in AWS KMS: encrypt and decrypt are\n"
	  "denied (AccessDenied, authoritative) while DescribeKey still says Enabled.\n"
	  "The agent's canary probe finds it; 'kms allow KEY' undoes it.\n" },
	{ "kms", "allow", "kms.allow", LC_CTL_AGENT, LC_R_KEY, KEY_POS, { { 0 } },
	  "key policy: allow the use of a key again", NULL },
	{ "kms", "schedule-deletion", "kms.schedule-deletion", LC_CTL_AGENT, LC_R_KEY, KEY_POS,
	  { { "--days", O_UINT, true, "days", 7, 30, "N", "waiting period, 7 to 30 days" } },
	  "schedule the destruction of a key after a waiting period", NULL },
	{ "kms", "cancel-deletion", "kms.cancel-deletion", LC_CTL_AGENT, LC_R_KEY, KEY_POS, { { 0 } },
	  "cancel a scheduled deletion (the key stays disabled)", NULL },
	{ "kms", "destroy", "kms.destroy", LC_CTL_AGENT, LC_R_KEY, KEY_POS,
	  { { "--now", O_FLAG, false, "now", 0, 0, NULL,
	      "destroy at once instead of when the scheduled deletion is due" } },
	  "destroy a key: data under it can never be decrypted again", NULL },

	{ "keyconfig", "create", "keyconfig.create", LC_CTL_AGENT, LC_R_KEYCONFIG,
	  { { "NAME", "name", O_STR, false } },
	  { { "--provider", O_STR, false, "provider", 0, 0, "PROVIDER", "KMS provider: local (default), aws-kms, azure-kv, gcp-kms, kmip or pkcs11" },
	    { "--key", O_STR, true, "key_ref", 0, 0, "KEY_REF", "the CMK, as the provider names it" } },
	  "register a key configuration (a CMK reference in one provider)", NULL },
	{ "keyconfig", "list", "keyconfig.list", LC_CTL_AGENT, LC_R_KEYCONFIGS, { { 0 } }, { { 0 } },
	  "list key configurations", NULL },
	{ "keyconfig", "show", "keyconfig.show", LC_CTL_AGENT, LC_R_KEYCONFIG,
	  { { "NAME", "name", O_STR, false } }, { { 0 } },
	  "show a key configuration, with the KMS principal bound to it (or unbound)", NULL },
	{ "keyconfig", "delete", "keyconfig.delete", LC_CTL_AGENT, LC_R_NONE,
	  { { "NAME", "name", O_STR, false } }, { { 0 } },
	  "delete a key configuration (refused while a workspace is bound to it)", NULL },

	{ "workspace", "bind", "workspace.bind", LC_CTL_AGENT, LC_R_BINDING,
	  { { "WORKSPACE", "workspace", O_STR, false } },
	  { { "--keyconfig", O_STR, true, "keyconfig", 0, 0, "NAME", "key configuration to use" },
	    { "--operators", O_LIST, false, "operators", 0, 0, "GROUP,...",
	      "groups whose members operate the workspace (default: unchanged, none for a new binding)" },
	    { "--devices", O_LIST, false, "devices", 0, 0, "PATTERN,...",
	      "absolute glob patterns of the block devices operators may use, e.g. /dev/disk/by-id/nvme-*" } },
	  "bind a workspace to a key configuration",
	  "Operators act only in the workspaces whose operator groups they belong to,\n"
	  "and format, open and cache only the block devices a pattern of the\n"
	  "workspace names (matched by device number, so any path to an allowed\n"
	  "device works and no other device does).  Admins are not restricted.\n" },
	{ "workspace", "unbind", "workspace.unbind", LC_CTL_AGENT, LC_R_NONE,
	  { { "WORKSPACE", "workspace", O_STR, false } }, { { 0 } },
	  "remove the binding of a workspace", NULL },
	{ "workspace", "list", "workspace.list", LC_CTL_AGENT, LC_R_BINDINGS, { { 0 } }, { { 0 } },
	  "list workspace bindings", NULL },
	{ "workspace", "hook", "workspace.hook", LC_CTL_AGENT, LC_R_BINDING,
	  { { "WORKSPACE", "workspace", O_STR, false } },
	  { { "--signal", O_STR, false, "signal", 0, 0, "SIG",
	      "signal the processes holding a revoked device or a file system on it: HUP, INT, QUIT, KILL, TERM, USR1, USR2" },
	    { "--stop-units", O_LIST, false, "stop_units", 0, 0, "UNIT,...", "systemd units to stop (systemctl stop)" },
	    { "--command", O_STR, false, "command", 0, 0, "PATH",
	      "program to run (absolute path, no arguments, no shell)" },
	    { "--timeout-ms", O_UINT, false, "timeout_ms", 100, 600000, "N",
	      "bound of each step, 100 to 600000 ms (default 10000)" },
	    { "--clear", O_FLAG, false, "clear", 0, 0, NULL, "remove the workspace's hook" } },
	  "set the compute termination hook run after a revocation in WORKSPACE",
	  "After the kernel confirms the volumes of WORKSPACE revoked (by the watcher,\n"
	  "'lakecryptctl revoke', or a revoke made in the kernel and reported by udev),\n"
	  "the agent stops the units, then signals the holders, then runs the command,\n"
	  "with LAKECRYPT_WORKSPACE, LAKECRYPT_VOLUMES and LAKECRYPT_REASON in its\n"
	  "environment.  The hook runs as root: admins only.  Setting replaces the\n"
	  "whole hook.  'status' shows the last run; the audit log has each one.\n" },
	{ "workspace", "rekey", "workspace.rekey", LC_CTL_AGENT, LC_R_RESULTS,
	  { { "WORKSPACE", "workspace", O_STR, false } },
	  { { "--keyconfig", O_STR, true, "keyconfig", 0, 0, "NAME", "the new key configuration" } },
	  "admins: move a workspace and its open volumes to another key configuration",
	  "The binding moves to NAME, then the KEK of every open volume of the\n"
	  "workspace is wrapped under NAME's CMK (which may be in another provider),\n"
	  "each in one atomic header update, online; no data is re-encrypted.\n"
	  "Each volume is reported; the exit code is 1 if any failed (run it again).\n"
	  "The old CMK can then be disabled.  Closed volumes: see lakecryptctl(8).\n" },

	{ NULL, "format", "volume.format", LC_CTL_AGENT, LC_R_VOLUME,
	  { { "DEVICE", "device", O_STR, false } },
	  { { "--workspace", O_STR, true, "workspace", 0, 0, "W", "workspace (its key configuration is used)" },
	    { "--project", O_STR, true, "project", 0, 0, "P", "project (volume) name" },
	    { "--header", O_STR, false, "header", 0, 0, "NAME|FILE",
	      "detached header: a name in the agent's header directory (admins: an absolute path)" },
	    { "--cipher", O_STR, false, "cipher", 0, 0, "SPEC",
	      "aes-xts-plain64 (default) or xchacha12,aes-adiantum-plain64" },
	    { "--key-size", O_UINT, false, "key_size", 16, 128, "BYTES", "DEK size in bytes: 32 or 64 for aes-xts (default 64)" },
	    { "--segment-size", O_SIZE, false, "segment_size", 0, 0, "SIZE",
	      "segment size, power of two from 4K to 1T (K/M/G/T suffix)" },
	    { "--sector-size", O_SECTOR, false, "sector_size", 0, 0, "N", "encryption unit: 512, 1024, 2048, 4096" },
	    { "--batch", O_FLAG, false, NULL, 0, 0, NULL, "do not ask for confirmation" },
	    { "--force", O_FLAG, false, "force", 0, 0, NULL,
	      "admins: overwrite a lakecrypt volume or any other signature on DEVICE" } },
	  "format DEVICE as a project volume (destroys its data)",
	  "Without --batch, asks for confirmation on the terminal, and fails when\n"
	  "standard input is not a terminal.  The agent refuses a device that holds\n"
	  "a lakecrypt volume or any signature libblkid knows (file system, LUKS,\n"
	  "partition table, ...) unless an admin gives --force.  Even with --force,\n"
	  "the storage of a volume that is open or being opened is refused under any\n"
	  "path (its loop device or backing file, a link, a partition of its disk):\n"
	  "close it first.\n" },
	{ NULL, "open", "volume.open", LC_CTL_AGENT, LC_R_VOLUME,
	  { { "DEVICE", "device", O_STR, false }, { "NAME", "name", O_VNAME, false } },
	  { { "--workspace", O_STR, true, "workspace", 0, 0, "W", "workspace the volume belongs to" },
	    { "--header", O_STR, false, "header", 0, 0, "NAME|FILE",
	      "detached header: a name in the agent's header directory (admins: an absolute path)" } },
	  "open a project volume as /dev/mapper/NAME (one KMS call)",
	  "While the agent cannot be reached (not started yet, restarting), hangs up\n"
	  "mid-request or answers that the KMS is unavailable, it tries again (0.25 s,\n"
	  "doubling to 5 s) until --timeout runs out (0: forever), saying each retry\n"
	  "on stderr.\n" },
	{ NULL, "cache", "cache.open", LC_CTL_AGENT, LC_R_VOLUME,
	  { { "DEVICE", "device", O_STR, false }, { "NAME", "name", O_VNAME, false } },
	  { { "--workspace", O_STR, true, "workspace", 0, 0, "W", "workspace the cache belongs to" },
	    { "--segment-size", O_SIZE, false, "segment_size", 0, 0, "SIZE",
	      "segment size, power of two from 4K to 1T (K/M/G/T suffix)" },
	    { "--force", O_FLAG, false, "force", 0, 0, NULL,
	      "admins: use DEVICE although it holds a lakecrypt volume or another signature" } },
	  "open DEVICE as an ephemeral cache volume /dev/mapper/NAME",
	  "The key exists only in memory: nothing is written to DEVICE's header, and\n"
	  "closing or revoking the cache shreds it.  A device that holds a lakecrypt\n"
	  "volume or any signature libblkid knows is refused unless an admin gives --force;\n"
	  "the storage of an open volume is refused under any path, even with --force.\n"
	  "Retried as open is, until --timeout runs out.\n" },
	{ NULL, "close", "volume.close", LC_CTL_AGENT, LC_R_NONE,
	  { { "NAME", "name", O_VNAME, false } },
	  { { "--workspace", O_STR, false, "workspace", 0, 0, "W",
	      "close NAME only if it is a volume of workspace W (lakecrypttab units give it)" },
	    { "--if-open", O_FLAG, false, "if_open", 0, 0, NULL,
	      "succeed when no volume is open under NAME (lakecrypttab units' stop)" } },
	  "close an open volume or cache",
	  "With --if-open, a NAME that nothing is open under is no failure (exit 0,\n"
	  "said on standard error); every other failure still is one.\n" },
	{ NULL, "migrate", "volume.migrate", LC_CTL_AGENT, LC_R_VOLUME,
	  { { "DEVICE", "device", O_STR, false } },
	  { { "--workspace", O_STR, true, "workspace", 0, 0, "W", "workspace the volume belongs to" },
	    { "--header", O_STR, false, "header", 0, 0, "NAME|FILE", "detached header" } },
	  "admins: migrate a closed volume's version 1 header to version 2",
	  "One unwrap under the old context, every DEK record checked, one wrap under\n"
	  "the identity context, and the header sealed with its MAC.  Version 1 did\n"
	  "not authenticate cipher, sizes or labels: check them with dump first.\n" },
	{ NULL, "rewrap", "volume.rewrap", LC_CTL_AGENT, LC_R_RESULTS,
	  { { "NAME", "name", O_VNAME, true } },
	  { { "--all", O_FLAG, false, "all", 0, 0, NULL, "every open project volume (instead of NAME)" },
	    { "--keyconfig", O_STR, false, "keyconfig", 0, 0, "NAME",
	      "with --all: only the volumes under this key configuration" } },
	  "re-wrap the KEK of open volume NAME (or --all) under the CMK's current version",
	  "One wrap call per volume, one atomic header update; no data and no DEK\n"
	  "changes.  With --all, every open project volume the agent holds the KEK\n"
	  "of is tried, one failure does not stop the others, and each is reported;\n"
	  "the exit code is 1 if any failed.  Closed volumes keep their KEK wrapped\n"
	  "under the old CMK version, which still decrypts: re-wrap them once open.\n" },
	{ NULL, "rekey", "volume.rekey", LC_CTL_AGENT, LC_R_VOLUME,
	  { { "DEVICE", "device", O_STR, false } },
	  { { "--workspace", O_STR, true, "workspace", 0, 0, "W", "workspace the volume belongs to" },
	    { "--from", O_STR, true, "from", 0, 0, "KEYCONFIG", "the key configuration the volume is under now" },
	    { "--header", O_STR, false, "header", 0, 0, "NAME|FILE", "detached header" } },
	  "admins: re-key a closed volume from KEYCONFIG to its workspace's binding",
	  "For the closed volumes of a workspace after 'workspace rekey': one unwrap\n"
	  "under the old CMK, one wrap under the new one, one atomic header update;\n"
	  "no data is re-encrypted.\n" },
	{ NULL, "rekey-segment", "volume.rekey-segment", LC_CTL_AGENT, LC_R_VOLUME,
	  { { "DEVICE", "device", O_STR, false } },
	  { { "--workspace", O_STR, true, "workspace", 0, 0, "W", "workspace the volume belongs to" },
	    { "--segment", O_STR, true, "segments", 0, 0, "N|A-B", "segment or inclusive range of segments, from 0" },
	    { "--header", O_STR, false, "header", 0, 0, "NAME|FILE", "detached header" },
	    { "--resume", O_FLAG, false, "resume", 0, 0, NULL,
	      "finish a re-key that was interrupted (then go on to the end of the range)" },
	    { "--accept-damaged-journal-sector", O_UINT, false, "accept_damaged_sector", 0,
	      UINT32_MAX, "N", "with --resume: give up sector N of the interrupted zone (its data may be lost)" } },
	  "admins: new DEKs for segments of a closed volume, their data re-encrypted",
	  "Offline (the volume closed): each segment gets a new DEK with generation + 1\n"
	  "and its data is re-encrypted (AES-XTS volumes only), journaled in the header\n"
	  "so that a crash or power cut at any point can be resumed: the volume then\n"
	  "refuses to open until 'rekey-segment DEVICE --segment N --resume' finishes.\n"
	  "One unwrap of the KEK; it may take a while for large segments.\n"
	  "If a sector of the interrupted zone is damaged (neither its old nor its new\n"
	  "ciphertext), --resume stops naming it; --accept-damaged-journal-sector N\n"
	  "then gives up that sector's data (at most one encryption sector) and goes on.\n" },
	{ NULL, "rotate-kek", "volume.rotate-kek", LC_CTL_AGENT, LC_R_VOLUME,
	  { { "NAME", "name", O_VNAME, false } }, { { 0 } },
	  "admins: give open volume NAME a fresh KEK (online, no data re-encrypted)",
	  "Every DEK is re-wrapped under a new random KEK, the new KEK is wrapped by\n"
	  "the CMK (one wrap call), and the header (MAC keyed from the new KEK) is\n"
	  "written in one crash-safe update.  The old KEK is wiped from memory.\n" },
	{ NULL, "resize", "volume.resize", LC_CTL_AGENT, LC_R_VOLUME,
	  { { "NAME", "name", O_VNAME, false } },
	  { { "--size", O_BYTES, false, "size", 0, 0, "SIZE",
	      "new size of /dev/mapper/NAME in bytes (K/M/G/T suffix); default: all the device offers" } },
	  "grow or shrink open volume NAME online (no KMS call)",
	  "Grow the backing device first (lvextend, a cloud volume resize, losetup -c),\n"
	  "then resize the volume, then the file system.  Shrinking is the reverse:\n"
	  "shrink the file system first; the segments beyond the new size lose their\n"
	  "keys and their data is unrecoverable.  New segments get fresh DEKs; the\n"
	  "header is updated crash-safely and the table reloaded without a pause in\n"
	  "I/O beyond the reload itself.\n" },
	{ NULL, "shred", "volume.shred", LC_CTL_AGENT, LC_R_SHRED,
	  { { "NAME", "name", O_VNAME, false } },
	  { { "--segment", O_STR, true, "segments", 0, 0, "N|A-B", "segment or inclusive range of segments, from 0" },
	    { "--batch", O_FLAG, false, NULL, 0, 0, NULL, "do not ask for confirmation" } },
	  "admins: crypto-shred segments of open volume NAME (their data is lost)",
	  "The target forgets the segments' keys (their I/O fails from then on), their\n"
	  "wrapped DEKs are destroyed in both header copies together with a KEK\n"
	  "rotation, and their data range is zeroed and discarded.  Every other\n"
	  "segment stays readable.  Without --batch, asks for confirmation.\n" },
	{ NULL, "ping", "ping", LC_CTL_AGENT, LC_R_PING, { { 0 } }, { { 0 } },
	  "check that the agent answers, and show your role", NULL },
	{ NULL, "status", "status", LC_CTL_AGENT, LC_R_STATUS,
	  { { "NAME", "name", O_VNAME, true } }, { { 0 } },
	  "show open volumes (all, or NAME in detail), CMK states and KMS call counters", NULL },
	{ NULL, "revoke", "revoke", LC_CTL_AGENT, LC_R_REVOKED, { { 0 } },
	  { { "--keyconfig", O_STR, false, "keyconfig", 0, 0, "NAME", "revoke every volume under this key configuration" },
	    { "--cmk", O_STR, false, "cmk", 0, 0, "KEY", "revoke every volume under this CMK" } },
	  "kill switch: revoke every open volume under a key configuration or CMK",
	  "Exactly one of --keyconfig and --cmk.  I/O fails at once, keys are wiped\n"
	  "from the kernel and the agent, cache volumes are shredded.\n" },
	{ "revocation", "list", "revocation.list", LC_CTL_AGENT, LC_R_REVOCATIONS, { { 0 } }, { { 0 } },
	  "admins: list the fleet's revocation records in etcd",
	  "With [registry] backend = etcd: every record under <prefix>revocations/,\n"
	  "read from etcd: its id, provider, CMK (cmk_id or key reference), key\n"
	  "configuration or the whole CMK, the agent that wrote it, the cause, the\n"
	  "time and etcd's mod_revision (what 'revocation clear --revision' takes).\n"
	  "Every agent acts on a record (kills its volumes under the CMK) when it is\n"
	  "written and again at every full read of the registry, until it is cleared.\n" },
	{ "revocation", "clear", "revocation.clear", LC_CTL_AGENT, LC_R_CLEARED,
	  { { "RECORD", "record", O_STR, false } },
	  { { "--revision", O_UINT, false, "revision", 1, INT64_MAX, "N",
	      "the record's mod_revision as 'revocation list' showed it: refused if it was written again since" },
	    { "--force", O_FLAG, false, "force", 0, 0, NULL,
	      "clear it even though the KMS still denies the CMK (e.g. a CMK destroyed for good)" } },
	  "admins: delete one revocation record from etcd (it never reopens anything)",
	  "RECORD is the id 'revocation list' shows (or the whole key).  The delete is\n"
	  "one etcd transaction that compares the record's mod_revision: with\n"
	  "--revision, the one you looked at; without, the one read just before (and\n"
	  "said in the answer).  A record written again since is never lost: clear\n"
	  "refuses and says its revision now.  The agent first asks the KMS about the\n"
	  "CMK (the watcher's probe, through each key configuration naming it) and\n"
	  "refuses while it still denies, unless --force.  Clearing opens nothing:\n"
	  "volumes the record killed are opened again by a normal open, which asks\n"
	  "the KMS.\n" },
	{ NULL, "check", "check", LC_CTL_AGENT, LC_R_CHECK, { { 0 } },
	  { { "--cmk", O_STR, false, "cmk", 0, 0, "KEY", "probe only this CMK (reference or id)" } },
	  "probe now every CMK an open volume depends on, as the watcher does",
	  "Each probe asks the key's state and, if enabled, unwraps the key\n"
	  "configuration's canary (a real Decrypt: a key policy or grant that denies\n"
	  "it is found though the state says enabled).  A probe counts towards the\n"
	  "[revocation] confirmation: enough denials revoke, as the watcher would.\n"
	  "Prints each CMK's answer and the KMS calls it cost.\n" },
	{ NULL, "notify-revoked", "volume.revoked", LC_CTL_AGENT, LC_R_VOLUME,
	  { { "NAME", "name", O_VNAME, false } },
	  { { "--volume", O_STR, false, "volume", 0, 0, "UUID", "volume uuid the kernel event names" } },
	  "tell the agent the kernel revoked /dev/mapper/NAME (run by udev)",
	  "udev runs this on the target's change uevent LAKECRYPT_EVENT=revoked.  The\n"
	  "agent checks the target's status itself, then purges the keys, wipes the\n"
	  "KEK, audits the revocation and shows it in status.\n" },
	{ NULL, "audit", "audit.tail", LC_CTL_AGENT, LC_R_AUDIT, { { 0 } },
	  { { "--lines", O_UINT, false, "lines", 1, 10000000, "N", "number of records, 1 to 10000000 (default 50)" } },
	  "show the last records of the audit log",
	  "The agent answers in pages (at most 10000 records, 256 KiB each); the\n"
	  "command asks page after page on one connection and prints them oldest\n"
	  "first.\n" },
	{ NULL, "dump", NULL, LC_CTL_DUMP, LC_R_NONE,
	  { { "DEVICE_OR_HEADER", NULL, O_STR, false } }, { { 0 } },
	  "print a volume header (local, no agent; never key material)",
	  "Wrapped keys are shown only as lengths and fingerprints.  Both header\n"
	  "copies are checked and their state reported.\n" },
	{ NULL, "table", NULL, LC_CTL_TABLE, LC_R_NONE,
	  { { "DEVICE_OR_HEADER", NULL, O_STR, false } },
	  { { "--name", O_NAME, false, NULL, 0, 0, "NAME", "print a full 'dmsetup create NAME' command" },
	    { "--device", O_STR, false, NULL, 0, 0, "DEV", "backing device, for a detached header" } },
	  "print the dmsetup table line of a volume (local, no agent; never keys)",
	  "The key is named by its keyring description prefix \"lakecrypt:<uuid>:\";\n"
	  "the DEKs themselves must be loaded into the keyring and then into the\n"
	  "target (dmsetup message NAME 0 key load all) by other means.\n" },
};

#define NCMDS (sizeof(cmds) / sizeof(cmds[0]))

static const char *const groups[] = { "kms", "keyconfig", "workspace", "revocation" };

static const char global_usage[] =
	"Usage: " LC_CTL_PROG " [--socket PATH] [--json] [--timeout SEC] COMMAND [ARGS...]\n"
	"       " LC_CTL_PROG " COMMAND --help\n";

static const char exit_codes[] =
	"Exit codes:\n"
	"  0  success\n"
	"  1  the operation failed (invalid input, misconfiguration, internal error)\n"
	"  2  usage error: wrong command line\n"
	"  3  the agent cannot be reached or did not answer\n"
	"  4  refused: your role (or socket permission) does not allow this\n"
	"  5  denied by the KMS: authoritative (key disabled, destroyed, no access)\n"
	"  6  KMS unavailable: transient, retry later\n";

static const char global_opts[] =
	"Global options:\n"
	"  --socket PATH   agent control socket (default: [agent] socket of the agent's\n"
	"                  agent.conf, $LAKECRYPT_AGENT_CONF or " LC_CONFIG_DEFAULT_PATH ",\n"
	"                  else " LC_PROTO_DEFAULT_SOCKET ")\n"
	"  --json          print the agent's JSON result instead of text\n"
	"  --timeout SEC   seconds to wait for the agent, 0 = forever (default 30)\n"
	"  -h, --help      show help (also after any command)\n"
	"  -V, --version   show the version\n";

static void set_err(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (!err || !len)
		return;
	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
}

int lc_ctl_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (!s || !*s)
		return -EINVAL;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
			return -ERANGE;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (v < min || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

int lc_ctl_parse_size(const char *s, uint64_t *out)
{
	char num[32];
	const char *p = s;
	size_t n = 0;
	unsigned int shift = 0;
	uint64_t v;
	int r;

	if (!s)
		return -EINVAL;
	while (*p >= '0' && *p <= '9')
		p++;
	n = (size_t)(p - s);
	if (!n || n >= sizeof(num))
		return n ? -ERANGE : -EINVAL;
	memcpy(num, s, n);
	num[n] = '\0';
	switch (*p) {
	case '\0':
		break;
	case 'k': case 'K': shift = 10; p++; break;
	case 'm': case 'M': shift = 20; p++; break;
	case 'g': case 'G': shift = 30; p++; break;
	case 't': case 'T': shift = 40; p++; break;
	default:
		return -EINVAL;
	}
	if (shift && (!strcmp(p, "iB") || !strcmp(p, "B")))
		p += strlen(p);
	if (*p)
		return -EINVAL;
	r = lc_ctl_parse_uint(num, 0, UINT64_MAX, &v);
	if (r < 0)
		return r;
	if (shift && v > (UINT64_MAX >> shift))
		return -ERANGE;
	*out = v << shift;
	return 0;
}

void lc_ctl_try_hint(const char *topic, char *buf, size_t len)
{
	snprintf(buf, len, "Try '" LC_CTL_PROG "%s%s --help'.", topic && *topic ? " " : "",
		 topic ? topic : "");
}

static void spec_topic(const struct cmd_spec *c, char *buf, size_t len)
{
	snprintf(buf, len, "%s%s%s", c->group ? c->group : "", c->group ? " " : "", c->name);
}

static const struct cmd_spec *find_cmd(const char *group, const char *name)
{
	for (size_t i = 0; i < NCMDS; i++)
		if (((!group && !cmds[i].group) || (group && cmds[i].group && !strcmp(group, cmds[i].group))) &&
		    !strcmp(name, cmds[i].name))
			return &cmds[i];
	return NULL;
}

static bool is_group(const char *s)
{
	for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]); i++)
		if (!strcmp(s, groups[i]))
			return true;
	return false;
}

static void usage_line(FILE *f, const struct cmd_spec *c)
{
	char t[48];

	spec_topic(c, t, sizeof(t));
	fprintf(f, "%s %s", LC_CTL_PROG, t);
	for (int i = 0; i < MAX_POS && c->pos[i].metavar; i++)
		fprintf(f, c->pos[i].optional ? " [%s]" : " %s", c->pos[i].metavar);
	if (!strcmp(c->name, "revoke") && !c->group) {
		fprintf(f, " (--keyconfig NAME | --cmk KEY)");
		return;
	}
	for (int i = 0; i < MAX_OPTS && c->opts[i].name; i++) {
		const struct opt_spec *o = &c->opts[i];

		fprintf(f, " %s%s%s%s%s", o->required ? "" : "[", o->name, o->metavar ? " " : "",
			o->metavar ? o->metavar : "", o->required ? "" : "]");
	}
}

static void cmd_help(FILE *f, const struct cmd_spec *c)
{
	fprintf(f, "Usage: ");
	usage_line(f, c);
	fprintf(f, "\n\n%c%s.\n", c->summary[0] - 'a' + 'A', c->summary + 1);
	if (c->details)
		fprintf(f, "\n%s", c->details);
	if (c->opts[0].name) {
		fprintf(f, "\nOptions:\n");
		for (int i = 0; i < MAX_OPTS && c->opts[i].name; i++) {
			const struct opt_spec *o = &c->opts[i];
			char lhs[64];

			snprintf(lhs, sizeof(lhs), "%s%s%s", o->name, o->metavar ? " " : "",
				 o->metavar ? o->metavar : "");
			fprintf(f, "  %-22s %s%s\n", lhs, o->help, o->required ? " (required)" : "");
		}
	}
	fprintf(f, "\n%s\n%s", global_opts, exit_codes);
}

int lc_ctl_help(FILE *f, const char *topic)
{
	char group[24] = "", t[48];
	const char *sp;

	if (!topic || !*topic) {
		fprintf(f, "%s\nAdministration of lakecrypt volumes through lakecrypt-agent.\n\nCommands:\n",
			global_usage);
		for (size_t i = 0; i < NCMDS; i++) {
			spec_topic(&cmds[i], t, sizeof(t));
			fprintf(f, "  %-24s %s\n", t, cmds[i].summary);
		}
		fprintf(f, "\n%s\n%s", global_opts, exit_codes);
		return 0;
	}
	sp = strchr(topic, ' ');
	if (!sp) {
		const struct cmd_spec *c = find_cmd(NULL, topic);

		if (c) {
			cmd_help(f, c);
			return 0;
		}
		if (!is_group(topic))
			return -ENOENT;
		fprintf(f, "Usage: %s %s SUBCOMMAND [ARGS...]\n\nSubcommands:\n", LC_CTL_PROG, topic);
		for (size_t i = 0; i < NCMDS; i++)
			if (cmds[i].group && !strcmp(cmds[i].group, topic))
				fprintf(f, "  %-20s %s\n", cmds[i].name, cmds[i].summary);
		fprintf(f, "\nRun '%s %s SUBCOMMAND --help' for its arguments.\n", LC_CTL_PROG, topic);
		return 0;
	}
	if ((size_t)(sp - topic) >= sizeof(group))
		return -ENOENT;
	memcpy(group, topic, (size_t)(sp - topic));
	group[sp - topic] = '\0';
	{
		const struct cmd_spec *c = find_cmd(group, sp + 1);

		if (!c)
			return -ENOENT;
		cmd_help(f, c);
	}
	return 0;
}

void lc_ctl_cmd_free(struct lc_ctl_cmd *cmd)
{
	if (!cmd)
		return;
	json_object_put(cmd->args);
	cmd->args = NULL;
}

static bool valid_dm_name(const char *s)
{
	size_t n = strlen(s);

	return n >= 1 && n <= 127 && !strchr(s, '/') && strcmp(s, ".") && strcmp(s, "..");
}

/* Check one value and add it to args (if @key).  0 or -EINVAL with @err. */
static int take_value(const char *what, enum opt_type type, uint64_t min, uint64_t max,
		      const char *key, const char *val, struct json_object *args, char *err,
		      size_t errlen)
{
	struct json_object *j = NULL;
	uint64_t v;
	int r;

	switch (type) {
	case O_FLAG:
		j = json_object_new_boolean(1);
		break;
	case O_STR:
		if (!*val) {
			set_err(err, errlen, "%s must not be empty", what);
			return -EINVAL;
		}
		j = json_object_new_string(val);
		break;
	case O_NAME:
		if (!valid_dm_name(val)) {
			set_err(err, errlen, "%s \"%.64s\" is not a usable device name: expected 1 to 127 characters without '/'",
				what, val);
			return -EINVAL;
		}
		j = json_object_new_string(val);
		break;
	case O_VNAME: {
		/* The agent's own check and message (volume names are header
		 * names: 1 to 63 characters), so a name it would refuse is
		 * never sent. */
		struct lc_error e = { 0 };

		if (lc_name_check("volume name", val, &e) < 0) {
			set_err(err, errlen, "%s: %s", what, e.msg);
			return -EINVAL;
		}
		j = json_object_new_string(val);
		break;
	}
	case O_UINT:
		r = lc_ctl_parse_uint(val, min, max, &v);
		if (r < 0) {
			set_err(err, errlen, "%s must be a whole number from %" PRIu64 " to %" PRIu64 ", got \"%.64s\"",
				what, min, max, val);
			return -EINVAL;
		}
		j = json_object_new_int64((int64_t)v);
		break;
	case O_SIZE:
		r = lc_ctl_parse_size(val, &v);
		if (r < 0) {
			set_err(err, errlen, "%s must be a size in bytes with an optional K, M, G or T suffix (e.g. 1M), got \"%.64s\"",
				what, val);
			return -EINVAL;
		}
		if (v < 4096 || v > (1ULL << 40) || (v & (v - 1))) {
			set_err(err, errlen, "%s must be a power of two from 4K to 1T, got \"%.64s\" (%" PRIu64 " bytes)",
				what, val, v);
			return -EINVAL;
		}
		j = json_object_new_int64((int64_t)v);
		break;
	case O_BYTES:
		r = lc_ctl_parse_size(val, &v);
		if (r < 0 || !v || v % 512 || v > (uint64_t)INT64_MAX) {
			set_err(err, errlen, "%s must be a size in bytes, a multiple of 512, with an optional K, M, G or T suffix (e.g. 64G), got \"%.64s\"",
				what, val);
			return -EINVAL;
		}
		j = json_object_new_int64((int64_t)v);
		break;
	case O_LIST: {
		const char *p = val;

		j = json_object_new_array();
		while (j) {
			size_t n = strcspn(p, ",");

			if (!n) {
				json_object_put(j);
				set_err(err, errlen, "%s: \"%.64s\" has an empty entry: expected a comma-separated list",
					what, val);
				return -EINVAL;
			}
			json_object_array_add(j, json_object_new_string_len(p, (int)n));
			if (!p[n])
				break;
			p += n + 1;
		}
		break;
	}
	case O_SECTOR:
		r = lc_ctl_parse_uint(val, 512, 4096, &v);
		if (r < 0 || (v != 512 && v != 1024 && v != 2048 && v != 4096)) {
			set_err(err, errlen, "%s must be 512, 1024, 2048 or 4096, got \"%.64s\"", what, val);
			return -EINVAL;
		}
		j = json_object_new_int64((int64_t)v);
		break;
	}
	if (!j) {
		set_err(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if (!key) {
		json_object_put(j);
		return 0;
	}
	json_object_object_add(args, key, j);
	return 0;
}

static int parse_timeout(const char *val, struct lc_ctl_cmd *cmd, char *err, size_t errlen)
{
	uint64_t v;

	if (lc_ctl_parse_uint(val, 0, LC_CTL_TIMEOUT_MAX_S, &v) < 0) {
		set_err(err, errlen, "--timeout must be a whole number of seconds from 0 (forever) to %d, got \"%.64s\"",
			LC_CTL_TIMEOUT_MAX_S, val);
		return -EINVAL;
	}
	cmd->timeout_ms = v ? (int)(v * 1000) : -1;
	return 0;
}

/* Global options may appear anywhere.  Returns 1 if @a was one (and
 * consumed *i further), 0 if not, < 0 on error. */
static int global_opt(int argc, char *const argv[], int *i, struct lc_ctl_cmd *cmd, bool *help,
		      bool *version, char *err, size_t errlen)
{
	const char *a = argv[*i], *val = NULL;
	const char *eq = strchr(a, '=');
	size_t n = eq ? (size_t)(eq - a) : strlen(a);

	if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
		*help = true;
		return 1;
	}
	if (!strcmp(a, "--version") || !strcmp(a, "-V")) {
		*version = true;
		return 1;
	}
	if (!strcmp(a, "--json")) {
		cmd->json = true;
		return 1;
	}
	if ((n == 8 && !strncmp(a, "--socket", n)) || (n == 9 && !strncmp(a, "--timeout", n))) {
		if (eq) {
			val = eq + 1;
		} else if (*i + 1 < argc) {
			val = argv[++*i];
		} else {
			set_err(err, errlen, "%.*s needs a value: %s", (int)n, a,
				n == 8 ? "the path of the agent's socket" : "a number of seconds");
			return -EINVAL;
		}
		if (n == 9)
			return parse_timeout(val, cmd, err, errlen) < 0 ? -EINVAL : 1;
		if (!*val) {
			set_err(err, errlen, "--socket must not be empty: expected the path of the agent's socket");
			return -EINVAL;
		}
		cmd->socket = val;
		return 1;
	}
	return 0;
}

static const struct opt_spec *find_opt(const struct cmd_spec *c, const char *a, size_t n)
{
	for (int i = 0; i < MAX_OPTS && c->opts[i].name; i++)
		if (strlen(c->opts[i].name) == n && !strncmp(c->opts[i].name, a, n))
			return &c->opts[i];
	return NULL;
}

static void list_cmds(char *buf, size_t len, const char *group)
{
	size_t off = 0;

	buf[0] = '\0';
	if (!group)
		for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]) && off < len; i++)
			off += (size_t)snprintf(buf + off, len - off, "%s%s", off ? ", " : "", groups[i]);
	for (size_t i = 0; i < NCMDS && off < len; i++)
		if ((!group && !cmds[i].group) || (group && cmds[i].group && !strcmp(group, cmds[i].group)))
			off += (size_t)snprintf(buf + off, len - off, "%s%s", off ? ", " : "", cmds[i].name);
}

int lc_ctl_parse(int argc, char *const argv[], struct lc_ctl_cmd *cmd, char *err, size_t errlen)
{
	const struct cmd_spec *c = NULL;
	const char *pos[MAX_POS + 1];
	const char *group = NULL;
	bool help = false, version = false, no_more_opts = false, seen[MAX_OPTS] = { false };
	int npos = 0, r;
	char list[512];

	memset(cmd, 0, sizeof(*cmd));
	cmd->socket = LC_PROTO_DEFAULT_SOCKET;
	cmd->timeout_ms = LC_CTL_TIMEOUT_S * 1000;
	cmd->args = json_object_new_object();
	if (!cmd->args) {
		set_err(err, errlen, "out of memory");
		return LC_CTL_EXIT_FAILED;
	}
	if (err && errlen)
		err[0] = '\0';

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!no_more_opts && a[0] == '-' && a[1]) {
			const struct opt_spec *o;
			const char *eq, *val;
			size_t n;

			if (!strcmp(a, "--")) {
				no_more_opts = true;
				continue;
			}
			r = global_opt(argc, argv, &i, cmd, &help, &version, err, errlen);
			if (r < 0)
				return LC_CTL_EXIT_USAGE;
			if (r > 0)
				continue;
			if (!c) {
				set_err(err, errlen, "unknown option \"%.64s\": before the command only --socket, --json, --timeout, --help and --version are known; command options go after the command",
					a);
				return LC_CTL_EXIT_USAGE;
			}
			eq = strchr(a, '=');
			n = eq ? (size_t)(eq - a) : strlen(a);
			o = find_opt(c, a, n);
			if (!o) {
				set_err(err, errlen, "%s: unknown option \"%.*s\"", cmd->topic, (int)(n > 64 ? 64 : n), a);
				return LC_CTL_EXIT_USAGE;
			}
			if (seen[o - c->opts]) {
				set_err(err, errlen, "%s: %s given twice: expected it at most once", cmd->topic, o->name);
				return LC_CTL_EXIT_USAGE;
			}
			seen[o - c->opts] = true;
			if (o->type == O_FLAG) {
				if (eq) {
					set_err(err, errlen, "%s: %s takes no value", cmd->topic, o->name);
					return LC_CTL_EXIT_USAGE;
				}
				val = "";
			} else if (eq) {
				val = eq + 1;
			} else if (i + 1 < argc) {
				val = argv[++i];
			} else {
				set_err(err, errlen, "%s: %s needs a value: %s %s (%s)", cmd->topic, o->name,
					o->name, o->metavar, o->help);
				return LC_CTL_EXIT_USAGE;
			}
			{
				char what[96];

				snprintf(what, sizeof(what), "%s: %s", cmd->topic, o->name);
				if (take_value(what, o->type, o->min, o->max, o->key, val, cmd->args, err, errlen) < 0)
					return LC_CTL_EXIT_USAGE;
			}
			if (!strcmp(o->name, "--batch"))
				cmd->confirm = false;
			else if (!strcmp(o->name, "--name"))
				cmd->name = val;
			else if (!strcmp(o->name, "--device"))
				cmd->device = val;
			continue;
		}
		if (!c) {
			if (!group && is_group(a)) {
				group = a;
				snprintf(cmd->topic, sizeof(cmd->topic), "%s", a);
				continue;
			}
			c = find_cmd(group, a);
			if (!c) {
				if (help && !group)
					break;	/* "lakecryptctl --help foo": global help */
				list_cmds(list, sizeof(list), group);
				set_err(err, errlen, "unknown %scommand \"%.64s\": expected one of %s",
					group ? "sub" : "", a, list);
				return LC_CTL_EXIT_USAGE;
			}
			spec_topic(c, cmd->topic, sizeof(cmd->topic));
			cmd->confirm = c->action == LC_CTL_AGENT && !c->group &&
				       (!strcmp(c->name, "format") || !strcmp(c->name, "shred"));
			/* --force may already have been seen?  No: command options
			 * before the command are refused above. */
			continue;
		}
		if (npos >= MAX_POS || !c->pos[npos].metavar) {
			set_err(err, errlen, "%s: unexpected argument \"%.64s\"", cmd->topic, a);
			if (!help)
				return LC_CTL_EXIT_USAGE;
			if (err && errlen)
				err[0] = '\0';
			continue;
		}
		pos[npos++] = a;
	}

	if (version && !help) {
		cmd->action = LC_CTL_VERSION;
		return LC_CTL_EXIT_OK;
	}
	if (help) {
		cmd->action = LC_CTL_HELP;
		return LC_CTL_EXIT_OK;
	}
	if (!c) {
		if (group) {
			list_cmds(list, sizeof(list), group);
			set_err(err, errlen, "%s needs a subcommand: one of %s", group, list);
		} else {
			set_err(err, errlen, "no command given");
		}
		return LC_CTL_EXIT_USAGE;
	}

	/* positional arguments */
	for (int k = 0; k < MAX_POS && c->pos[k].metavar; k++) {
		const struct pos_spec *p = &c->pos[k];
		char what[96];

		if (k >= npos) {
			if (p->optional)
				break;
			set_err(err, errlen, "%s: missing %s: expected '", cmd->topic, p->metavar);
			{
				char *u = NULL;
				size_t ulen = 0;
				FILE *m = open_memstream(&u, &ulen);

				if (m) {
					usage_line(m, c);
					fclose(m);
					if (u)
						snprintf(err + strlen(err), errlen - strlen(err), "%s'", u);
					free(u);
				}
			}
			return LC_CTL_EXIT_USAGE;
		}
		snprintf(what, sizeof(what), "%s: %s", cmd->topic, p->metavar);
		if (take_value(what, p->type, 0, 0, p->key, pos[k], cmd->args, err, errlen) < 0)
			return LC_CTL_EXIT_USAGE;
	}

	/* required options */
	for (int k = 0; k < MAX_OPTS && c->opts[k].name; k++) {
		const struct opt_spec *o = &c->opts[k];

		if (o->required && !seen[k]) {
			set_err(err, errlen, "%s: %s %s is required (%s)", cmd->topic, o->name, o->metavar,
				o->help);
			return LC_CTL_EXIT_USAGE;
		}
	}

	cmd->action = c->action;
	cmd->op = c->op;
	cmd->render = c->render;

	/* per-command rules */
	if (c->action == LC_CTL_DUMP || c->action == LC_CTL_TABLE) {
		cmd->path = pos[0];
		if (!*cmd->path) {
			set_err(err, errlen, "%s: DEVICE_OR_HEADER must not be empty", cmd->topic);
			return LC_CTL_EXIT_USAGE;
		}
		if (cmd->device && !*cmd->device) {
			set_err(err, errlen, "%s: --device must not be empty", cmd->topic);
			return LC_CTL_EXIT_USAGE;
		}
	} else if (!strcmp(cmd->topic, "kms destroy")) {
		if (!json_object_object_get_ex(cmd->args, "now", NULL))
			json_object_object_add(cmd->args, "now", json_object_new_boolean(0));
	} else if (!strcmp(cmd->topic, "keyconfig create")) {
		struct json_object *pv;
		const char *prov = "local";

		if (json_object_object_get_ex(cmd->args, "provider", &pv))
			prov = json_object_get_string(pv);
		if (strcmp(prov, "local") && strcmp(prov, "aws-kms") && strcmp(prov, "azure-kv") &&
		    strcmp(prov, "gcp-kms") && strcmp(prov, "kmip") && strcmp(prov, "pkcs11")) {
			set_err(err, errlen, "keyconfig create: unknown provider \"%.64s\": expected \"local\" (the embedded KMS), \"aws-kms\" (AWS KMS, --key a key ARN), \"azure-kv\" (Azure Key Vault / Managed HSM, --key a key URL), \"gcp-kms\" (Google Cloud KMS, --key projects/P/locations/L/keyRings/R/cryptoKeys/K), \"kmip\" (a KMIP server, --key the key's Unique Identifier) or \"pkcs11\" (an HSM token, --key a key label, label:<text> or id:<hex>)",
				prov);
			return LC_CTL_EXIT_USAGE;
		}
		json_object_object_add(cmd->args, "provider", json_object_new_string(prov));
	} else if (!strcmp(cmd->topic, "revoke")) {
		bool kc = json_object_object_get_ex(cmd->args, "keyconfig", NULL);
		bool cmk = json_object_object_get_ex(cmd->args, "cmk", NULL);

		if (kc == cmk) {
			set_err(err, errlen, "revoke: %s: expected exactly one of --keyconfig NAME or --cmk KEY",
				kc ? "both --keyconfig and --cmk given" : "nothing to revoke");
			return LC_CTL_EXIT_USAGE;
		}
	} else if (!strcmp(cmd->topic, "workspace hook")) {
		bool clear = json_object_object_get_ex(cmd->args, "clear", NULL);
		bool any = json_object_object_get_ex(cmd->args, "signal", NULL) ||
			   json_object_object_get_ex(cmd->args, "stop_units", NULL) ||
			   json_object_object_get_ex(cmd->args, "command", NULL);

		if (clear == (any || json_object_object_get_ex(cmd->args, "timeout_ms", NULL)) ||
		    (!clear && !any)) {
			set_err(err, errlen, "workspace hook: %s",
				clear ? "--clear removes the hook: give it alone"
				      : "expected --signal SIG, --stop-units U1,U2 or --command PATH (or --clear)");
			return LC_CTL_EXIT_USAGE;
		}
	} else if (!strcmp(cmd->topic, "status")) {
		if (npos > 0)
			cmd->render = LC_R_STATUS_DETAIL;
	} else if (!strcmp(cmd->topic, "format")) {
		cmd->path = pos[0];
	} else if (!strcmp(cmd->topic, "rewrap")) {
		bool all = json_object_object_get_ex(cmd->args, "all", NULL);
		bool kc = json_object_object_get_ex(cmd->args, "keyconfig", NULL);

		if (all == (npos > 0) || (kc && !all)) {
			set_err(err, errlen, "rewrap: %s: expected NAME, or --all [--keyconfig NAME]",
				all ? "both NAME and --all given" :
				kc ? "--keyconfig needs --all" : "nothing to re-wrap");
			return LC_CTL_EXIT_USAGE;
		}
		if (!all)
			cmd->render = LC_R_VOLUME;
	} else if (!strcmp(cmd->topic, "shred")) {
		struct json_object *sv;
		uint32_t first, last;
		struct lc_error e;

		json_object_object_get_ex(cmd->args, "segments", &sv);
		if (lc_segment_range_parse(json_object_get_string(sv), &first, &last, &e) < 0) {
			set_err(err, errlen, "shred: --segment: %s", e.msg);
			return LC_CTL_EXIT_USAGE;
		}
		cmd->path = pos[0];
	} else if (!strcmp(cmd->topic, "rekey-segment")) {
		struct json_object *sv;
		uint32_t first, last;
		struct lc_error e;

		json_object_object_get_ex(cmd->args, "segments", &sv);
		if (lc_segment_range_parse(json_object_get_string(sv), &first, &last, &e) < 0) {
			set_err(err, errlen, "rekey-segment: --segment: %s", e.msg);
			return LC_CTL_EXIT_USAGE;
		}
		if (pos[0][0] != '/') {
			set_err(err, errlen, "rekey-segment: DEVICE \"%.64s\" must be an absolute path (the agent opens it)",
				pos[0]);
			return LC_CTL_EXIT_USAGE;
		}
		if (json_object_object_get_ex(cmd->args, "accept_damaged_sector", NULL) &&
		    !json_object_object_get_ex(cmd->args, "resume", NULL)) {
			set_err(err, errlen, "rekey-segment: --accept-damaged-journal-sector is for finishing an interrupted re-key: give it with --resume");
			return LC_CTL_EXIT_USAGE;
		}
		if (!json_object_object_get_ex(cmd->args, "resume", NULL))
			json_object_object_add(cmd->args, "resume", json_object_new_boolean(0));
		cmd->path = pos[0];
		/* it rewrites the segments' data: a day unless --timeout says */
		if (cmd->timeout_ms == LC_CTL_TIMEOUT_S * 1000)
			cmd->timeout_ms = LC_CTL_TIMEOUT_MAX_S * 1000;
	}
	return LC_CTL_EXIT_OK;
}
