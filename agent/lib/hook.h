/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Compute termination after a revocation: the per-workspace hook.
 *
 * Revoking a volume stops its I/O; the hook stops what was using it.  An
 * admin sets, per workspace (kept in the registry with the binding), any
 * of, run in this order:
 *   stop_units  systemd units to stop: `systemctl stop -- U1 U2 ...`
 *   signal      a signal sent to every process that holds a revoked
 *               device or a file system on it (lc_proc_holders())
 *   command     an absolute path run with no arguments and no shell, in
 *               its own process group, environment exactly
 *                 LAKECRYPT_WORKSPACE=<workspace>
 *                 LAKECRYPT_VOLUMES=<name>,<name>,...   (dm names)
 *                 LAKECRYPT_REASON=<cause of the revocation>
 *                 PATH=/usr/sbin:/usr/bin:/sbin:/bin
 *               stdin, stdout, stderr on /dev/null
 * timeout_ms bounds each spawned process (systemctl, the command) and the
 * wait for signalled processes to exit; a process past it is killed with
 * SIGKILL (its whole process group) and the step counts as failed.
 * Hooks run as the agent does (root): only admins set them.
 */
#ifndef LC_HOOK_H
#define LC_HOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <json-c/json.h>

#include "lc-error.h"

#define LC_HOOK_MAX_UNITS	16
#define LC_HOOK_UNIT_SIZE	256	/* unit names: 1..255 characters */
#define LC_HOOK_COMMAND_SIZE	256	/* absolute path: 2..255 characters */
#define LC_HOOK_TIMEOUT_DEFAULT_MS 10000
#define LC_HOOK_TIMEOUT_MIN_MS	100
#define LC_HOOK_TIMEOUT_MAX_MS	600000
#define LC_HOOK_DETAIL_SIZE	512
#define LC_HOOK_MAX_PIDS	4096	/* processes signalled per run, at most */

struct lc_ws_hook {
	int signal;				/* 0: none; else one of lc_hook_signal_parse() */
	char units[LC_HOOK_MAX_UNITS][LC_HOOK_UNIT_SIZE];
	size_t nunits;
	char command[LC_HOOK_COMMAND_SIZE];	/* "" : none */
	uint32_t timeout_ms;			/* 0 in an unset hook */
};

/* Does @h do anything? */
bool lc_hook_is_set(const struct lc_ws_hook *h);

/* "QUIT", "SIGQUIT", "quit" -> SIGQUIT.  Accepted: HUP INT QUIT KILL TERM
 * USR1 USR2.  -EINVAL (INVALID) naming them otherwise. */
int lc_hook_signal_parse(const char *s, int *sig, struct lc_error *err);
/* "QUIT" for SIGQUIT; "?" for a signal lc_hook_signal_parse() refuses. */
const char *lc_hook_signal_name(int sig);

/* A systemd unit name: 1..255 of A-Z a-z 0-9 : _ . @ - \, not starting
 * with '-', with a '.' suffix (e.g. "postgresql@15-main.service"). */
int lc_hook_unit_check(const char *u, struct lc_error *err);
/* An absolute path of printable characters without blanks or "/../". */
int lc_hook_command_check(const char *path, struct lc_error *err);
/* Every field of @h (a set hook needs 100..600000 ms of timeout). */
int lc_hook_check(const struct lc_ws_hook *h, struct lc_error *err);

/* {"signal":"QUIT","stop_units":[...],"command":"/path","timeout_ms":N},
 * members of unset parts left out; NULL if @h is not set. */
json_object *lc_hook_to_json(const struct lc_ws_hook *h);
/* The reverse, every field checked; -EINVAL (INVALID) otherwise. */
int lc_hook_from_json(json_object *o, struct lc_ws_hook *h, struct lc_error *err);

/* How a process holds a device (bits of lc_proc_holder.how). */
#define LC_HOLD_FD	0x1	/* an open descriptor: the device, or a file on it */
#define LC_HOLD_CWD	0x2	/* working directory on it */
#define LC_HOLD_ROOT	0x4	/* root directory on it */
#define LC_HOLD_MAP	0x8	/* a mapped file on it (/proc/PID/maps) */

struct lc_proc_holder {
	pid_t pid;
	unsigned int how;
};

/*
 * The processes under @proc_root (NULL: "/proc") that hold one of the
 * @ndevs block devices @devs: a descriptor of the device itself (st_rdev)
 * or of a file on a file system mounted from it (st_dev), a working or
 * root directory on it, or a mapping of such a file (the device field of
 * /proc/PID/maps, hexadecimal major:minor).  Targets are looked at with
 * statx(AT_STATX_DONT_SYNC), so a network file system is not asked.
 * Processes that vanish meanwhile, entries that cannot be read (EACCES:
 * the caller lacks CAP_SYS_PTRACE) and malformed maps lines are skipped;
 * *@unreadable counts processes whose descriptors could not be read (may
 * be NULL).  Pid @skip (the caller) and pid 1 are never listed.  *@out is
 * malloc'd (free() it), at most LC_HOOK_MAX_PIDS entries, sorted by pid.
 * 0, or -ENOMEM / -errno if @proc_root cannot be read.
 */
int lc_proc_holders(const char *proc_root, const dev_t *devs, size_t ndevs, pid_t skip,
		    struct lc_proc_holder **out, size_t *n, unsigned int *unreadable,
		    struct lc_error *err);

/*
 * The signal step needs CAP_KILL (other users' processes), CAP_SYS_PTRACE
 * and CAP_DAC_READ_SEARCH (their /proc/PID/fd, cwd, root and maps).  Names
 * of those this process lacks, comma-separated, into @buf ("" if none);
 * the number missing, or -errno if /proc/self/status cannot be read.
 */
int lc_hook_caps_missing(char *buf, size_t size);

/* Where the run looks for things; NULL members: the system's. */
struct lc_hook_env {
	const char *proc_root;		/* "/proc" */
	const char *systemctl;		/* /usr/bin/systemctl or /bin/systemctl */
};

/* What one run did, for status and the audit log. */
struct lc_hook_result {
	bool ok;			/* every step that was set succeeded */
	int units_status;		/* systemctl's exit status; -1 not run, -2 timed out,
					 * -3 could not start */
	unsigned int signalled;		/* processes the signal was sent to */
	unsigned int survivors;		/* of those, still alive at the timeout */
	unsigned int unreadable;	/* processes the scan could not read */
	int command_status;		/* as units_status, for the command */
	uint64_t duration_ms;
	char detail[LC_HOOK_DETAIL_SIZE]; /* one line: what each step did */
};

/*
 * Run @h for @workspace after its volumes @volumes (comma-separated dm
 * names) were revoked for @reason; @devs: their device numbers, for the
 * signal step.  Blocks for at most about 3 x timeout_ms (+1 s per killed
 * process group).  Fills @res always; returns 0 if every step succeeded,
 * else -EIO with @res->detail saying which failed.
 */
int lc_hook_run(const struct lc_ws_hook *h, const struct lc_hook_env *env,
		const char *workspace, const char *volumes, const char *reason,
		const dev_t *devs, size_t ndevs, struct lc_hook_result *res);

#endif /* LC_HOOK_H */
