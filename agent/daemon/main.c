// SPDX-License-Identifier: GPL-2.0
/*
 * lakecrypt-agent: command line, detaching, pid file.  Start-up, the
 * loop and shutdown are loop.c's.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <libgen.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "agent.h"
#include "registry-etcd.h"
#include "fileio.h"
#include "keyring.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: lakecrypt-agent [OPTIONS]\n"
		"\n"
		"The lakecrypt key agent: unwraps volume keys through the KMS, loads them\n"
		"into dm-lakecrypt, watches the CMKs for revocation and answers the control\n"
		"socket (Documentation/agent-protocol.md).\n"
		"\n"
		"Options (they override the configuration file):\n"
		"  -c, --config FILE     configuration file (default %s;\n"
		"                        a missing default file means built-in defaults)\n"
		"  -f, --foreground      stay in the foreground (systemd: Type=notify, READY=1\n"
		"                        is sent once the socket listens);\n"
		"                        logs go to stderr or syslog as configured\n"
		"  -s, --state-dir DIR   state directory: local KMS keys (DIR/kms),\n"
		"                        key configurations (DIR/registry.json)\n"
		"  -S, --socket PATH     control socket (its directory also holds\n"
		"                        volumes.json, the list of open volumes)\n"
		"  -a, --audit-log FILE  audit log (JSON lines)\n"
		"  -t, --check-config    read the configuration file with the agent's own\n"
		"                        parser and set up each KMS provider section as\n"
		"                        start-up does (keys, files, PKCS#11 module; no KMS\n"
		"                        is contacted); say what is wrong (FILE:LINE, or the\n"
		"                        section and why) or that it is valid, and exit 0/1;\n"
		"                        nothing is started\n"
		"  -h, --help            this text\n"
		"  -V, --version         print the version\n"
		"\n"
		"Without --foreground the agent detaches once it is listening (the\n"
		"command returns when the socket is ready, or fails with the reason),\n"
		"logs to syslog and writes its pid to agent.pid beside the socket.\n"
		"In the foreground no pid file is written.\n"
		"\n"
		"SIGTERM/SIGINT: clean shutdown (KEKs wiped, dm devices left as they are;\n"
		"a restarted agent finds them again).  SIGHUP: reopen the audit log.\n"
		"Exit status: 0 clean shutdown, 1 start-up failure, 2 bad usage.\n",
		LC_CONFIG_DEFAULT_PATH);
}

struct options {
	const char *config, *state_dir, *socket, *audit_log;
	bool foreground, check_config;
};

static int parse_args(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "state-dir", required_argument, NULL, 's' },
		{ "socket", required_argument, NULL, 'S' },
		{ "audit-log", required_argument, NULL, 'a' },
		{ "check-config", no_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	memset(o, 0, sizeof(*o));
	while ((c = getopt_long(argc, argv, "c:fs:S:a:thV", longopts, NULL)) != -1) {
		switch (c) {
		case 'c': o->config = optarg; break;
		case 'f': o->foreground = true; break;
		case 's': o->state_dir = optarg; break;
		case 'S': o->socket = optarg; break;
		case 'a': o->audit_log = optarg; break;
		case 't': o->check_config = true; break;
		case 'h': usage(stdout); exit(0);
		case 'V': printf("lakecrypt-agent %s\n", LC_AGENT_VERSION); exit(0);
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "lakecrypt-agent: unexpected argument \"%s\": the agent takes options only\n",
			argv[optind]);
		return -EINVAL;
	}
	return 0;
}

static int set_path(char *dst, size_t size, const char *src, const char *what)
{
	if (strlen(src) >= size) {
		fprintf(stderr, "lakecrypt-agent: %s \"%s\" is too long (at most %zu characters)\n",
			what, src, size - 1);
		return -ENAMETOOLONG;
	}
	memcpy(dst, src, strlen(src) + 1);
	return 0;
}

static int load_config(struct agent *a, const struct options *o)
{
	struct lc_error e;
	int r;

	r = lc_config_load(&a->cfg, o->config, &e);
	if (r == -ENOENT && !o->config) {
		lc_config_defaults(&a->cfg);
	} else if (r < 0) {
		fprintf(stderr, "lakecrypt-agent: %s\n", e.msg);
		return r;
	}
	if ((o->state_dir && set_path(a->cfg.state_dir, sizeof(a->cfg.state_dir), o->state_dir,
				      "state directory") < 0) ||
	    (o->socket && set_path(a->cfg.socket_path, sizeof(a->cfg.socket_path), o->socket,
				   "socket path") < 0) ||
	    (o->audit_log && set_path(a->cfg.audit_log, sizeof(a->cfg.audit_log), o->audit_log,
				      "audit log path") < 0))
		return -ENAMETOOLONG;
	return 0;
}

/* [registry] as start-up sets it up (registry-etcd.h: the endpoints, the
 * CA, certificate and key read; no member contacted).  1 if unusable: the
 * agent would not start. */
