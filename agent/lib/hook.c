// SPDX-License-Identifier: GPL-2.0
/*
 * The per-workspace termination hook: checks, JSON form, the /proc scan
 * for processes holding a device, and the run itself (hook.h).
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hook.h"

static const struct {
	const char *name;
	int sig;
} signals[] = {
	{ "HUP", SIGHUP }, { "INT", SIGINT }, { "QUIT", SIGQUIT }, { "KILL", SIGKILL },
	{ "TERM", SIGTERM }, { "USR1", SIGUSR1 }, { "USR2", SIGUSR2 },
};

#define NSIGNALS (sizeof(signals) / sizeof(signals[0]))

bool lc_hook_is_set(const struct lc_ws_hook *h)
{
	return h && (h->signal || h->nunits || h->command[0]);
}

int lc_hook_signal_parse(const char *s, int *sig, struct lc_error *err)
{
	const char *n = s ? s : "";

	if (!strncasecmp(n, "SIG", 3))
		n += 3;
	for (size_t i = 0; i < NSIGNALS; i++)
		if (!strcasecmp(n, signals[i].name)) {
			*sig = signals[i].sig;
			return 0;
		}
	return lc_err(err, -EINVAL, LC_ERRC_INVALID,
		      "signal \"%.32s\" is not one a hook sends: expected HUP, INT, QUIT, KILL, TERM, USR1 or USR2",
		      s ? s : "");
}

const char *lc_hook_signal_name(int sig)
{
	for (size_t i = 0; i < NSIGNALS; i++)
		if (signals[i].sig == sig)
			return signals[i].name;
	return "?";
}

int lc_hook_unit_check(const char *u, struct lc_error *err)
{
	size_t n = u ? strlen(u) : 0;

	if (n < 3 || n >= LC_HOOK_UNIT_SIZE || u[0] == '-' || u[0] == '.' || !strchr(u + 1, '.'))
		goto bad;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)u[i]) && !strchr(":_.@-\\", u[i]))
			goto bad;
	return 0;
bad:
	return lc_err(err, -EINVAL, LC_ERRC_INVALID,
		      "\"%.80s\" is not a systemd unit name: expected 1 to %d characters from A-Z a-z 0-9 : _ . @ - \\ with a type suffix, e.g. postgresql.service",
		      u ? u : "", LC_HOOK_UNIT_SIZE - 1);
}

int lc_hook_command_check(const char *p, struct lc_error *err)
{
	size_t n = p ? strlen(p) : 0;

	if (n < 2 || n >= LC_HOOK_COMMAND_SIZE || p[0] != '/' || strstr(p, "/../") ||
	    strstr(p, "/./") || (n >= 3 && !strcmp(p + n - 3, "/..")) || p[n - 1] == '/')
		goto bad;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] <= 0x20 || (unsigned char)p[i] >= 0x7f)
			goto bad;
	return 0;
bad:
	return lc_err(err, -EINVAL, LC_ERRC_INVALID,
		      "hook command \"%.80s\" is not usable: expected the absolute path of a program (at most %d printable characters, no blanks, no \"..\"); it runs without a shell and without arguments",
		      p ? p : "", LC_HOOK_COMMAND_SIZE - 1);
}

int lc_hook_command_safe(const char *path, struct lc_error *err)
{
	struct stat st, dst;
	char dir[LC_HOOK_COMMAND_SIZE];
	char *slash;
	uid_t me = geteuid();
	int r;

	if ((r = lc_hook_command_check(path, err)) < 0)
		return r;
	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	if (lstat(path, &st) < 0 || stat(dir, &dst) < 0)
		return lc_err(err, -errno, LC_ERRC_INVALID, "hook command %s: %s", path,
			      strerror(errno));
	if (!S_ISREG(st.st_mode) || !(st.st_mode & S_IXUSR))
		return lc_err(err, -EPERM, LC_ERRC_INVALID,
			      "hook command %s is not an executable regular file (symbolic links are refused)",
			      path);
	if ((st.st_uid != 0 && st.st_uid != me) || (st.st_mode & (S_IWGRP | S_IWOTH)))
		return lc_err(err, -EPERM, LC_ERRC_INVALID,
			      "hook command %s must be owned by root and writable by nobody else: it runs as root",
			      path);
	if ((dst.st_uid != 0 && dst.st_uid != me) ||
	    ((dst.st_mode & (S_IWGRP | S_IWOTH)) && !(dst.st_mode & S_ISVTX)))
		return lc_err(err, -EPERM, LC_ERRC_INVALID,
			      "hook command %s: its directory %s lets others replace it: it runs as root",
			      path, dir);
	return 0;
}

int lc_hook_check(const struct lc_ws_hook *h, struct lc_error *err)
{
	int r;

	if (!lc_hook_is_set(h))
		return 0;
	if (h->signal && !strcmp(lc_hook_signal_name(h->signal), "?"))
		return lc_err(err, -EINVAL, LC_ERRC_INVALID, "hook signal %d is not allowed",
			      h->signal);
	if (h->nunits > LC_HOOK_MAX_UNITS)
		return lc_err(err, -E2BIG, LC_ERRC_INVALID, "a hook stops at most %d units",
			      LC_HOOK_MAX_UNITS);
	for (size_t i = 0; i < h->nunits; i++)
		if ((r = lc_hook_unit_check(h->units[i], err)) < 0)
			return r;
	if (h->command[0] && (r = lc_hook_command_check(h->command, err)) < 0)
		return r;
	if (h->timeout_ms < LC_HOOK_TIMEOUT_MIN_MS || h->timeout_ms > LC_HOOK_TIMEOUT_MAX_MS)
		return lc_err(err, -EINVAL, LC_ERRC_INVALID,
			      "hook timeout %" PRIu32 " ms is out of range: expected %d to %d ms",
			      h->timeout_ms, LC_HOOK_TIMEOUT_MIN_MS, LC_HOOK_TIMEOUT_MAX_MS);
	return 0;
}

json_object *lc_hook_to_json(const struct lc_ws_hook *h)
{
	json_object *o;

	if (!lc_hook_is_set(h))
		return NULL;
	o = json_object_new_object();
	if (h->signal)
		json_object_object_add(o, "signal",
				       json_object_new_string(lc_hook_signal_name(h->signal)));
	if (h->nunits) {
		json_object *a = json_object_new_array();

		for (size_t i = 0; i < h->nunits; i++)
			json_object_array_add(a, json_object_new_string(h->units[i]));
		json_object_object_add(o, "stop_units", a);
	}
	if (h->command[0])
		json_object_object_add(o, "command", json_object_new_string(h->command));
	json_object_object_add(o, "timeout_ms", json_object_new_int64(h->timeout_ms));
	return o;
}

static int bad_json(struct lc_error *err, const char *what)
{
	return lc_err(err, -EINVAL, LC_ERRC_INVALID, "hook: %s", what);
}

int lc_hook_from_json(json_object *o, struct lc_ws_hook *h, struct lc_error *err)
{
	json_object *v;

	memset(h, 0, sizeof(*h));
	if (!o || !json_object_is_type(o, json_type_object))
		return bad_json(err, "not a JSON object");
	json_object_object_foreach(o, key, val) {
		(void)val;
		if (strcmp(key, "signal") && strcmp(key, "stop_units") && strcmp(key, "command") &&
		    strcmp(key, "timeout_ms"))
			return bad_json(err, "unknown member (expected signal, stop_units, command, timeout_ms)");
	}
	if (json_object_object_get_ex(o, "signal", &v)) {
		if (!json_object_is_type(v, json_type_string))
			return bad_json(err, "\"signal\" is not a string");
		if (lc_hook_signal_parse(json_object_get_string(v), &h->signal, err) < 0)
			return -EINVAL;
	}
	if (json_object_object_get_ex(o, "stop_units", &v)) {
		if (!json_object_is_type(v, json_type_array) ||
		    json_object_array_length(v) > LC_HOOK_MAX_UNITS)
			return bad_json(err, "\"stop_units\" is not an array of at most 16 unit names");
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			json_object *u = json_object_array_get_idx(v, i);
			size_t len;

			if (!json_object_is_type(u, json_type_string))
				return bad_json(err, "\"stop_units\" holds a non-string");
			len = (size_t)json_object_get_string_len(u);
			if (len >= LC_HOOK_UNIT_SIZE || strlen(json_object_get_string(u)) != len)
				return bad_json(err, "a unit name is too long");
			memcpy(h->units[h->nunits++], json_object_get_string(u), len + 1);
		}
	}
	if (json_object_object_get_ex(o, "command", &v)) {
		size_t len;

		if (!json_object_is_type(v, json_type_string))
			return bad_json(err, "\"command\" is not a string");
		len = (size_t)json_object_get_string_len(v);
		if (len >= sizeof(h->command) || strlen(json_object_get_string(v)) != len)
			return bad_json(err, "\"command\" is too long");
		memcpy(h->command, json_object_get_string(v), len + 1);
	}
	if (!json_object_object_get_ex(o, "timeout_ms", &v) ||
	    !json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0 ||
	    json_object_get_int64(v) > LC_HOOK_TIMEOUT_MAX_MS)
		return bad_json(err, "\"timeout_ms\" is missing or out of range");
	h->timeout_ms = (uint32_t)json_object_get_int64(v);
	if (!lc_hook_is_set(h))
		return bad_json(err, "a hook needs a signal, units to stop or a command");
	return lc_hook_check(h, err);
}

/* ---- /proc scan ---- */

