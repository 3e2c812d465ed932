/*
 * mgconn.c - one milter connection of miltergen, as Postfix's milter8
 * client drives it: option negotiation, connect, HELO, then per message
 * MAIL, RCPT..., DATA, headers, end of headers, body, end of message, ABORT,
 * and QUIT. Events the filter asked not to get (SMFIP_NO*) are not sent,
 * replies it will not send (SMFIP_NR_*) are not awaited; every reply type
 * is understood (see miltergen.c). Connections are non-blocking and driven
 * by miltergen.c's epoll loop; a connection that ends is closed at once and
 * freed by conn_reap() after the current event, so that no event refers
 * to freed memory.
 *
 * Latency per stage runs from the first packet of the stage to the reply
 * that ends it (stages the filter does not answer are not counted); a
 * message's total runs from the connect (first message) or from MAIL.
 */
#include <sys/epoll.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "miltergen.h"

#define MAX_LINE   1024
#define MAX_PACKET (1024 * 1024)
#define CHUNK	   65535 /* a body chunk, as Postfix sends them */

enum step {
	ST_CONNECTING,
	ST_OPTNEG,
	ST_CONNECT,
	ST_HELO,
	ST_MAIL,
	ST_RCPT,
	ST_DATA,
	ST_HEADER,
	ST_EOH,
	ST_BODY,
	ST_EOM,
};

/* the stage each step's time counts in */
static const int step_stage[] = {
    [ST_CONNECTING] = STG_CONNECT,
    [ST_OPTNEG] = STG_CONNECT,
    [ST_CONNECT] = STG_CONNECT,
    [ST_HELO] = STG_HELO,
    [ST_MAIL] = STG_MAIL,
    [ST_RCPT] = STG_RCPT,
    [ST_DATA] = STG_DATA,
    [ST_HEADER] = STG_HEADER,
    [ST_EOH] = STG_EOH,
    [ST_BODY] = STG_BODY,
    [ST_EOM] = STG_EOM,
};

struct conn {
	struct conn *prev, *next; /* every live connection, or the dead */
	int fd;
	int klass;
	bool dead;
	enum step step;
	unsigned idx;	    /* recipient, header or body chunk */
	unsigned naccepted; /* recipients accepted */
	int refusal;	    /* decision of the first refused recipient */
	unsigned msgs;	    /* messages begun on this connection */
	uint64_t seq;	    /* envelope of the current message */
	uint64_t ip_seq;    /* envelope of the first message */
	uint64_t t_step;    /* start of the current stage */
	uint64_t t_msg;	    /* start of the current message */
	uint64_t t_active;  /* last byte in or out */
	bool in_msg;	    /* a message is under way */
	bool waiting;	    /* a reply is awaited */
	bool answered;	    /* the filter answered in this stage */
	uint32_t pflags;    /* the filter's protocol flags */
	char qid[24];
	struct obuf out;
	unsigned char *in;
	size_t inlen, incap;
};

static const struct mg_config *cf;
static struct results *res;
static unsigned long slow_started, fast_since_slow;
static unsigned open_fast, open_slow;
static struct conn *live, *dead;
static volatile sig_atomic_t stopping;

static void
unlink_conn(struct conn **head, struct conn *c)
{
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		*head = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
}

static void
link_conn(struct conn **head, struct conn *c)
{
	c->prev = NULL;
	c->next = *head;
	if (*head != NULL)
		(*head)->prev = c;
	*head = c;
}

/* conn_end - close a connection; it is freed after the current event */
static void
conn_end(struct conn *c)
{
	if (c->dead)
		return;
	c->dead = true;
	if (c->fd >= 0) {
		(void)epoll_ctl(cf->ep, EPOLL_CTL_DEL, c->fd, NULL);
		(void)close(c->fd);
		c->fd = -1;
	}
	if (c->klass == CLASS_SLOW)
		open_slow--;
	else
		open_fast--;
	unlink_conn(&live, c);
	link_conn(&dead, c);
}

