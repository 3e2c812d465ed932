/*
 * milter.c - the libmilter glue: callbacks copy the SMTP facts out of
 * libmilter into the connection context (ctx.c), and translate what comes
 * back into libmilter calls. Nothing here decides anything.
 *
 * libmilter's private pointer is a struct session, owned here: made by
 * on_negotiate (or by the first callback, for a session that never
 * negotiated), freed with its struct conn by on_close. It holds the
 * connection context and the no-reply flags negotiated.
 *
 * No reply (protocol 6): spfguard refuses only at RCPT and acts only at end
 * of message, and the MTA waiting for a "continue" to each header and to
 * end of headers cost a round trip each (9 of a message's 15, bench/
 * README.md). So on_negotiate asks for SMFIP_NR_HDR and SMFIP_NR_EOH, and
 * callbacks return go_on(): SMFIS_NOREPLY exactly where the flag was
 * negotiated. NOREPLY where it was not would leave the MTA waiting for an
 * answer that never comes (CONTINUE where it was, libmilter drops and
 * logs). libmilter offers every NR flag to the negotiate callback, keeps
 * out of its answer those the MTA lacks and sends "continue" for them
 * itself: an older MTA sees what it saw before. Not for connect, HELO and
 * MAIL, although they never refuse either: Postfix keeps a command it
 * expects no answer to in its buffer until one that needs an answer, so
 * they would reach us only with the first RCPT, and the lookups ctx.c
 * starts there (blocklists at connect, the HELO check, the MAIL FROM
 * check) would no longer overlap the SMTP client's round trips; headers
 * start nothing. close cannot tell QUIT from QUIT_NC (a new SMTP session
 * on the same milter connection, which neither Postfix nor Sendmail
 * sends), so after QUIT_NC the flags are forgotten and the callbacks
 * return CONTINUE, which libmilter turns into the negotiated silence,
 * with a log line.
 *
 * Reply texts come from the policy (which already keeps them printable and
 * bounded); here '%' is doubled, because libmilter documents a single '%'
 * as making the MTA drop the text.
 *
 * TCP_NODELAY: with Nagle and delayed ACKs a filter on TCP that adds a
 * header at end of message waits ~40 ms per message (DESIGN.md section
 * 1). libmilter has no API for its socket, so after smfi_opensocket() the
 * listening descriptor is found among our open descriptors; Linux copies
 * the option to every accepted connection.
 */
#include "autoconf.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libmilter/mfapi.h>

#include "buf.h"
#include "ctx.h"
#include "log.h"
#include "milter.h"
#include "xalloc.h"

#define REPLY_TEXT_MAX 900 /* libmilter refuses over 980 */

/* no reply negotiated for these (see above) */
#define NR_STAGES (SMFIP_NR_HDR | SMFIP_NR_EOH)

/* libmilter's private pointer */
struct session {
	struct conn *conn; /* NULL until connect or first use */
	unsigned long nr;  /* SMFIP_NR_* negotiated: stages never answered */
};

static struct runtime *rt;

/* session_of - the session, created if negotiate was never seen */
static struct session *
session_of(SMFICTX *ctx)
{
	struct session *s = smfi_getpriv(ctx);

	if (s == NULL) {
		s = xcalloc(1, sizeof(*s));
		(void)smfi_setpriv(ctx, s);
	}
	return s;
}

/* conn_of - the context, created if connect was never seen */
static struct conn *
conn_of(SMFICTX *ctx)
{
	struct session *s = session_of(ctx);

	if (s->conn == NULL)
		s->conn = ctx_connect(rt, NULL, NULL);
	return s->conn;
}

/* go_on - "continue" at a stage: no reply where one was negotiated away */
static sfsistat
go_on(SMFICTX *ctx, unsigned long nr_flag)
{
	struct session *s = smfi_getpriv(ctx);

	return s != NULL && (s->nr & nr_flag) != 0 ? SMFIS_NOREPLY
						   : SMFIS_CONTINUE;
}