static bool dev_in(dev_t d, const dev_t *devs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (devs[i] == d)
			return true;
	return false;
}

/* statx without asking a network file system; false if it cannot. */
static bool look(int dirfd, const char *path, struct statx *stx)
{
	return statx(dirfd, path, AT_STATX_DONT_SYNC, STATX_TYPE, stx) == 0;
}

static bool stx_holds(const struct statx *stx, const dev_t *devs, size_t n, bool raw)
{
	if (dev_in(makedev(stx->stx_dev_major, stx->stx_dev_minor), devs, n))
		return true;
	return raw && S_ISBLK(stx->stx_mode) &&
	       dev_in(makedev(stx->stx_rdev_major, stx->stx_rdev_minor), devs, n);
}

/* Descriptors of the process whose /proc directory is @pfd. */
static unsigned int scan_fds(int pfd, const dev_t *devs, size_t n, bool *unreadable)
{
	int dfd = openat(pfd, "fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d;
	struct dirent *e;
	unsigned int how = 0;

	if (dfd < 0) {
		*unreadable = errno == EACCES || errno == EPERM;
		return 0;
	}
	d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return 0;
	}
	errno = 0;
	while (!how && (e = readdir(d))) {
		struct statx stx;

		if (e->d_name[0] == '.')
			continue;
		if (look(dirfd(d), e->d_name, &stx) && stx_holds(&stx, devs, n, true))
			how |= LC_HOLD_FD;
	}
	if (errno == EACCES || errno == EPERM)
		*unreadable = true;
	closedir(d);
	return how;
}

