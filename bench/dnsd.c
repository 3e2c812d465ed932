/*
 * dnsd.c - a small, fast DNS responder for the benchmarks: the same zone
 * files as tests/dnsserver.py (the keys "records", "ttl" and "delay_ms";
 * types A, AAAA, TXT, SPF, MX, PTR, NS, CNAME, without CNAME chasing),
 * over UDP on 127.0.0.1, in one thread, so that a cold-cache benchmark
 * measures the filter rather than the Python server (which answers each
 * query in a thread of its own and tops out near 1,500 queries/s here).
 *
 *	dnsd -z ZONE.json -f PORTFILE [-l LIFETIME_S]
 *
 * It binds a free UDP port of 127.0.0.1 and writes it to PORTFILE. A name
 * in the zone (or above a name in it) without the type asked answers
 * NOERROR with no records, any other name NXDOMAIN, both with a made-up
 * SOA (TTL and minimum 60), as tests/dnsserver.py does. A name with
 * "delay_ms" is answered that long after the first query for it and its
 * type, and retransmissions get the answer at that same moment (a caching
 * resolver's behaviour); the clock starts again 30 s after the answer was
 * due. An answer that does not fit the client's UDP size (512, or its EDNS
 * size) goes out truncated, without records. It exits after LIFETIME_S
 * seconds (default 1800), or on SIGTERM/SIGINT. Unknown zone keys or
 * record types are refused at load, never ignored.
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#define MAXMSG	     4096
#define NEG_TTL	     60
#define DEFAULT_TTL  300
#define RESTART_S    30
#define EDNS_PAYLOAD 1232

struct rr {
	uint16_t type;
	uint32_t ttl;
	uint16_t len;
	unsigned char *data;
};

/* the first query of a delayed name, per type */
struct first {
	unsigned type;
	double t;
};

struct node {
	char *name; /* lowercase, no final dot */
	struct rr *rrs;
	size_t nrrs;
	unsigned delay_ms;
	struct first *firsts;
	size_t nfirsts;
};

struct pending {
	double due;
	struct sockaddr_in to;
	size_t len;
	unsigned char msg[MAXMSG];
};

static struct node *nodes; /* open addressing */
static size_t nodes_cap;
static struct pending *heap;
static size_t nheap, heap_cap;
static volatile sig_atomic_t stop;

static void __attribute__((noreturn, format(printf, 1, 2)))
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)fprintf(stderr, "dnsd: ");
	(void)vfprintf(stderr, fmt, ap);
	(void)fprintf(stderr, "\n");
	va_end(ap);
	exit(2);
}

static void *
xrealloc(void *p, size_t n)
{
	if ((p = realloc(p, n)) == NULL)
		die("out of memory");
	return p;
}