static const char *
macro(SMFICTX *ctx, const char *name)
{
	const char *v = smfi_getsymval(ctx, (char *)name);

	return v != NULL && *v != '\0' ? v : NULL;
}

static sfsistat
on_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1, unsigned long f2,
    unsigned long f3, unsigned long *pf0, unsigned long *pf1,
    unsigned long *pf2, unsigned long *pf3)
{
	*pf0 = f0 & (SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_QUARANTINE);
	/* no body, no DATA, no unknown commands: nothing to do there; no
	   reply where spfguard always continues */
	*pf1 = f1 & (SMFIP_NOBODY | SMFIP_NODATA | SMFIP_NOUNKNOWN | NR_STAGES);
	*pf2 = 0;
	*pf3 = 0;
	session_of(ctx)->nr = *pf1 & NR_STAGES;
	return SMFIS_CONTINUE;
}

static sfsistat
on_connect(SMFICTX *ctx, char *hostname, _SOCK_ADDR *sa)
{
	struct session *s;
	char ip[INET6_ADDRSTRLEN];
	const char *addr = NULL, *name = hostname;

	if (sa != NULL && sa->sa_family == AF_INET &&
	    inet_ntop(AF_INET, &((struct sockaddr_in *)sa)->sin_addr, ip,
		sizeof(ip)) != NULL)
		addr = ip;
	else if (sa != NULL && sa->sa_family == AF_INET6 &&
	    inet_ntop(AF_INET6, &((struct sockaddr_in6 *)sa)->sin6_addr, ip,
		sizeof(ip)) != NULL)
		addr = ip;
	/* Postfix says "unknown", Sendmail "[192.0.2.1]" for no name */
	if (name != NULL && (name[0] == '[' || strcmp(name, "unknown") == 0))
		name = NULL;
	s = session_of(ctx);
	ctx_close(s->conn);
	s->conn = ctx_connect(rt, addr, name);
	return go_on(ctx, SMFIP_NR_CONN);
}

static sfsistat
on_helo(SMFICTX *ctx, char *helo)
{
	ctx_helo(conn_of(ctx), helo);
	return go_on(ctx, SMFIP_NR_HELO);
}

static sfsistat
on_envfrom(SMFICTX *ctx, char **argv)
{
	ctx_mail(conn_of(ctx), argv != NULL ? argv[0] : NULL,
	    macro(ctx, "{auth_authen}"), macro(ctx, "i"));
	return go_on(ctx, SMFIP_NR_MAIL);
}

/* reply_text - the policy's text with '%' doubled, bounded */
static char *
reply_text(const char *s)
{
	struct buf b;

	buf_init(&b);
	for (; *s != '\0' && b.len < REPLY_TEXT_MAX; s++) {
		if (*s == '%')
			buf_addc(&b, '%');
		buf_addc(&b, *s);
	}
	return buf_release(&b);
}

static sfsistat
on_envrcpt(SMFICTX *ctx, char **argv)
{
	struct ctx_reply r;
	char code[8], *text;

	ctx_rcpt(conn_of(ctx), argv != NULL ? argv[0] : NULL, &r);
	if (!r.refuse)
		return SMFIS_CONTINUE;
	(void)snprintf(code, sizeof(code), "%d", r.code);
	text = reply_text(r.text);
	if (smfi_setreply(ctx, code, r.xcode[0] != '\0' ? r.xcode : NULL,
		text) != MI_SUCCESS)
		log_warnx("libmilter refused the reply %s %s", code, r.xcode);
	free(text);
	return r.code >= 500 ? SMFIS_REJECT : SMFIS_TEMPFAIL;
}

static sfsistat
on_header(SMFICTX *ctx, char *name, char *value)
{
	ctx_header(conn_of(ctx), name, value != NULL ? value : "");
	return go_on(ctx, SMFIP_NR_HDR);
}

static sfsistat
on_eoh(SMFICTX *ctx)
{
	ctx_queue_id(conn_of(ctx), macro(ctx, "i"));
	return go_on(ctx, SMFIP_NR_EOH);
}