/* The device field of /proc/PID/maps lines: "addr perms offset MM:mm inode path". */
static bool scan_maps(int pfd, const dev_t *devs, size_t n)
{
	int fd = openat(pfd, "maps", O_RDONLY | O_CLOEXEC);
	FILE *f;
	char line[4096 + 256];
	bool hit = false;

	if (fd < 0)
		return false;
	f = fdopen(fd, "r");
	if (!f) {
		close(fd);
		return false;
	}
	while (!hit && fgets(line, sizeof(line), f)) {
		unsigned int maj, min;
		unsigned long long ino;
		char perms[8];
		int used = 0;

		/* A long line's rest comes back as another "line": it fails here. */
		if (sscanf(line, "%*x-%*x %7s %*x %x:%x %llu%n", perms, &maj, &min, &ino,
			   &used) != 4 || !used)
			continue;
		if (ino && dev_in(makedev(maj, min), devs, n))
			hit = true;
	}
	fclose(f);
	return hit;
}

static int cmp_holder(const void *x, const void *y)
{
	const struct lc_proc_holder *a = x, *b = y;

	return (a->pid > b->pid) - (a->pid < b->pid);
}

int lc_proc_holders(const char *proc_root, const dev_t *devs, size_t ndevs, pid_t skip,
		    struct lc_proc_holder **out, size_t *n, unsigned int *unreadable,
		    struct lc_error *err)
{
	const char *root = proc_root ? proc_root : "/proc";
	struct lc_proc_holder *list = NULL;
	size_t cap = 0;
	DIR *d;
	struct dirent *e;

