// SPDX-License-Identifier: GPL-2.0
/*
 * The termination hook: argument checks, its JSON form, the /proc scan
 * (a fabricated /proc tree, and the real one for a child of the test), and
 * runs that signal a real child, run a command with exactly the documented
 * environment, time out, and call a recording systemctl.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "hook.h"

static char dir[] = "/tmp/lc-hook-XXXXXX";
static char target[256];	/* a file on the "device" */
static dev_t target_dev;	/* the file system it lives on */

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int setup(void **state)
{
	struct stat st;
	int fd;

	(void)state;
	strcpy(dir, "/tmp/lc-hook-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(target, sizeof(target), "%s/data", dir);
	fd = open(target, O_CREAT | O_WRONLY, 0600);
	if (fd < 0 || fstat(fd, &st) < 0)
		return -1;
	close(fd);
	target_dev = st.st_dev;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	return nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static void put(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, mode);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static void mkpath(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void mkpath(const char *fmt, ...)
{
	char p[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(p, sizeof(p), fmt, ap);
	va_end(ap);
	assert_int_equal(mkdir(p, 0700), 0);
}

static void link_to(const char *to, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void link_to(const char *to, const char *fmt, ...)
{
	char p[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(p, sizeof(p), fmt, ap);
	va_end(ap);
	assert_int_equal(symlink(to, p), 0);
}

/* A fabricated process @pid: cwd, root, one descriptor, maps. */
static void fake_proc(const char *root, int pid, const char *cwd, const char *fd3, const char *maps)
{
	char p[512];

	mkpath("%s/%d", root, pid);
	mkpath("%s/%d/fd", root, pid);
	link_to(cwd, "%s/%d/cwd", root, pid);
	link_to("/proc", "%s/%d/root", root, pid);
	if (fd3)
		link_to(fd3, "%s/%d/fd/3", root, pid);
	snprintf(p, sizeof(p), "%s/%d/maps", root, pid);
	put(p, maps ? maps : "", 0600);
}

static void test_checks(void **state)
{
	struct lc_error e;
	int sig = 0;

	(void)state;
	assert_int_equal(lc_hook_signal_parse("QUIT", &sig, &e), 0);
	assert_int_equal(sig, SIGQUIT);
	assert_int_equal(lc_hook_signal_parse("sigkill", &sig, &e), 0);
	assert_int_equal(sig, SIGKILL);
	assert_int_equal(lc_hook_signal_parse("STOP", &sig, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "QUIT"));
	assert_int_equal(lc_hook_signal_parse("", &sig, &e), -EINVAL);
	assert_int_equal(lc_hook_signal_parse("9", &sig, &e), -EINVAL);
	assert_string_equal(lc_hook_signal_name(SIGTERM), "TERM");
	assert_string_equal(lc_hook_signal_name(SIGSTOP), "?");

	assert_int_equal(lc_hook_unit_check("postgresql@15-main.service", &e), 0);
	assert_int_equal(lc_hook_unit_check("a.service", &e), 0);
	assert_int_equal(lc_hook_unit_check("--now", &e), -EINVAL);
	assert_int_equal(lc_hook_unit_check("noservice", &e), -EINVAL);
	assert_int_equal(lc_hook_unit_check("a b.service", &e), -EINVAL);
	assert_int_equal(lc_hook_unit_check("a;rm.service", &e), -EINVAL);

	assert_int_equal(lc_hook_command_check("/usr/local/bin/stop-node", &e), 0);
	assert_int_equal(lc_hook_command_check("stop-node", &e), -EINVAL);
	assert_int_equal(lc_hook_command_check("/bin/sh -c reboot", &e), -EINVAL);
	assert_int_equal(lc_hook_command_check("/usr/../bin/x", &e), -EINVAL);
	assert_int_equal(lc_hook_command_check("/usr/bin/", &e), -EINVAL);
	assert_int_equal(lc_hook_command_check("/usr/bin/\x7f", &e), -EINVAL);
}

static void test_json(void **state)
{
	struct lc_ws_hook h = { 0 }, back;
	struct lc_error e;
	json_object *o;

	(void)state;
	assert_null(lc_hook_to_json(&h));
	h.signal = SIGQUIT;
	snprintf(h.units[h.nunits++], LC_HOOK_UNIT_SIZE, "pg.service");
	snprintf(h.command, sizeof(h.command), "/usr/sbin/halt-node");
	h.timeout_ms = 2500;
	o = lc_hook_to_json(&h);
	assert_string_equal(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
							   JSON_C_TO_STRING_NOSLASHESCAPE),
			    "{\"signal\":\"QUIT\",\"stop_units\":[\"pg.service\"],\"command\":\"/usr/sbin/halt-node\",\"timeout_ms\":2500}");
	assert_int_equal(lc_hook_from_json(o, &back, &e), 0);
	assert_memory_equal(&h, &back, sizeof(h));
	json_object_put(o);

	/* Hostile registry contents: each refused with a message. */
	static const char *const bad[] = {
		"{\"signal\":\"STOP\",\"timeout_ms\":1000}",
		"{\"signal\":\"KILL\"}",
		"{\"signal\":\"KILL\",\"timeout_ms\":5}",
		"{\"signal\":\"KILL\",\"timeout_ms\":99999999}",
		"{\"timeout_ms\":1000}",
		"{\"command\":\"relative\",\"timeout_ms\":1000}",
		"{\"stop_units\":[\"-x.service\"],\"timeout_ms\":1000}",
		"{\"stop_units\":\"a.service\",\"timeout_ms\":1000}",
		"{\"signal\":\"KILL\",\"timeout_ms\":1000,\"shell\":true}",
		"[]",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		o = json_tokener_parse(bad[i]);
		assert_non_null(o);
		e.msg[0] = '\0';
		assert_int_equal(lc_hook_from_json(o, &back, &e), -EINVAL);
		assert_true(e.msg[0] != '\0');
		json_object_put(o);
	}
}

static void test_scan_fake(void **state)
{
	char root[300], maps[512];
	struct lc_proc_holder *hs = NULL;
	size_t n = 99;
	unsigned int unread = 0;
	struct lc_error e;
	dev_t devs[1] = { target_dev };

	(void)state;
	snprintf(root, sizeof(root), "%s/proc", dir);
	mkpath("%s", root);
	/* 100: a descriptor on the device; 200: a mapping; 300: its cwd;
	 * 400: nothing; 1 and 500 (the caller) never listed; "self" and
	 * junk skipped; 600: maps lines that are malformed or anonymous. */
	fake_proc(root, 100, "/proc", target, NULL);
	snprintf(maps, sizeof(maps),
		 "7f00-7f01 r-xp 00000000 00:00 0 \n"
		 "7f01-7f02 r--p 00000000 %x:%x 1234 %s\n", major(target_dev), minor(target_dev),
		 target);
	fake_proc(root, 200, "/proc", "/proc/version", maps);
	fake_proc(root, 300, dir, NULL, NULL);
	fake_proc(root, 400, "/proc", "/proc/version", "garbage\n\n7f-7f rw-p 0 zz:zz 1 x\n");
	fake_proc(root, 1, dir, target, NULL);
	fake_proc(root, 500, dir, target, NULL);
	snprintf(maps, sizeof(maps), "7f-80 rw-p 00000000 %x:%x 0 [heap]\n%s\n",
		 major(target_dev), minor(target_dev), "x-y z");
	fake_proc(root, 600, "/proc", NULL, maps);
	mkpath("%s/self", root);
	mkpath("%s/12abc", root);

	assert_int_equal(lc_proc_holders(root, devs, 1, 500, &hs, &n, &unread, &e), 0);
	assert_int_equal(n, 3);
	assert_int_equal(hs[0].pid, 100);
	assert_int_equal(hs[0].how, LC_HOLD_FD);
	assert_int_equal(hs[1].pid, 200);
	assert_int_equal(hs[1].how, LC_HOLD_MAP);
	assert_int_equal(hs[2].pid, 300);
	assert_int_equal(hs[2].how, LC_HOLD_CWD);
	free(hs);

	/* Another device: nobody. */
	devs[0] = makedev(250, 250);
	assert_int_equal(lc_proc_holders(root, devs, 1, 0, &hs, &n, NULL, &e), 0);
	assert_int_equal(n, 0);
	free(hs);

	assert_true(lc_proc_holders("/nonexistent-proc", devs, 1, 0, &hs, &n, NULL, &e) < 0);
	assert_null(hs);
}

/* A child that holds @target open until killed; @ignore: SIGTERM ignored. */
static pid_t holder(bool ignore)
{
	int p[2];
	char c;
	pid_t pid;

	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		int fd = open(target, O_RDONLY);

		if (ignore)
			signal(SIGTERM, SIG_IGN);
		(void)!write(p[1], fd >= 0 ? "y" : "n", 1);
		for (;;)
			pause();
	}
	close(p[1]);
	assert_int_equal(read(p[0], &c, 1), 1);
	assert_int_equal(c, 'y');
	close(p[0]);
	return pid;
}

static void test_scan_real(void **state)
{
	struct lc_proc_holder *hs = NULL;
	size_t n = 0;
	bool found = false, self = false;
	struct lc_error e;
	dev_t devs[1] = { target_dev };
	pid_t pid = holder(false);
	int fd = open(target, O_RDONLY);

	(void)state;
	assert_int_equal(lc_proc_holders(NULL, devs, 1, getpid(), &hs, &n, NULL, &e), 0);
	for (size_t i = 0; i < n; i++) {
		found |= hs[i].pid == pid && (hs[i].how & LC_HOLD_FD);
		self |= hs[i].pid == getpid();
	}
	assert_true(found);
	assert_false(self);
	free(hs);
	close(fd);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

/* A fabricated /proc naming only @pid (a real child): its stat is the real one. */
static void proc_of(char *root, size_t size, pid_t pid)
{
	char real[64];

	snprintf(root, size, "%s/p%d", dir, (int)pid);
	mkpath("%s", root);
	fake_proc(root, pid, "/proc", target, NULL);
	snprintf(real, sizeof(real), "/proc/%d/stat", (int)pid);
	link_to(real, "%s/%d/stat", root, (int)pid);
}

static void test_run_signal(void **state)
{
	struct lc_ws_hook h = { .signal = SIGTERM, .timeout_ms = 5000 };
	struct lc_hook_env env = { 0 };
	struct lc_hook_result res;
	char root[300];
	dev_t devs[1] = { target_dev };
	pid_t pid = holder(false), w;
	int st;

	(void)state;
	proc_of(root, sizeof(root), pid);
	env.proc_root = root;
	assert_int_equal(lc_hook_run(&h, &env, "ws1", "v1", "test", devs, 1, &res), 0);
	assert_true(res.ok);
	assert_int_equal(res.signalled, 1);
	assert_int_equal(res.survivors, 0);
	assert_int_equal(res.units_status, -1);
	assert_int_equal(res.command_status, -1);
	assert_non_null(strstr(res.detail, "signal TERM: 1 holder(s), 1 signalled, 0 still running"));
	w = waitpid(pid, &st, 0);
	assert_int_equal(w, pid);
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM);

	/* A holder that ignores the signal is reported, and the run fails. */
	pid = holder(true);
	proc_of(root, sizeof(root), pid);
	h.timeout_ms = 200;
	assert_int_equal(lc_hook_run(&h, &env, "ws1", "v1", "test", devs, 1, &res), -EIO);
	assert_false(res.ok);
	assert_int_equal(res.signalled, 1);
	assert_int_equal(res.survivors, 1);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static void test_run_command(void **state)
{
	struct lc_ws_hook h = { .timeout_ms = 10000 };
	struct lc_hook_result res;
	char script[200], out[300], text[1024], buf[4096];
	FILE *f;
	size_t len;

	(void)state;
	setenv("LC_HOOK_TEST_SECRET", "must-not-leak", 1);
	snprintf(script, sizeof(script), "%s/cmd", dir);
	snprintf(out, sizeof(out), "%s/env.out", dir);
	snprintf(text, sizeof(text), "#!/bin/sh\n/usr/bin/env > %s\necho \"$#\" >> %s\nexit 3\n",
		 out, out);
	put(script, text, 0700);
	snprintf(h.command, sizeof(h.command), "%s", script);
	assert_int_equal(lc_hook_run(&h, NULL, "ws-a", "v1,v2", "CMK k is disabled", NULL, 0, &res),
			 -EIO);
	assert_int_equal(res.command_status, 3);
	assert_non_null(strstr(res.detail, "command: exit 3"));
	f = fopen(out, "r");
	assert_non_null(f);
	len = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[len] = '\0';
	assert_non_null(strstr(buf, "LAKECRYPT_WORKSPACE=ws-a\n"));
	assert_non_null(strstr(buf, "LAKECRYPT_VOLUMES=v1,v2\n"));
	assert_non_null(strstr(buf, "LAKECRYPT_REASON=CMK k is disabled\n"));
	assert_non_null(strstr(buf, "PATH=/usr/sbin:/usr/bin:/sbin:/bin\n"));
	assert_null(strstr(buf, "must-not-leak"));
	assert_non_null(strstr(buf, "\n0\n"));	/* no arguments */

	/* exit 0: success. */
	snprintf(text, sizeof(text), "#!/bin/sh\nexit 0\n");
	put(script, text, 0700);
	assert_int_equal(lc_hook_run(&h, NULL, "ws-a", "v1", "r", NULL, 0, &res), 0);
	assert_int_equal(res.command_status, 0);

	/* Past the timeout the process group is killed. */
	snprintf(text, sizeof(text), "#!/bin/sh\nsleep 30 &\nwait\n");
	put(script, text, 0700);
	h.timeout_ms = 200;
	assert_int_equal(lc_hook_run(&h, NULL, "ws-a", "v1", "r", NULL, 0, &res), -EIO);
	assert_int_equal(res.command_status, -2);
	assert_non_null(strstr(res.detail, "timed out"));

	/* A program that is not there. */
	snprintf(h.command, sizeof(h.command), "%.200s/missing", dir);
	assert_int_equal(lc_hook_run(&h, NULL, "ws-a", "v1", "r", NULL, 0, &res), -EIO);
	assert_int_equal(res.command_status, -3);
}

static void test_run_units(void **state)
{
	struct lc_ws_hook h = { .timeout_ms = 10000, .nunits = 2 };
	struct lc_hook_env env = { 0 };
	struct lc_hook_result res;
	char script[300], out[300], text[1024], buf[256];
	FILE *f;
	size_t len;

	(void)state;
	snprintf(h.units[0], LC_HOOK_UNIT_SIZE, "pg.service");
	snprintf(h.units[1], LC_HOOK_UNIT_SIZE, "worker@1.service");
	snprintf(script, sizeof(script), "%s/systemctl", dir);
	snprintf(out, sizeof(out), "%s/args.out", dir);
	snprintf(text, sizeof(text), "#!/bin/sh\necho \"$*\" > %s\n", out);
	put(script, text, 0700);
	env.systemctl = script;
	assert_int_equal(lc_hook_run(&h, &env, "ws", "v", "r", NULL, 0, &res), 0);
	assert_int_equal(res.units_status, 0);
	f = fopen(out, "r");
	assert_non_null(f);
	len = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[len] = '\0';
	assert_string_equal(buf, "stop -- pg.service worker@1.service\n");
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_checks),
		T(test_json),
		T(test_scan_fake),
		T(test_scan_real),
		T(test_run_signal),
		T(test_run_command),
		T(test_run_units),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