static double
now(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t
hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

/* lookup - the node of a name; with create, made if missing */
static struct node *
lookup(const char *name, bool create)
{
	size_t i;

	for (i = hash(name) % nodes_cap; nodes[i].name != NULL;
	     i = (i + 1) % nodes_cap)
		if (strcmp(nodes[i].name, name) == 0)
			return &nodes[i];
	if (!create)
		return NULL;
	if ((nodes[i].name = strdup(name)) == NULL)
		die("out of memory");
	return &nodes[i];
}

static char *
lower_name(const char *s)
{
	size_t n = strlen(s), i;
	char *p;

	if (n > 0 && s[n - 1] == '.')
		n--;
	p = xrealloc(NULL, n + 1);
	for (i = 0; i < n; i++)
		p[i] = (char)tolower((unsigned char)s[i]);
	p[n] = '\0';
	return p;
}

/* wire_name - a dotted name in wire form; its length */
static size_t
wire_name(const char *name, unsigned char *out)
{
	size_t n = 0, l;
	const char *dot;

	while (*name != '\0') {
		dot = strchr(name, '.');
		l = dot != NULL ? (size_t)(dot - name) : strlen(name);
		if (l == 0 || l > 63 || n + l + 2 > 255)
			die("bad name in the zone");
		out[n++] = (unsigned char)l;
		memcpy(out + n, name, l);
		n += l;
		name += l + (dot != NULL);
	}
	out[n++] = 0;
	return n;
}

static void
add_txt(struct rr *r, json_t *data)
{
	unsigned char buf[65535];
	size_t n = 0, i, len, off;
	const char *s;
	json_t *v;

	for (i = 0; json_is_array(data) ? i < json_array_size(data) : i < 1;
	     i++) {
		v = json_is_array(data) ? json_array_get(data, i) : data;
		if ((s = json_string_value(v)) == NULL)
			die("TXT data must be strings");
		len = strlen(s);
		off = 0;
		do {
			size_t k = len - off > 255 ? 255 : len - off;

			if (n + k + 1 > sizeof(buf))
				die("TXT record too long");
			buf[n++] = (unsigned char)k;
			memcpy(buf + n, s + off, k);
			n += k;
			off += k;
		} while (off < len);
	}
	r->len = (uint16_t)n;
	r->data = xrealloc(NULL, n);
	memcpy(r->data, buf, n);
}

/* add_rr - one record of the zone */
static void
add_rr(struct node *nd, json_t *rec, unsigned ttl)
{
	const char *t = json_string_value(json_object_get(rec, "type"));
	json_t *data = json_object_get(rec, "data"), *x;
	unsigned char buf[300];
	struct rr *r;
	size_t n = 0;
	char *name;

	if (t == NULL || data == NULL)
		die("%s: a record needs type and data", nd->name);
	nd->rrs = xrealloc(nd->rrs, (nd->nrrs + 1) * sizeof(*nd->rrs));
	r = &nd->rrs[nd->nrrs++];
	memset(r, 0, sizeof(*r));
	r->ttl = json_is_integer(x = json_object_get(rec, "ttl"))
	    ? (uint32_t)json_integer_value(x)
	    : ttl;
	if (strcasecmp(t, "TXT") == 0 || strcasecmp(t, "SPF") == 0) {
		r->type = strcasecmp(t, "TXT") == 0 ? 16 : 99;
		add_txt(r, data);
		return;
	}
	if (strcasecmp(t, "A") == 0 || strcasecmp(t, "AAAA") == 0) {
		r->type = t[1] == '\0' ? 1 : 28;
		if (json_string_value(data) == NULL ||
		    inet_pton(r->type == 1 ? AF_INET : AF_INET6,
			json_string_value(data), buf) != 1)
			die("%s: bad address", nd->name);
		n = r->type == 1 ? 4 : 16;
	} else if (strcasecmp(t, "MX") == 0) {
		r->type = 15;
		if (!json_is_array(data) || json_array_size(data) != 2 ||
		    json_string_value(json_array_get(data, 1)) == NULL)
			die("%s: MX data is [preference, name]", nd->name);
		buf[0] = (unsigned char)(json_integer_value(
					     json_array_get(data, 0)) >>
		    8);
		buf[1] =
		    (unsigned char)json_integer_value(json_array_get(data, 0));
		name = lower_name(json_string_value(json_array_get(data, 1)));
		n = 2 + wire_name(name, buf + 2);
		free(name);
	} else if (strcasecmp(t, "PTR") == 0 || strcasecmp(t, "NS") == 0 ||
	    strcasecmp(t, "CNAME") == 0) {
		r->type = strcasecmp(t, "PTR") == 0 ? 12
		    : strcasecmp(t, "NS") == 0	    ? 2
						    : 5;
		if (json_string_value(data) == NULL)
			die("%s: bad %s data", nd->name, t);
		name = lower_name(json_string_value(data));
		n = wire_name(name, buf);
		free(name);
	} else
		die("%s: record type %s not supported here", nd->name, t);
	r->len = (uint16_t)n;
	r->data = xrealloc(NULL, n);
	memcpy(r->data, buf, n);
}

/* load - the zone file, and every name above a name in it */
static void
load(const char *path)
{
	json_error_t jerr;
	json_t *z, *spec, *recs, *x;
	const char *key, *k;
	struct node *nd;
	char *name, *p;
	size_t i;
	unsigned ttl;

	if ((z = json_load_file(path, 0, &jerr)) == NULL || !json_is_object(z))
		die("%s:%d: %s", path, jerr.line, jerr.text);
	nodes_cap = json_object_size(z) * 4 + 64;
	nodes = xrealloc(NULL, nodes_cap * sizeof(*nodes));
	memset(nodes, 0, nodes_cap * sizeof(*nodes));
	json_object_foreach(z, key, spec)
	{
		json_object_foreach(spec, k, x)
		{
			if (strcmp(k, "records") != 0 &&
			    strcmp(k, "ttl") != 0 && strcmp(k, "delay_ms") != 0)
				die("%s: key \"%s\" not supported here", key,
				    k);
		}
		name = lower_name(key);
		nd = lookup(name, true);
		ttl = json_is_integer(x = json_object_get(spec, "ttl"))
		    ? (unsigned)json_integer_value(x)
		    : DEFAULT_TTL;
		if (json_is_number(x = json_object_get(spec, "delay_ms")))
			nd->delay_ms = (unsigned)json_number_value(x);
		recs = json_object_get(spec, "records");
		for (i = 0; i < json_array_size(recs); i++)
			add_rr(nd, json_array_get(recs, i), ttl);
		for (p = strchr(name, '.'); p != NULL; p = strchr(p + 1, '.'))
			(void)lookup(p + 1, true);
		free(name);
	}
	json_decref(z);
}

/* slow_due - when a delayed answer is due */
static double
slow_due(struct node *nd, unsigned type)
{
	double t = now(), d = nd->delay_ms / 1000.0;
	size_t i;

	for (i = 0; i < nd->nfirsts && nd->firsts[i].type != type; i++)
		;
	if (i == nd->nfirsts) {
		nd->firsts = xrealloc(nd->firsts,
		    (nd->nfirsts + 1) * sizeof(*nd->firsts));
		nd->firsts[nd->nfirsts].type = type;
		nd->firsts[nd->nfirsts++].t = t;
	} else if (t - nd->firsts[i].t > d + RESTART_S)
		nd->firsts[i].t = t;
	return nd->firsts[i].t + d;
}

static void
put16(unsigned char *p, unsigned v)
{
	p[0] = (unsigned char)(v >> 8);
	p[1] = (unsigned char)v;
}

static void
put32(unsigned char *p, uint32_t v)
{
	put16(p, v >> 16);
	put16(p + 2, v & 0xffff);
}

/* soa - the made-up SOA of a name's last two labels, at out */
static size_t
soa(const char *name, unsigned char *out)
{
	const char *apex = name, *p;
	char mname[300], rname[300];
	size_t n, dots = 0;

	for (p = name + strlen(name); p > name; p--)
		if (p[-1] == '.' && ++dots == 2) {
			apex = p;
			break;
		}
	n = wire_name(apex, out);
	put16(out + n, 6);
	put16(out + n + 2, 1);
	put32(out + n + 4, NEG_TTL);
	(void)snprintf(mname, sizeof(mname), "ns.%s", apex);
	(void)snprintf(rname, sizeof(rname), "hostmaster.%s", apex);
	{
		size_t rd = n + 10, l;

		l = wire_name(mname, out + rd);
		l += wire_name(rname, out + rd + l);
		put32(out + rd + l, 1);
		put32(out + rd + l + 4, 3600);
		put32(out + rd + l + 8, 600);
		put32(out + rd + l + 12, 86400);
		put32(out + rd + l + 16, NEG_TTL);
		l += 20;
		put16(out + n + 8, (unsigned)l);
		return rd + l;
	}
}

/* answer - the answer to a query, or 0 to stay silent; *due its time */
static size_t
answer(const unsigned char *q, size_t qlen, unsigned char *out, double *due)
{
	char name[256];
	size_t off = 12, n = 0, end, i, limit = 512;
	unsigned qtype, l, ancount = 0, nscount = 0, edns = 0;
	struct node *nd;

	*due = 0;
	if (qlen < 12 || (q[2] & 0x80) != 0 || q[4] != 0 || q[5] != 1)
		return 0;
	while (off < qlen && (l = q[off]) != 0) {
		if (l > 63 || off + 1 + l >= qlen || n + l + 1 >= sizeof(name))
			return 0;
		if (n > 0)
			name[n++] = '.';
		for (i = 0; i < l; i++)
			name[n++] = (char)tolower(q[off + 1 + i]);
		off += 1 + l;
	}
	name[n] = '\0';
	if (off + 5 > qlen)
		return 0;
	qtype = (unsigned)(q[off + 1] << 8 | q[off + 2]);
	end = off + 5;
	/* an OPT record in the additional section: the client's size */
	if (q[11] == 1 && end + 11 <= qlen && q[end] == 0 && q[end + 2] == 41) {
		edns = (unsigned)(q[end + 3] << 8 | q[end + 4]);
		limit = edns > 512 ? (edns < EDNS_PAYLOAD ? edns : EDNS_PAYLOAD)
				   : 512;
	}
	memcpy(out, q, end); /* id, flags, question */
	out[2] = (unsigned char)(0x84 | (q[2] & 0x79)); /* QR AA, opcode RD */
	out[3] = 0x80;					/* RA */
	memset(out + 6, 0, 6);
	n = end;
	nd = lookup(name, false);
	if (nd == NULL)
		out[3] |= 3; /* NXDOMAIN */
	else {
		for (i = 0; i < nd->nrrs; i++) {
			const struct rr *r = &nd->rrs[i];

			if (r->type != qtype && qtype != 255)
				continue;
			if (n + 12 + r->len > MAXMSG - 64)
				break;
			put16(out + n, 0xc00c);
			put16(out + n + 2, r->type);
			put16(out + n + 4, 1);
			put32(out + n + 6, r->ttl);
			put16(out + n + 10, r->len);
			memcpy(out + n + 12, r->data, r->len);
			n += 12 + r->len;
			ancount++;
		}
		if (nd->delay_ms > 0)
			*due = slow_due(nd, qtype);
	}
	if (ancount == 0) {
		n += soa(name, out + n);
		nscount = 1;
	}
	if (edns > 0) {
		memset(out + n, 0, 11);
		out[n + 2] = 41;
		put16(out + n + 3, EDNS_PAYLOAD);
		n += 11;
	}
	if (n > limit) {
		/* truncated: header and question only */
		out[2] |= 0x02;
		n = end;
		ancount = nscount = 0;
		edns = 0;
	}
	put16(out + 6, ancount);
	put16(out + 8, nscount);
	put16(out + 10, edns > 0 ? 1 : 0);
	return n;
}

/* heap of delayed answers, earliest first */
static void
heap_push(const struct pending *p)
{
	size_t i, parent;
	struct pending t;

	if (nheap == heap_cap) {
		heap_cap = heap_cap * 2 + 64;
		heap = xrealloc(heap, heap_cap * sizeof(*heap));
	}
	i = nheap++;
	heap[i] = *p;
	while (i > 0 && heap[parent = (i - 1) / 2].due > heap[i].due) {
		t = heap[parent];
		heap[parent] = heap[i];
		heap[i] = t;
		i = parent;
	}
}

static void
heap_pop(void)
{
	size_t i = 0, c;
	struct pending t;

	heap[0] = heap[--nheap];
	for (;;) {
		c = 2 * i + 1;
		if (c >= nheap)
			break;
		if (c + 1 < nheap && heap[c + 1].due < heap[c].due)
			c++;
		if (heap[i].due <= heap[c].due)
			break;
		t = heap[c];
		heap[c] = heap[i];
		heap[i] = t;
		i = c;
	}
}

static void
on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void
write_port(const char *path, unsigned port)
{
	char tmp[4096];
	FILE *fp;

	(void)snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if ((fp = fopen(tmp, "w")) == NULL || fprintf(fp, "%u\n", port) < 0 ||
	    fclose(fp) != 0 || rename(tmp, path) != 0)
		die("%s: %s", path, strerror(errno));
}

int
main(int argc, char **argv)
{
	const char *zone = NULL, *portfile = NULL;
	double lifetime = 1800, end, wait;
	struct sockaddr_in sa;
	socklen_t salen;
	struct pending p;
	struct pollfd pfd;
	unsigned char q[MAXMSG];
	ssize_t n;
	int fd, ch, timeout, i, rcvbuf = 4 << 20;

	while ((ch = getopt(argc, argv, "f:l:z:")) != -1) {
		switch (ch) {
		case 'f':
			portfile = optarg;
			break;
		case 'l':
			lifetime = atof(optarg);
			break;
		case 'z':
			zone = optarg;
			break;
		default:
			die("usage: dnsd -z ZONE.json -f PORTFILE [-l "
			    "LIFETIME]");
		}
	}
	if (zone == NULL || portfile == NULL || optind != argc)
		die("usage: dnsd -z ZONE.json -f PORTFILE [-l LIFETIME]");
	load(zone);
	(void)signal(SIGTERM, on_signal);
	(void)signal(SIGINT, on_signal);
	if ((fd = socket(AF_INET, SOCK_DGRAM, 0)) < 0)
		die("socket: %s", strerror(errno));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	salen = sizeof(sa);
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &salen) != 0)
		die("bind: %s", strerror(errno));
	write_port(portfile, ntohs(sa.sin_port));
	end = now() + lifetime;
	pfd.fd = fd;
	pfd.events = POLLIN;
	while (!stop && now() < end) {
		while (nheap > 0 && heap[0].due <= now()) {
			(void)sendto(fd, heap[0].msg, heap[0].len, 0,
			    (struct sockaddr *)&heap[0].to, sizeof(heap[0].to));
			heap_pop();
		}
		wait = nheap > 0 ? heap[0].due - now() : 1.0;
		timeout = wait <= 0 ? 0
		    : wait > 1.0    ? 1000
				    : (int)(wait * 1000) + 1;
		if (poll(&pfd, 1, timeout) <= 0)
			continue;
		for (i = 0; i < 64; i++) {
			salen = sizeof(p.to);
			n = recvfrom(fd, q, sizeof(q), MSG_DONTWAIT,
			    (struct sockaddr *)&p.to, &salen);
			if (n <= 0)
				break;
			if ((p.len = answer(q, (size_t)n, p.msg, &p.due)) == 0)
				continue;
			if (p.due > now())
				heap_push(&p);
			else
				(void)sendto(fd, p.msg, p.len, 0,
				    (struct sockaddr *)&p.to, sizeof(p.to));
		}
	}
	return 0;
}