	*out = NULL;
	*n = 0;
	if (unreadable)
		*unreadable = 0;
	d = opendir(root);
	if (!d)
		return lc_err(err, -errno, LC_ERRC_INTERNAL, "cannot read %s: %s", root,
			      strerror(errno));
	while ((e = readdir(d)) && *n < LC_HOOK_MAX_PIDS) {
		char *end;
		long pid;
		int pfd;
		unsigned int how = 0;
		bool unread = false;
		struct statx stx;

		errno = 0;
		pid = strtol(e->d_name, &end, 10);
		if (*end || end == e->d_name || errno || pid <= 1 || pid > INT32_MAX ||
		    (pid_t)pid == skip)
			continue;
		pfd = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (pfd < 0)
			continue;	/* gone meanwhile */
		if (look(pfd, "cwd", &stx) && stx_holds(&stx, devs, ndevs, false))
			how |= LC_HOLD_CWD;
		if (look(pfd, "root", &stx) && stx_holds(&stx, devs, ndevs, false))
			how |= LC_HOLD_ROOT;
		how |= scan_fds(pfd, devs, ndevs, &unread);
		if (scan_maps(pfd, devs, ndevs))
			how |= LC_HOLD_MAP;
		close(pfd);
		if (unread && unreadable)
			(*unreadable)++;
		if (!how)
			continue;
		if (*n == cap) {
			size_t nc = cap ? cap * 2 : 16;
			struct lc_proc_holder *t = realloc(list, nc * sizeof(*t));

			if (!t) {
				closedir(d);
				free(list);
				*n = 0;
				return lc_err(err, -ENOMEM, LC_ERRC_INTERNAL, "out of memory");
			}
			list = t;
			cap = nc;
		}
		list[*n].pid = (pid_t)pid;
		list[*n].how = how;
		(*n)++;
	}
	closedir(d);
	if (*n)
		qsort(list, *n, sizeof(*list), cmp_holder);
	*out = list;
	return 0;
}

int lc_hook_caps_missing(char *buf, size_t size)
{
	static const struct {
		const char *name;
		unsigned int bit;
	} caps[] = { { "CAP_KILL", 5 }, { "CAP_SYS_PTRACE", 19 }, { "CAP_DAC_READ_SEARCH", 2 } };
	FILE *f = fopen("/proc/self/status", "re");
	char line[256];
	unsigned long long eff = 0;
	bool found = false;
	int n = 0;
	size_t off = 0;

	if (size)
		buf[0] = '\0';
	if (!f)
		return -errno;
	while (!found && fgets(line, sizeof(line), f))
		found = sscanf(line, "CapEff: %llx", &eff) == 1;
	fclose(f);
	if (!found)
		return -ENODATA;
	for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
		if (eff & (1ULL << caps[i].bit))
			continue;
		n++;
		if (off < size)
			off += (size_t)snprintf(buf + off, size - off, "%s%s", off ? "," : "",
						caps[i].name);
	}
	return n;
}