void
conn_reap(void)
{
	struct conn *c;

	while ((c = dead) != NULL) {
		unlink_conn(&dead, c);
		free(c->out.data);
		free(c->in);
		free(c);
	}
}

/* want_write - poll for writability only while output is pending */
static void
want_write(struct conn *c, bool on)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN | (on ? EPOLLOUT : 0U);
	ev.data.ptr = c;
	(void)epoll_ctl(cf->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* error - the connection failed: count it and drop it */
static void
error(struct conn *c, enum mg_error e)
{
	res->errors[e]++;
	if (c->in_msg && mg_now_us() >= cf->t0)
		res->lost[c->klass]++;
	c->in_msg = false;
	conn_end(c);
}

/* flush - write what is pending; false if the connection failed */
static bool
flush(struct conn *c)
{
	ssize_t n;

	while (c->out.off < c->out.len) {
		n = send(c->fd, c->out.data + c->out.off,
		    c->out.len - c->out.off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			want_write(c, true);
			return true;
		}
		if (n <= 0) {
			error(c, ERR_IO);
			return false;
		}
		c->out.off += (size_t)n;
	}
	c->out.off = c->out.len = 0;
	c->t_active = mg_now_us();
	return true;
}

/* record_msg - a finished message's latency and decision */
static void
record_msg(struct conn *c, int decision)
{
	uint64_t t = mg_now_us();
	struct class_stats *s = &res->cls[c->klass];

	c->in_msg = false;
	if (t < cf->t0)
		return;
	s->messages++;
	if (cf->t_end == 0 || t <= cf->t_end)
		s->in_window++;
	s->decisions[decision]++;
	hist_add(&s->stage[STG_TOTAL], t - c->t_msg);
	if ((double)(t - c->t_msg) > cf->stall * 1e6)
		s->stalls[STG_TOTAL]++;
	hist_add(&s->by_decision[decision], t - c->t_msg);
	if (cf->t_end == 0 && (double)(t - cf->t0) / 1e6 > res->window)
		res->window = (double)(t - cf->t0) / 1e6;
}

static void
record_stage(struct conn *c, int stage)
{
	uint64_t t = mg_now_us();
	struct class_stats *s = &res->cls[c->klass];

	if (t >= cf->t0) {
		hist_add(&s->stage[stage], t - c->t_step);
		if ((double)(t - c->t_step) > cf->stall * 1e6)
			s->stalls[stage]++;
	}
	c->t_step = t;
}

/* conn_may_start - may another message start now? */
bool
conn_may_start(void)
{
	if (stopping)
		return false;
	if (cf->messages > 0 && res->started >= cf->messages)
		return false;
	if (cf->t_end > 0 && mg_now_us() >= cf->t_end)
		return false;
	return true;
}

static void
new_message(struct conn *c)
{
	if (c->klass == CLASS_SLOW)
		c->seq = slow_started++;
	else
		c->seq = res->started - slow_started;
	res->started++;
	c->msgs++;
	c->t_msg = c->t_step = mg_now_us();
	c->in_msg = true;
	c->idx = 0;
	c->naccepted = 0;
	c->refusal = -1;
	(void)snprintf(c->qid, sizeof(c->qid), "%llX%03X",
	    (unsigned long long)(c->t_msg & 0xffffffffffULL),
	    (unsigned)(c->seq & 0xfff));
}

/* conn_open - a new milter connection and its first message */
void
conn_open(int klass)
{
	struct conn *c;
	struct epoll_event ev;
	int fd, on = 1;

	c = mg_calloc(sizeof(*c));
	c->klass = klass;
	if (klass == CLASS_SLOW)
		open_slow++;
	else
		open_fast++;
	link_conn(&live, c);
	new_message(c);
	c->ip_seq = c->seq;
	c->t_active = c->t_msg;
	c->step = ST_CONNECTING;
	fd = socket(cf->addr.ss_family,
	    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	c->fd = fd;
	if (fd < 0) {
		error(c, ERR_CONNECT);
		return;
	}
	if (cf->addr.ss_family != AF_UNIX)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLOUT | EPOLLIN;
	ev.data.ptr = c;
	if (epoll_ctl(cf->ep, EPOLL_CTL_ADD, fd, &ev) != 0 ||
	    (connect(fd, (struct sockaddr *)&cf->addr, cf->addrlen) != 0 &&
		errno != EINPROGRESS))
		error(c, ERR_CONNECT);
}

/* maybe_slow - one slow message after every slow_every others */
static void
maybe_slow(void)
{
	if (cf->slow.n == 0 || !conn_may_start())
		return;
	if (++fast_since_slow < cf->slow_every)
		return;
	fast_since_slow = 0;
	if (open_slow >= cf->slow_max) {
		res->slow_skipped++;
		return;
	}
	conn_open(CLASS_SLOW);
}

static void advance(struct conn *);

/* finish - the message ended with a decision: the next one, or QUIT */
static void
finish(struct conn *c, int decision, bool session_over)
{
	record_msg(c, decision);
	if (c->klass == CLASS_FAST)
		maybe_slow();
	if (session_over) {
		/* Postfix closes the stream: no ABORT, no QUIT */
		if (flush(c))
			conn_end(c);
		return;
	}
	obuf_cmd(&c->out, SMFIC_ABORT, NULL, 0);
	if (c->klass == CLASS_FAST && c->msgs < cf->per_conn &&
	    conn_may_start()) {
		new_message(c);
		c->step = ST_MAIL;
		advance(c);
		return;
	}
	obuf_cmd(&c->out, SMFIC_QUIT, NULL, 0);
	if (flush(c))
		conn_end(c);
}

/* event - an event's macros, then the event unless the filter asked not
 * to get it; true when a reply is to be awaited */
static bool
event(struct conn *c, char cmd, const char *const *kv, uint32_t noflag,
    uint32_t nrflag, const void *data, size_t len)
{
	if (kv != NULL)
		obuf_macro(&c->out, cmd, kv);
	if (noflag != 0 && (c->pflags & noflag) != 0)
		return false;
	obuf_cmd(&c->out, cmd, data, len);
	return nrflag == 0 || (c->pflags & nrflag) == 0;
}

/* step_connect - the connect event, in Postfix's form */
static bool
step_connect(struct conn *c)
{
	const char *ip = mg_pick(&cf->ips, c->ip_seq);
	const unsigned char port[2] = {0x30, 0x39}; /* 12345 */
	char name[80];
	const char *kv[] = {"j", "mx.bench.example", "{daemon_name}", "smtpd",
	    "{daemon_addr}", "127.0.0.1", "v", "Postfix 3.7.11", "_", name,
	    NULL};
	struct obuf d = {0};
	bool wait;

	(void)snprintf(name, sizeof(name), "unknown [%s]", ip);
	obuf_put(&d, "[", 1);
	obuf_put(&d, ip, strlen(ip));
	obuf_put(&d, "]", 2);
	obuf_put(&d, strchr(ip, ':') != NULL ? "6" : "4", 1);
	obuf_put(&d, port, 2);
	obuf_put(&d, ip, strlen(ip) + 1);
	wait = event(c, SMFIC_CONNECT, kv, SMFIP_NOCONNECT, SMFIP_NR_CONN,
	    d.data, d.len);
	free(d.data);
	return wait;
}

static const char *
sender_of(const struct conn *c)
{
	return c->klass == CLASS_SLOW ? mg_pick(&cf->slow, c->seq)
				      : mg_pick(&cf->senders, c->seq);
}

static bool
step_mail(struct conn *c)
{
	const char *s = sender_of(c), *at = strrchr(s, '@');
	const char *kv[] = {"{mail_addr}", s, "{mail_host}",
	    at != NULL ? at + 1 : "", "{mail_mailer}", "smtp", NULL};
	char arg[MAX_LINE + 4];
	int n;

	n = snprintf(arg, sizeof(arg), "<%s>", s);
	return event(c, SMFIC_MAIL, kv, SMFIP_NOMAIL, SMFIP_NR_MAIL, arg,
	    (size_t)n + 1);
}

/* step_rcpt - recipient c->idx; Postfix has a queue id from the second */
static bool
step_rcpt(struct conn *c)
{
	const char *r = mg_pick(&cf->recipients, c->seq * cf->rcpts + c->idx);
	const char *at = strrchr(r, '@');
	const char *kv[] = {"{rcpt_addr}", r, "{rcpt_host}",
	    at != NULL ? at + 1 : "", "{rcpt_mailer}", "smtp",
	    c->idx > 0 ? "i" : NULL, c->qid, NULL};
	char arg[MAX_LINE + 4];
	int n;

	n = snprintf(arg, sizeof(arg), "<%s>", r);
	return event(c, SMFIC_RCPT, kv, SMFIP_NORCPT, SMFIP_NR_RCPT, arg,
	    (size_t)n + 1);
}

/* step_header - header c->idx of the message */
static bool
step_header(struct conn *c)
{
	const char *kv[] = {"i", c->qid, NULL};
	char name[32], value[MAX_LINE + 64];
	struct obuf d = {0};
	bool wait;

	switch (c->idx) {
	case 0:
		(void)snprintf(name, sizeof(name), "From");
		(void)snprintf(value, sizeof(value), "<%s>", sender_of(c));
		break;
	case 1:
		(void)snprintf(name, sizeof(name), "To");
		(void)snprintf(value, sizeof(value), "<%s>",
		    mg_pick(&cf->recipients, c->seq * cf->rcpts));
		break;
	case 2:
		(void)snprintf(name, sizeof(name), "Subject");
		(void)snprintf(value, sizeof(value), "bench message %llu",
		    (unsigned long long)c->seq);
		break;
	case 3:
		(void)snprintf(name, sizeof(name), "Message-ID");
		(void)snprintf(value, sizeof(value), "<%s.%llu@bench.example>",
		    c->qid, (unsigned long long)c->seq);
		break;
	case 4:
		(void)snprintf(name, sizeof(name), "Date");
		(void)snprintf(value, sizeof(value),
		    "Thu, 26 Nov 2026 10:00:00 +0000");
		break;
	default:
		(void)snprintf(name, sizeof(name), "X-Bench-%u", c->idx);
		(void)snprintf(value, sizeof(value), "filler header %u",
		    c->idx);
		break;
	}
	obuf_put(&d, name, strlen(name) + 1);
	obuf_put(&d, value, strlen(value) + 1);
	wait = event(c, SMFIC_HEADER, kv, SMFIP_NOHDRS, SMFIP_NR_HDR, d.data,
	    d.len);
	free(d.data);
	return wait;
}

/* next_step - move on once the current step's event is answered */
static void
next_step(struct conn *c)
{
	enum step s = c->step;

	if (s == ST_RCPT && ++c->idx < cf->rcpts)
		return;
	if (s == ST_HEADER && ++c->idx < cf->headers)
		return;
	if (s == ST_BODY && (size_t)++c->idx * CHUNK < cf->body)
		return;
	/* a stage the filter did not answer has no latency */
	if (c->answered)
		record_stage(c, step_stage[s]);
	else
		c->t_step = mg_now_us();
	c->answered = false;
	c->idx = 0;
	c->step = s + 1;
}

/* send_step - the current step's packets; true if a reply is awaited */
static bool
send_step(struct conn *c)
{
	const char *i_kv[] = {"i", c->qid, NULL}, *none[] = {NULL};
	const char *helo;
	size_t off, len;

	switch (c->step) {
	case ST_CONNECTING:
		return true;
	case ST_OPTNEG:
		obuf_optneg(&c->out);
		return true;
	case ST_CONNECT:
		return step_connect(c);
	case ST_HELO:
		helo = mg_pick(&cf->helos, c->ip_seq);
		return event(c, SMFIC_HELO, none, SMFIP_NOHELO, SMFIP_NR_HELO,
		    helo, strlen(helo) + 1);
	case ST_MAIL:
		return step_mail(c);
	case ST_RCPT:
		if (step_rcpt(c))
			return true;
		c->naccepted++; /* not asked, or no reply: accepted */
		return false;
	case ST_DATA:
		return event(c, SMFIC_DATA, i_kv, SMFIP_NODATA, SMFIP_NR_DATA,
		    NULL, 0);
	case ST_HEADER:
		if (cf->headers == 0 || (c->pflags & SMFIP_NOHDRS) != 0) {
			c->idx = cf->headers;
			return false;
		}
		return step_header(c);
	case ST_EOH:
		if ((c->pflags & SMFIP_NOEOH) != 0)
			return false;
		return event(c, SMFIC_EOH, i_kv, 0, SMFIP_NR_EOH, NULL, 0);
	case ST_BODY:
		if (cf->body == 0 || (c->pflags & SMFIP_NOBODY) != 0) {
			c->idx = (unsigned)(cf->body / CHUNK);
			return false;
		}
		off = (size_t)c->idx * CHUNK;
		len = cf->body - off > CHUNK ? CHUNK : cf->body - off;
		return event(c, SMFIC_BODY, i_kv, 0, SMFIP_NR_BODY,
		    cf->body_text + off, len);
	case ST_EOM:
		return event(c, SMFIC_BODYEOB, i_kv, 0, 0, NULL, 0);
	}
	return true;
}

/* advance - send events until one awaits a reply, then flush */
static void
advance(struct conn *c)
{
	for (;;) {
		if (c->step == ST_DATA && c->naccepted == 0) {
			/* every recipient refused: Postfix goes no further */
			finish(c, c->refusal >= 0 ? c->refusal : DEC_REJECT,
			    false);
			return;
		}
		if (send_step(c))
			break;
		next_step(c);
	}
	c->waiting = true;
	(void)flush(c);
}

/* decision_of - the decision a reply makes; -1: continue */
static int
decision_of(char cmd, const unsigned char *data, size_t len)
{
	switch (cmd) {
	case SMFIR_CONTINUE:
		return -1;
	case SMFIR_ACCEPT:
		return DEC_ACCEPT;
	case SMFIR_REJECT:
		return DEC_REJECT;
	case SMFIR_TEMPFAIL:
		return DEC_TEMPFAIL;
	case SMFIR_DISCARD:
		return DEC_DISCARD;
	case SMFIR_REPLYCODE:
		return len > 0 && data[0] == '4' ? DEC_TEMPFAIL : DEC_REJECT;
	default:
		return DEC_OTHER;
	}
}

/* on_optneg - the filter's answer to option negotiation */
static void
on_optneg(struct conn *c, char cmd, const unsigned char *d, size_t len)
{
	uint32_t v[3];

	if (cmd != SMFIC_OPTNEG || len < sizeof(v)) {
		error(c, ERR_PROTOCOL);
		return;
	}
	memcpy(v, d, sizeof(v));
	res->version = ntohl(v[0]);
	res->actions = ntohl(v[1]);
	c->pflags = res->protocol = ntohl(v[2]);
	c->waiting = false;
	c->answered = true;
	c->step = ST_CONNECT;
	advance(c);
}

/* on_reply - one packet from the filter */
static void
on_reply(struct conn *c, char cmd, const unsigned char *d, size_t len)
{
	enum step s = c->step;
	int dec, m;

	if (!c->waiting) {
		error(c, ERR_PROTOCOL);
		return;
	}
	if (cmd == SMFIR_PROGRESS)
		return;
	c->answered = true;
	if (s == ST_OPTNEG) {
		on_optneg(c, cmd, d, len);
		return;
	}
	if ((m = mg_modification(cmd)) != 0) {
		res->mods[m - 1]++;
		return;
	}
	if (cmd == SMFIR_SHUTDOWN || cmd == SMFIR_CONN_FAIL) {
		res->shutdowns++;
		c->waiting = false;
		finish(c, DEC_TEMPFAIL, true);
		return;
	}
	c->waiting = false;
	if (cmd == SMFIR_SKIP) {
		if (s == ST_BODY) {
			c->idx = (unsigned)(cf->body / CHUNK);
			next_step(c);
		} else
			next_step(c);
		advance(c);
		return;
	}
	if ((dec = decision_of(cmd, d, len)) == DEC_OTHER) {
		error(c, ERR_PROTOCOL);
		return;
	}
	if (s == ST_RCPT && dec != DEC_ACCEPT && dec != DEC_DISCARD) {
		/* a recipient refused: the message goes on with the others */
		if (dec < 0)
			c->naccepted++;
		else if (c->refusal < 0)
			c->refusal = dec;
		dec = -1;
	}
	if (dec < 0 && s != ST_EOM) {
		next_step(c);
		advance(c);
		return;
	}
	record_stage(c, step_stage[s]);
	/* accept or a refusal at connect or HELO ends the session */
	finish(c, dec < 0 ? DEC_ACCEPT : dec, s == ST_CONNECT || s == ST_HELO);
}

/* on_readable - read, and handle every whole packet */
static void
on_readable(struct conn *c)
{
	ssize_t n;
	uint32_t plen;
	size_t off = 0;

	if (c->incap - c->inlen < 4096) {
		c->incap = c->incap * 2 + 8192;
		c->in = mg_realloc(c->in, c->incap);
	}
	n = recv(c->fd, c->in + c->inlen, c->incap - c->inlen, 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		error(c, n == 0 ? ERR_EOF : ERR_IO);
		return;
	}
	c->inlen += (size_t)n;
	c->t_active = mg_now_us();
	while (!c->dead && c->inlen - off >= 5) {
		memcpy(&plen, c->in + off, 4);
		plen = ntohl(plen);
		if (plen < 1 || plen > MAX_PACKET) {
			error(c, ERR_PROTOCOL);
			return;
		}
		if (c->inlen - off < 4 + (size_t)plen)
			break;
		on_reply(c, (char)c->in[off + 4], c->in + off + 5, plen - 1);
		off += 4 + (size_t)plen;
	}
	if (c->dead)
		return;
	memmove(c->in, c->in + off, c->inlen - off);
	c->inlen -= off;
}

/* conn_event - what epoll says about a connection */
void
conn_event(void *ptr, uint32_t events)
{
	struct conn *c = ptr;
	int err = 0;
	socklen_t len = sizeof(err);

	if (c->dead)
		return;
	if (c->step == ST_CONNECTING) {
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 ||
		    err != 0) {
			error(c, ERR_CONNECT);
			return;
		}
		want_write(c, false);
		c->step = ST_OPTNEG;
		advance(c);
		return;
	}
	if ((events & EPOLLOUT) != 0 && flush(c) && c->out.len == 0)
		want_write(c, false);
	if (!c->dead && (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0)
		on_readable(c);
}

/* conn_sweep - time out connections silent for too long */
void
conn_sweep(uint64_t now)
{
	struct conn *c, *next;
	uint64_t limit = (uint64_t)(cf->timeout * 1e6);

	for (c = live; c != NULL; c = next) {
		next = c->next;
		if (now - c->t_active > limit)
			error(c, ERR_TIMEOUT);
	}
}

void
conn_setup(const struct mg_config *config, struct results *results)
{
	cf = config;
	res = results;
}

unsigned
conn_count(int klass)
{
	return klass == CLASS_SLOW ? open_slow : open_fast;
}

void
conn_stop(void)
{
	stopping = 1;
}