static int check_registry(const struct lc_config *cfg, const char *path)
{
	struct lc_etcd *ec = NULL;
	struct lc_error e;

	if (!cfg->registry_etcd) {
		printf("%s: [registry] file: %s/registry.json\n", path, cfg->state_dir);
		return 0;
	}
	if (lc_regetcd_client(cfg, &ec, &e) < 0) {
		fprintf(stderr, "lakecrypt-agent: %s: [registry] unusable: %s: the agent would not start\n",
			path, e.msg);
		return 1;
	}
	lc_etcd_free(ec);
	printf("%s: [registry] etcd: %s, prefix %s (files read; no member contacted)\n", path,
	       cfg->registry_endpoints, cfg->registry_prefix);
	if (!cfg->registry_backstop_interval_s)
		printf("%s: [registry] shared probes off (backstop_interval_s = 0): every agent probes every %u s\n",
		       path, cfg->watch_interval_s);
	else
		printf("%s: [registry] shared probes: per CMK one agent probes every %u s (lease %u s), the others at least every %u s%s\n",
		       path, cfg->watch_interval_s, cfg->registry_probe_lease_s,
		       cfg->registry_backstop_interval_s,
		       cfg->registry_backstop_interval_s <= cfg->watch_interval_s ?
		       " (not longer than watch_interval_s: nothing is saved)" : "");
	return 0;
}

/*
 * --check-config: the file through lc_config_load() (syntax, sections,
 * keys, value ranges, settings that cannot work together such as a
 * [revocation] whose watcher could never confirm), then every provider section through the same
 * set-up the agent runs at start (agent_providers_check(): required keys,
 * files readable with the right modes, the PKCS#11 module loadable; no
 * KMS is contacted), then exit: 0 valid (or no default file: built-in
 * defaults), 1 the parser's FILE:LINE message or the unusable sections
 * on stderr (the agent would start with those providers unavailable).
 */
static int check_config(const struct options *o)
{
	struct lc_config *cfg = calloc(1, sizeof(*cfg));
	struct lc_error e;
	const char *path = o->config ? o->config : LC_CONFIG_DEFAULT_PATH;
	char *rep = NULL;
	size_t replen = 0;
	FILE *f;
	int r, bad, regbad;

	if (!cfg) {
		fprintf(stderr, "lakecrypt-agent: out of memory\n");
		return 1;
	}
	r = lc_config_load(cfg, o->config, &e);
	if (r == -ENOENT && !o->config) {
		printf("%s does not exist: the built-in defaults apply\n", path);
		lc_config_defaults(cfg);
	} else if (r < 0) {
		fprintf(stderr, "lakecrypt-agent: %s\n", e.msg);
		free(cfg);
		return 1;
	} else {
		printf("%s: syntax valid\n", path);
	}
	printf("%s: lakecrypttab %s\n", path, cfg->lakecrypttab);
	printf("%s: crypttab %s\n", path, cfg->crypttab[0] ? cfg->crypttab : "(none)");
	f = open_memstream(&rep, &replen);
	bad = f ? agent_providers_check(cfg, f) : -ENOMEM;
	if (f)
		fclose(f);
	regbad = check_registry(cfg, path);
	free(cfg);
	if (bad < 0) {
		fprintf(stderr, "lakecrypt-agent: out of memory\n");
		free(rep);
		return 1;
	}
	/* "[kind] ok" lines to stdout, "[kind] unusable: ..." to stderr. */
	for (char *l = rep, *nl; l && *l; l = nl) {
		nl = strchr(l, '\n');
		if (nl)
			*nl++ = '\0';
		else
			nl = l + strlen(l);
		if (strstr(l, "] unusable: "))
			fprintf(stderr, "lakecrypt-agent: %s: %s\n", path, l);
		else
			printf("%s: %s\n", path, l);
	}
	free(rep);
	if (regbad)
		return 1;
	if (bad) {
		fprintf(stderr, "lakecrypt-agent: %s: %d provider section(s) unusable: the agent would start with %s unavailable\n",
			path, bad, bad == 1 ? "that provider" : "those providers");
		return 1;
	}
	printf("%s: configuration valid\n", path);
	return 0;
}