/* ---- the run ---- */

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void nap_ms(unsigned int ms)
{
	nanosleep(&(struct timespec){ .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 },
		  NULL);
}

extern char **environ;

/*
 * Spawn @argv[0] (absolute) with @envp, in its own process group, signals
 * unblocked and at their defaults, stdio on /dev/null; wait at most
 * @timeout_ms.  Exit status (0..255, 128+N for a signal), -2 after a
 * timeout (the group was killed), -3 if it could not start.
 */
static int spawn_wait(char *const argv[], char *const envp[], uint32_t timeout_ms)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, all;
	pid_t pid;
	int r, st = 0;
	uint64_t dl;

	sigemptyset(&none);
	sigfillset(&all);
	if (posix_spawn_file_actions_init(&fa))
		return -3;
	if (posix_spawnattr_init(&at)) {
		posix_spawn_file_actions_destroy(&fa);
		return -3;
	}
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
				 POSIX_SPAWN_SETSIGDEF);
	posix_spawnattr_setpgroup(&at, 0);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &all);
	r = posix_spawn(&pid, argv[0], &fa, &at, argv, envp ? envp : environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	if (r)
		return -3;
	dl = mono_ms() + timeout_ms;
	for (;;) {
		pid_t w = waitpid(pid, &st, WNOHANG);

		if (w == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		if (w < 0 && errno != EINTR)
			return -3;
		if (mono_ms() >= dl)
			break;
		nap_ms(5);
	}
	kill(-pid, SIGKILL);
	kill(pid, SIGKILL);
	/* Reap it, but never wait on a process stuck in the kernel for long. */
	for (int i = 0; i < 200 && waitpid(pid, &st, WNOHANG) == 0; i++)
		nap_ms(5);
	return -2;
}

static const char *status_word(int st, char *buf, size_t size)
{
	if (st == -1)
		return "not run";
	if (st == -2)
		return "timed out (killed)";
	if (st == -3)
		return "could not start";
	if (st == -4)
		return "refused: the program is not owned by root or others may write it";
	if (st >= 128)
		snprintf(buf, size, "killed by signal %d", st - 128);
	else
		snprintf(buf, size, "exit %d", st);
	return buf;
}

/* Is @pid still there and not a zombie? */
static bool alive(const char *proc_root, pid_t pid)
{
	char path[64], buf[512], *p;
	int fd;
	ssize_t len;

	if (kill(pid, 0) < 0 && errno == ESRCH)
		return false;
	snprintf(path, sizeof(path), "%s/%d/stat", proc_root, (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno != ENOENT;
	len = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (len <= 0)
		return true;
	buf[len] = '\0';
	p = strrchr(buf, ')');
	return !(p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X'));
}

static const char *find_systemctl(const struct lc_hook_env *env)
{
	if (env && env->systemctl)
		return env->systemctl;
	if (access("/usr/bin/systemctl", X_OK) == 0)
		return "/usr/bin/systemctl";
	return "/bin/systemctl";
}

int lc_hook_run(const struct lc_ws_hook *h, const struct lc_hook_env *env,
		const char *workspace, const char *volumes, const char *reason,
		const dev_t *devs, size_t ndevs, struct lc_hook_result *res)
{
	const char *proc = env && env->proc_root ? env->proc_root : "/proc";
	uint64_t t0 = mono_ms();
	size_t off = 0;
	char w[48];

	memset(res, 0, sizeof(*res));
	res->ok = true;
	res->units_status = res->command_status = -1;
#define DETAIL(...) do { \
		if (off < sizeof(res->detail)) \
			off += (size_t)snprintf(res->detail + off, sizeof(res->detail) - off, \
						__VA_ARGS__); \
	} while (0)

	if (h->nunits) {
		char *argv[LC_HOOK_MAX_UNITS + 4];
		size_t k = 0;

		argv[k++] = (char *)find_systemctl(env);
		argv[k++] = "stop";
		argv[k++] = "--";
		for (size_t i = 0; i < h->nunits && i < LC_HOOK_MAX_UNITS; i++)
			argv[k++] = (char *)h->units[i];
		argv[k] = NULL;
		res->units_status = spawn_wait(argv, (char *[]){ "PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL },
					       h->timeout_ms);
		res->ok &= res->units_status == 0;
		DETAIL("stop %zu unit(s): %s", h->nunits, status_word(res->units_status, w, sizeof(w)));
	}
	if (h->signal) {
		struct lc_proc_holder *hs = NULL;
		size_t n = 0;
		struct lc_error e;
		uint64_t dl;

		if (lc_proc_holders(proc, devs, ndevs, getpid(), &hs, &n, &res->unreadable, &e) < 0) {
			res->ok = false;
			DETAIL("%ssignal %s: scan failed: %.200s", off ? "; " : "",
			       lc_hook_signal_name(h->signal), e.msg);
		} else {
			unsigned int refused = 0;

			for (size_t i = 0; i < n; i++) {
				if (kill(hs[i].pid, h->signal) == 0) {
					res->signalled++;
					continue;
				}
				/* Gone since the scan is fine; EPERM is not. */
				if (errno != ESRCH)
					refused++;
				hs[i].pid = 0;
			}
			dl = mono_ms() + h->timeout_ms;
			for (;;) {
				res->survivors = 0;
				for (size_t i = 0; i < n; i++)
					if (hs[i].pid && alive(proc, hs[i].pid))
						res->survivors++;
					else
						hs[i].pid = 0;
				if (!res->survivors || mono_ms() >= dl)
					break;
				nap_ms(10);
			}
			res->ok &= !res->survivors && !res->unreadable && !refused;
			DETAIL("%ssignal %s: %zu holder(s), %u signalled, %u still running after %" PRIu32 " ms%s%s",
			       off ? "; " : "", lc_hook_signal_name(h->signal), n, res->signalled,
			       res->survivors, h->timeout_ms,
			       refused ? ", some could not be signalled (CAP_KILL? drop-in hook-signal.conf)" : "",
			       res->unreadable ? ", some processes could not be read (CAP_SYS_PTRACE? drop-in hook-signal.conf)" : "");
			free(hs);
		}
	}
	if (h->command[0]) {
		char *envp[5], *argv[2] = { (char *)h->command, NULL };

		if (asprintf(&envp[0], "LAKECRYPT_WORKSPACE=%s", workspace ? workspace : "") < 0)
			envp[0] = NULL;
		if (asprintf(&envp[1], "LAKECRYPT_VOLUMES=%s", volumes ? volumes : "") < 0)
			envp[1] = NULL;
		if (asprintf(&envp[2], "LAKECRYPT_REASON=%s", reason ? reason : "") < 0)
			envp[2] = NULL;
		envp[3] = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";
		envp[4] = NULL;
		struct lc_error se;

		int sr = lc_hook_command_safe(h->command, &se);

		if (sr < 0)
			res->command_status = sr == -ENOENT ? -3 : -4;
		else if (envp[0] && envp[1] && envp[2])
			res->command_status = spawn_wait(argv, envp, h->timeout_ms);
		else
			res->command_status = -3;
		for (int i = 0; i < 3; i++)
			free(envp[i]);
		res->ok &= res->command_status == 0;
		DETAIL("%scommand: %s", off ? "; " : "", status_word(res->command_status, w, sizeof(w)));
	}
#undef DETAIL
	res->duration_ms = mono_ms() - t0;
	return res->ok ? 0 : -EIO;
}
