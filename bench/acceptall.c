/*
 * acceptall.c - the ceiling for any libmilter filter: it accepts every
 * message and adds one header at end of message, doing nothing else.
 *
 *	acceptall [-n] -p SOCKET
 *
 * It negotiates what spfguard negotiates (no body, no DATA, no unknown
 * commands; may add headers) and, like spfguard (filter/milter.c), sets
 * TCP_NODELAY on its listening socket, which Linux copies to every
 * accepted connection: without it, the header added at end of message
 * costs ~40 ms (Nagle and delayed ACK, DESIGN.md section 1). So the
 * benchmarks compare spfguard with a filter that pays exactly the same
 * libmilter costs and nothing more. It runs in the foreground until
 * SIGTERM or SIGINT (libmilter notices within 5 s).
 *
 * With -n it also negotiates "no reply" (SMFIP_NR_*) for the events it
 * never refuses: connect, HELO, MAIL, each header and end of headers, so
 * the MTA sends those without waiting. That is not what spfguard does
 * today; it measures what such a change would be worth.
 */
#include <sys/socket.h>

#include <dirent.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libmilter/mfapi.h>

#define NOREPLY                                                                \
	(SMFIP_NR_CONN | SMFIP_NR_HELO | SMFIP_NR_MAIL | SMFIP_NR_HDR |        \
	    SMFIP_NR_EOH)

static bool noreply;	/* -n */
static char negotiated; /* the private data of a connection with no replies */

/* answer - what a callback that never refuses answers */
static sfsistat
answer(SMFICTX *ctx)
{
	return smfi_getpriv(ctx) == &negotiated ? SMFIS_NOREPLY
						: SMFIS_CONTINUE;
}

static sfsistat
on_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1, unsigned long f2,
    unsigned long f3, unsigned long *pf0, unsigned long *pf1,
    unsigned long *pf2, unsigned long *pf3)
{
	*pf0 = f0 & (SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_QUARANTINE);
	*pf1 = f1 & (SMFIP_NOBODY | SMFIP_NODATA | SMFIP_NOUNKNOWN);
	/* only if the MTA offers every one of them */
	if (noreply && (f1 & NOREPLY) == NOREPLY) {
		*pf1 |= NOREPLY;
		(void)smfi_setpriv(ctx, &negotiated);
	}
	*pf2 = 0;
	*pf3 = 0;
	return SMFIS_CONTINUE;
}

static sfsistat
on_connect(SMFICTX *ctx, char *hostname, _SOCK_ADDR *sa)
{
	return answer(ctx);
}

static sfsistat
on_helo(SMFICTX *ctx, char *helo)
{
	return answer(ctx);
}

static sfsistat
on_envfrom(SMFICTX *ctx, char **argv)
{
	return answer(ctx);
}

static sfsistat
on_envrcpt(SMFICTX *ctx, char **argv)
{
	return SMFIS_CONTINUE;
}

static sfsistat
on_header(SMFICTX *ctx, char *name, char *value)
{
	return answer(ctx);
}

static sfsistat
on_eoh(SMFICTX *ctx)
{
	return answer(ctx);
}

static sfsistat
on_eom(SMFICTX *ctx)
{
	if (smfi_addheader(ctx, "X-Acceptall", "accepted") != MI_SUCCESS)
		(void)fprintf(stderr, "acceptall: cannot add the header\n");
	return SMFIS_CONTINUE;
}

static sfsistat
on_abort(SMFICTX *ctx)
{
	return SMFIS_CONTINUE;
}

static sfsistat
on_close(SMFICTX *ctx)
{
	(void)smfi_setpriv(ctx, NULL);
	return SMFIS_CONTINUE;
}

static struct smfiDesc desc = {
    .xxfi_name = "acceptall",
    .xxfi_version = SMFI_VERSION,
    .xxfi_flags = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_QUARANTINE,
    .xxfi_connect = on_connect,
    .xxfi_helo = on_helo,
    .xxfi_envfrom = on_envfrom,
    .xxfi_envrcpt = on_envrcpt,
    .xxfi_header = on_header,
    .xxfi_eoh = on_eoh,
    .xxfi_eom = on_eom,
    .xxfi_abort = on_abort,
    .xxfi_close = on_close,
    .xxfi_negotiate = on_negotiate,
};

/* nodelay - TCP_NODELAY on every listening TCP socket of ours, as
 * spfguard does it (libmilter has no API for its socket) */
static int
nodelay(void)
{
	DIR *d;
	struct dirent *e;
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, on = 1, listening, n = 0;

	if ((d = opendir("/proc/self/fd")) == NULL)
		return -1;
	while ((e = readdir(d)) != NULL) {
		fd = atoi(e->d_name);
		if (e->d_name[0] == '.' || fd == dirfd(d))
			continue;
		len = sizeof(listening);
		if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening,
			&len) != 0 ||
		    !listening)
			continue;
		len = sizeof(ss);
		if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0 ||
		    (ss.ss_family != AF_INET && ss.ss_family != AF_INET6))
			continue;
		if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on)) ==
		    0)
			n++;
	}
	(void)closedir(d);
	return n;
}

static void __attribute__((noreturn)) usage(void)
{
	(void)fprintf(stderr, "usage: acceptall [-n] -p SOCKET\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	const char *socket = NULL;
	int ch;

	while ((ch = getopt(argc, argv, "np:")) != -1) {
		if (ch == 'n')
			noreply = true;
		else if (ch == 'p')
			socket = optarg;
		else
			usage();
	}
	if (socket == NULL || optind != argc)
		usage();
	if (smfi_register(desc) != MI_SUCCESS ||
	    smfi_setconn((char *)socket) != MI_SUCCESS ||
	    smfi_opensocket(true) != MI_SUCCESS) {
		(void)fprintf(stderr, "acceptall: cannot listen on %s\n",
		    socket);
		return 1;
	}
	if (strncmp(socket, "inet", 4) == 0 && nodelay() < 1)
		(void)fprintf(stderr, "acceptall: no TCP_NODELAY on %s\n",
		    socket);
	return smfi_main() == MI_SUCCESS ? 0 : 1;
}