static sfsistat
on_eom(SMFICTX *ctx)
{
	struct conn *c = conn_of(ctx);
	struct ctx_eom e;
	size_t i;

	ctx_queue_id(c, macro(ctx, "i"));
	ctx_eom(c, &e);
	/* last first, so that each index still names the same field */
	for (i = e.nremove_ar; i > 0; i--)
		if (smfi_chgheader(ctx, "Authentication-Results",
			(int)e.remove_ar[i - 1], NULL) != MI_SUCCESS)
			log_warnx("cannot remove a forged "
				  "Authentication-Results");
	if (e.received_spf != NULL &&
	    smfi_insheader(ctx, 0, "Received-SPF", (char *)e.received_spf) !=
		MI_SUCCESS)
		log_warnx("cannot add Received-SPF");
	if (e.auth_results != NULL &&
	    smfi_insheader(ctx, 0, "Authentication-Results",
		(char *)e.auth_results) != MI_SUCCESS)
		log_warnx("cannot add Authentication-Results");
	if (e.tag_name != NULL &&
	    smfi_addheader(ctx, (char *)e.tag_name, (char *)e.tag_value) !=
		MI_SUCCESS)
		log_warnx("cannot add %s", e.tag_name);
	if (e.quarantine != NULL &&
	    smfi_quarantine(ctx, (char *)e.quarantine) != MI_SUCCESS)
		log_warnx("cannot quarantine");
	ctx_eom_done(c);
	return SMFIS_CONTINUE;
}

static sfsistat
on_abort(SMFICTX *ctx)
{
	ctx_abort(conn_of(ctx));
	return SMFIS_CONTINUE;
}

/* on_close - at QUIT, QUIT_NC or the end of the connection (maybe twice) */
static sfsistat
on_close(SMFICTX *ctx)
{
	struct session *s = smfi_getpriv(ctx);

	if (s != NULL) {
		ctx_close(s->conn);
		free(s);
	}
	(void)smfi_setpriv(ctx, NULL);
	return SMFIS_CONTINUE;
}

static struct smfiDesc desc = {
    .xxfi_name = "spfguard",
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

/* nodelay - TCP_NODELAY on every listening TCP socket of ours */
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

int
milter_open(struct runtime *r, const char *socket, int mode, const char *group,
    char *err, size_t errlen)
{
	const char *path = NULL;
	struct group *gr;

	rt = r;
	if (smfi_register(desc) != MI_SUCCESS) {
		(void)snprintf(err, errlen, "smfi_register failed");
		return -1;
	}
	if (smfi_setconn((char *)socket) != MI_SUCCESS) {
		(void)snprintf(err, errlen, "bad socket %s", socket);
		return -1;
	}
	if (strncmp(socket, "unix:", 5) == 0)
		path = socket + 5;
	else if (strncmp(socket, "local:", 6) == 0)
		path = socket + 6;
	if (smfi_opensocket(true) != MI_SUCCESS) {
		(void)snprintf(err, errlen, "cannot open socket %s", socket);
		return -1;
	}
	if (path == NULL) {
		if (nodelay() < 1)
			log_warnx("could not set TCP_NODELAY on %s", socket);
		else
			log_info("TCP_NODELAY set on %s", socket);
		return 0;
	}
	if (mode >= 0 && chmod(path, (mode_t)mode) != 0) {
		(void)snprintf(err, errlen, "chmod %s: %s", path,
		    strerror(errno));
		return -1;
	}
	if (group != NULL) {
		if ((gr = getgrnam(group)) == NULL) {
			(void)snprintf(err, errlen, "unknown group %s", group);
			return -1;
		}
		if (chown(path, (uid_t)-1, gr->gr_gid) != 0) {
			(void)snprintf(err, errlen, "chown %s: %s", path,
			    strerror(errno));
			return -1;
		}
	}
	return 0;
}

int
milter_run(void)
{
	return smfi_main() == MI_SUCCESS ? 0 : -1;
}

void
milter_stop(void)
{
	(void)smfi_stop();
}