/* Detach; the parent exits once the child says it is ready (or why not). */
static int daemonize(int *ready_fd)
{
	int p[2];
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0) {
		char buf[LC_ERROR_MSG_MAX + 1];
		ssize_t n;

		close(p[1]);
		n = read(p[0], buf, sizeof(buf) - 1);
		if (n == 1 && buf[0] == '\0')
			_exit(0);
		if (n > 0) {
			buf[n] = '\0';
			fprintf(stderr, "lakecrypt-agent: %s\n", buf);
		} else {
			fprintf(stderr, "lakecrypt-agent: the agent exited during start-up (see syslog)\n");
		}
		_exit(1);
	}
	close(p[0]);
	setsid();
	*ready_fd = p[1];
	return 0;
}

static void dir_of(const char *path, char *out, size_t size)
{
	char tmp[PATH_MAX];

	snprintf(tmp, sizeof(tmp), "%s", path);
	snprintf(out, size, "%s", dirname(tmp));
}

static void write_pid_file(struct agent *a, char *path, size_t size)
{
	char dir[PATH_MAX], buf[32];
	int n;

	dir_of(a->cfg.socket_path, dir, sizeof(dir));
	if (snprintf(path, size, "%.*s/%s", (int)(size - sizeof(LC_AGENT_PID_FILE) - 2), dir,
		     LC_AGENT_PID_FILE) >= (int)size) {
		path[0] = '\0';
		return;
	}
	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (lc_file_write_atomic(path, buf, (size_t)n, 0644, NULL) < 0) {
		lc_warn("cannot write pid file %s", path);
		path[0] = '\0';
	}
}

int main(int argc, char **argv)
{
	struct agent a;
	struct options o;
	struct lc_error e = { 0 };
	char pid_path[PATH_MAX] = "";
	int ready_fd = -1, r;

	memset(&a, 0, sizeof(a));
	a.listen_fd = a.signal_fd = a.timer_fd = a.wake_fd = -1;
	a.groups = &lc_group_db_system;
	if (parse_args(argc, argv, &o) < 0)
		return 2;
	a.foreground = o.foreground;
	if (o.check_config)
		return check_config(&o);
	if (load_config(&a, &o) < 0)
		return 1;
	lc_log_open("lakecrypt-agent", a.cfg.log_syslog || !a.foreground, a.cfg.log_level);

	if (!a.foreground && daemonize(&ready_fd) < 0) {
		fprintf(stderr, "lakecrypt-agent: cannot detach: %s\n", strerror(errno));
		return 1;
	}
	r = lc_process_harden(&e);
	if (!r)
		r = agent_setup(&a, &e);
	if (r < 0) {
		lc_error_log("start-up failed: %s", e.msg);
		if (a.foreground)
			fprintf(stderr, "lakecrypt-agent: %s\n", e.msg);
		if (ready_fd >= 0 && write(ready_fd, e.msg, strlen(e.msg)) < 0)
			r = -EIO;
		agent_teardown(&a);
		return 1;
	}
	if (ready_fd >= 0) {
		int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);

		write_pid_file(&a, pid_path, sizeof(pid_path));
		if (devnull >= 0) {
			dup2(devnull, 0);
			dup2(devnull, 1);
			dup2(devnull, 2);
			close(devnull);
		}
		if (write(ready_fd, "", 1) < 0)
			lc_warn("the starting process has gone");
		close(ready_fd);
		if (chdir("/") < 0)
			lc_warn("chdir /: %s", strerror(errno));
	}
	lc_info("lakecrypt-agent %s listening on %s (state %s, audit %s, %zu open volume(s) known, watcher every %u s)",
		LC_AGENT_VERSION, a.cfg.socket_path, a.cfg.state_dir, a.cfg.audit_log, a.nvols,
		a.cfg.watch_interval_s);
	/* Volumes adopted from an earlier run that were revoked while no
	 * agent listened (udev does not retry the event). */
	agent_relock(&a);
	agent_check_kernel_revoked(&a);
	agent_unlock(&a);
	agent_notify_ready(&a);
	agent_run(&a);
	(void)agent_notify("STOPPING=1");
	agent_teardown(&a);
	if (pid_path[0])
		(void)unlink(pid_path);
	lc_info("stopped");
	return 0;
}
