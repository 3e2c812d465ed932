/*
 * test_conf.c - the configuration loader: a table of configuration texts,
 * each of which loads or fails with its "file:line: message"; then the
 * defaults, a full file with @include (tests/conf/full.conf), several
 * errors gathered at once, references, conf_describe(), every file in
 * policies/ and "spfguardctl check".
 *
 * The table's texts are written to a temporary directory as main.conf,
 * next to the fixtures below for @include.
 */
#include "autoconf.h"

#include <sys/stat.h>
#include <sys/wait.h>

#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "conf.h"
#include "policy.h"
#include "tap.h"

static char tmpdir[] = "/tmp/test_conf.XXXXXX";

static const struct {
	const char *path;
	const char *text;
} fixtures[] = {
    {"inc/lists.conf", "lists = { partners = [ \"192.0.2.0/24\" ]; };\n"},
    {"inc/bad.conf", "# an included file\n\nworkers = \"many\";\n"},
    {"inc/dev.conf", "@include \"../../../../../../../dev/zero\"\n"},
    {"inc/self.conf", "# loops\n@include \"inc/self.conf\"\n"},
    {"inc/empty.conf", "# nothing\n"},
    {"inc/syntax.conf", "workers = 4;\nsocket = ;\n"},
    {"inc/nested.conf",
	"# includes are relative to the main file\n"
	"@include \"inc/lists.conf\"\n"},
    {"inc/rule-a.conf",
	"# one rule, included inside a list\n"
	"{ name = \"a\"; action = \"tag\"; },\n"},
    {"inc/rules.conf",
	"rules = (\n"
	"  { name = \"r\"; action = \"reject\"; code = 450; }\n"
	");\n"},
};

/* want: NULL when the text loads, else "FILE:LINE: message" (or the start
 * of one), FILE relative to the temporary directory. nerr: the number of
 * errors; 0 means 1. */
static const struct tcase {
	const char *label;
	const char *text;
	const char *want;
	int nerr;
} cases[] = {
    {"empty file", "", NULL, 0},
    {"comments only", "# nothing\n// nothing\n/* nothing */\n", NULL, 0},

    /* types and ranges of the table's options */
    {"socket is a string", "socket = 8891;\n",
	"main.conf:1: socket: expected a string", 0},
    {"pidfile is a string", "\npidfile = true;\n",
	"main.conf:2: pidfile: expected a string", 0},
    {"pidfile is absolute", "pidfile = \"run/spfguard.pid\";\n",
	"main.conf:1: pidfile: \"run/spfguard.pid\": expected an absolute path",
	0},
    {"decision_log not empty", "decision_log = \"\";\n",
	"main.conf:1: decision_log: \"\": expected an absolute path", 0},
    {"user name", "user = \"spf guard\";\n",
	"main.conf:1: user: \"spf guard\": not a user or group name", 0},
    {"group is a string", "group = [ \"a\" ];\n",
	"main.conf:1: group: expected a string", 0},
    {"workers integer", "workers = \"64\";\n",
	"main.conf:1: workers: expected an integer", 0},
    {"workers float", "workers = 1.5;\n",
	"main.conf:1: workers: expected an integer", 0},
    {"workers 0", "workers = 0;\n",
	"main.conf:1: workers: 0 is out of range (1..4096)", 0},
    {"workers 4097", "workers = 4097;\n",
	"main.conf:1: workers: 4097 is out of range (1..4096)", 0},
    {"workers 1", "workers = 1;\n", NULL, 0},
    {"workers 4096", "workers = 4096;\n", NULL, 0},
    {"workers 64L", "workers = 64L;\n", NULL, 0},
    {"syslog facility", "syslog_facility = \"kern\";\n",
	"main.conf:1: syslog_facility: \"kern\": expected mail, daemon or "
	"local0..local7",
	0},
    {"syslog local7", "syslog_facility = \"local7\";\n", NULL, 0},
    {"socket_mode octal",
	"socket = \"unix:/run/s.sock\";\nsocket_mode = 660;\n",
	"main.conf:2: socket_mode: expected an octal string such as \"0660\"",
	0},
    {"socket_mode digits",
	"socket = \"unix:/run/s.sock\";\nsocket_mode = "
	"\"0980\";\n",
	"main.conf:2: socket_mode: expected an octal", 0},
    {"socket_mode too wide",
	"socket = \"unix:/run/s\";\nsocket_mode = "
	"\"1777\";\n",
	"main.conf:2: socket_mode: expected an octal", 0},
    {"socket_mode unix",
	"socket = \"unix:/run/s.sock\";\nsocket_mode = "
	"\"0660\";\nsocket_group = \"postfix\";\n",
	NULL, 0},
    {"socket_mode needs unix", "socket_mode = \"0660\";\n",
	"main.conf:1: socket_mode: only for a unix: socket", 0},
    {"socket_group needs unix",
	"socket = \"inet6:8891@::1\";\n\n"
	"socket_group = \"postfix\";\n",
	"main.conf:3: socket_group: only for a unix: socket", 0},

    /* the type of every other key */
    {"user type", "user = 1000;\n", "main.conf:1: user: expected a string", 0},
    {"socket_group type", "socket = \"unix:/run/s\";\nsocket_group = 1;\n",
	"main.conf:2: socket_group: expected a string", 0},
    {"decision_log type", "decision_log = false;\n",
	"main.conf:1: decision_log: expected a string", 0},
    {"syslog_facility type", "syslog_facility = 2;\n",
	"main.conf:1: syslog_facility: expected a string", 0},
    {"spf type", "spf = true;\n", "main.conf:1: spf: expected a group", 0},
    {"headers type", "headers = [ \"a\" ];\n",
	"main.conf:1: headers: expected a group", 0},
    {"spf.engine type", "spf = { engine = true; };\n",
	"main.conf:1: spf.engine: expected a string", 0},
    {"spf.deadline_ms type", "spf = { deadline_ms = 2.0; };\n",
	"main.conf:1: spf.deadline_ms: expected an integer", 0},
    {"spf.receiver type", "spf = { receiver = [ \"mx\" ]; };\n",
	"main.conf:1: spf.receiver: expected a string", 0},
    {"spf.default_explanation type", "spf = { default_explanation = 1; };\n",
	"main.conf:1: spf.default_explanation: expected a string", 0},
    {"headers.authserv_id type", "headers = { authserv_id = 1; };\n",
	"main.conf:1: headers.authserv_id: expected a string", 0},
    {"headers.received_spf type", "headers = { received_spf = \"no\"; };\n",
	"main.conf:1: headers.received_spf: expected true or false", 0},
    {"headers.remove_forged type", "headers = { remove_forged = 0; };\n",
	"main.conf:1: headers.remove_forged: expected true or false", 0},
    {"headers.tag_header type", "headers = { tag_header = true; };\n",
	"main.conf:1: headers.tag_header: expected a string", 0},
    {"list type", "lists = { a = 1; };\n",
	"main.conf:1: lists: a: expected a string or a list of strings", 0},
    {"reply type",
	"rules = ( { name = \"a\"; action = \"reject\"; reply = "
	"1; } );\n",
	"main.conf:1: rule \"a\": reply: expected a string", 0},
    {"xcode type",
	"rules = ( { name = \"a\"; action = \"reject\"; xcode = "
	"571; } );\n",
	"main.conf:1: rule \"a\": xcode: expected a string", 0},
    {"set name type",
	"policy_sets = ( { name = 1; recipient_domains = "
	"\"t.example\"; } );\n",
	"main.conf:1: policy set #1: name: expected a string", 0},
    {"set domains type",
	"policy_sets = ( { name = \"t\"; recipient_domains "
	"= 1; } );\n",
	"main.conf:1: policy set \"t\": recipient_domains: expected a string "
	"or "
	"a list of strings",
	0},
    {"set is a group", "policy_sets = ( \"t\" );\n",
	"main.conf:1: policy set #1: expected a group", 0},

    {"socket_mode with a bad unix socket",
	"socket = \"unix:run/s\";\n"
	"socket_mode = \"0660\";\n",
	"main.conf:1: socket: \"unix:run/s\": unix:PATH needs an absolute path",
	0},

    /* socket forms */
    {"socket inet", "socket = \"inet:8891@127.0.0.1\";\n", NULL, 0},
    {"socket inet host name", "socket = \"inet:8891@localhost\";\n", NULL, 0},
    {"socket inet6", "socket = \"inet6:8891@::1\";\n", NULL, 0},
    {"socket without @HOST", "socket = \"inet:8891\";\n",
	"main.conf:1: socket: \"inet:8891\": no @HOST (@0.0.0.0 listens", 0},
    {"socket empty host", "socket = \"inet:8891@\";\n",
	"main.conf:1: socket: \"inet:8891@\": no @HOST", 0},
    {"socket port 0", "socket = \"inet:0@127.0.0.1\";\n",
	"main.conf:1: socket: \"inet:0@127.0.0.1\": expected a port 1..65535",
	0},
    {"socket port 65536", "socket = \"inet:65536@127.0.0.1\";\n",
	"main.conf:1: socket: \"inet:65536@127.0.0.1\": expected a port", 0},
    {"socket port letters", "socket = \"inet:smtp@127.0.0.1\";\n",
	"main.conf:1: socket: \"inet:smtp@127.0.0.1\": expected a port", 0},
    {"socket v4 after inet6", "socket = \"inet6:8891@127.0.0.1\";\n",
	"main.conf:1: socket: \"inet6:8891@127.0.0.1\": \"127.0.0.1\" is not "
	"an "
	"IPv6 address or a host name",
	0},
    {"socket v6 after inet", "socket = \"inet:8891@::1\";\n",
	"main.conf:1: socket: \"inet:8891@::1\": \"::1\" is not an IPv4", 0},
    {"socket relative unix", "socket = \"unix:run/s.sock\";\n",
	"main.conf:1: socket: \"unix:run/s.sock\": unix:PATH needs an absolute "
	"path",
	0},
    {"socket unix too long",
	"socket = \"unix:/run/xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\";\n",
	"main.conf:1: socket: \"unix:/run/xxx", 0},
    {"socket local:", "socket = \"local:/run/s.sock\";\n",
	"main.conf:1: socket: \"local:/run/s.sock\": expected inet:PORT@HOST, "
	"inet6:PORT@HOST or unix:PATH",
	0},

    /* dns */
    {"dns is a group", "dns = \"127.0.0.1\";\n",
	"main.conf:1: dns: expected a group { ... }", 0},
    {"dns unknown key", "dns = {\n  timeout_ms = 200;\n  retries = 3;\n};\n",
	"main.conf:3: dns: unknown key \"retries\"", 0},
    {"dns timeout low", "dns = { timeout_ms = 99; };\n",
	"main.conf:1: dns.timeout_ms: 99 is out of range (100..60000)", 0},
    {"dns timeout high", "dns = { timeout_ms = 60001; };\n",
	"main.conf:1: dns.timeout_ms: 60001 is out of range", 0},
    {"dns timeout string", "dns = { timeout_ms = \"5000\"; };\n",
	"main.conf:1: dns.timeout_ms: expected an integer", 0},
    {"resolvers forms",
	"dns = { resolvers = [ \"127.0.0.1\", \"::1\", "
	"\"[::1]:53\", \"192.0.2.1:5353\", \"[192.0.2.2]\" ]; };\n",
	NULL, 0},
    {"resolver one string", "dns = { resolvers = \"127.0.0.1\"; };\n", NULL, 0},
    {"resolver host name",
	"dns = {\n resolvers = [ \"127.0.0.1\",\n "
	"\"ns.example\" ]; };\n",
	"main.conf:3: dns.resolvers: \"ns.example\": not an IP address", 0},
    {"resolver port 0", "dns = { resolvers = [ \"127.0.0.1:0\" ]; };\n",
	"main.conf:1: dns.resolvers: \"127.0.0.1:0\": expected IP, IPv4:PORT "
	"or "
	"[IPv6]:PORT",
	0},
    {"resolver bracket", "dns = { resolvers = [ \"[::1\" ]; };\n",
	"main.conf:1: dns.resolvers: \"[::1\": expected IP", 0},
    {"resolvers integer", "dns = { resolvers = 53; };\n",
	"main.conf:1: dns.resolvers: expected a string or a list of strings",
	0},
    {"resolvers integers", "dns = { resolvers = [ 1, 2 ]; };\n",
	"main.conf:1: dns.resolvers: expected a string or a list of strings",
	0},
    {"resolvers mixed list", "dns = { resolvers = ( \"127.0.0.1\", 2 ); };\n",
	"main.conf:1: dns.resolvers: expected a string or a list", 0},

    /* spf */
    {"spf engine", "spf = { engine = \"spfmilter\"; };\n",
	"main.conf:1: spf.engine: \"spfmilter\": unknown engine (this build "
	"has: "
	"builtin",
	0},
    {"spf deadline low", "spf = { deadline_ms = 499; };\n",
	"main.conf:1: spf.deadline_ms: 499 is out of range (500..120000)", 0},
    {"spf deadline high", "spf = { deadline_ms = 120001; };\n",
	"main.conf:1: spf.deadline_ms: 120001 is out of range", 0},
    {"spf helo_check bool", "spf = { helo_check = \"yes\"; };\n",
	"main.conf:1: spf.helo_check: expected true or false", 0},
    {"spf explanation macro", "spf = { default_explanation = \"%{z}\"; };\n",
	"main.conf:1: spf.default_explanation: \"%{z}\": not an SPF "
	"macro-string",
	0},
    {"spf explanation letters",
	"spf = { default_explanation = \"%{i} is not "
	"%{c} for %{d} at %{r} %{t}\"; };\n",
	NULL, 0},
    {"spf receiver", "spf = { receiver = \"mx example\"; };\n",
	"main.conf:1: spf.receiver: \"mx example\": not a host name", 0},
    {"spf unknown key", "spf = { dealine_ms = 500; };\n",
	"main.conf:1: spf: unknown key \"dealine_ms\"", 0},
    {"spf key elsewhere", "dns = { engine = \"builtin\"; };\n",
	"main.conf:1: dns: unknown key \"engine\" (did you mean spf.engine?)",
	0},

    /* headers */
    {"authserv_id token", "headers = { authserv_id = \"mx; evil=1\"; };\n",
	"main.conf:1: headers.authserv_id: \"mx; evil=1\": not a token", 0},
    {"authserv_id control", "headers = { authserv_id = \"mx\\x01\"; };\n",
	"main.conf:1: headers.authserv_id: \"mx\\x01\": not a token", 0},
    {"tag_header name", "headers = { tag_header = \"X-Tag:\"; };\n",
	"main.conf:1: headers.tag_header: \"X-Tag:\": not a header field name",
	0},
    {"headers bool", "headers = { auth_results = 1; };\n",
	"main.conf:1: headers.auth_results: expected true or false", 0},
    {"headers unknown key", "headers = { subject_tag = true; };\n",
	"main.conf:1: headers: unknown key \"subject_tag\"", 0},

    /* top level */
    {"unknown key", "workers = 4;\nfoo = 1;\n",
	"main.conf:2: unknown key \"foo\"", 0},
    {"key in the wrong group", "timeout_ms = 100;\n",
	"main.conf:1: unknown key \"timeout_ms\" (did you mean "
	"dns.timeout_ms?)",
	0},
    {"unknown group", "milter = { timeout = 1; };\n",
	"main.conf:1: unknown key \"milter\"", 0},
    {"duplicate setting", "workers = 4;\nworkers = 5;\n",
	"main.conf:2: duplicate setting name", 0},
    {"syntax error line",
	"workers = 4;\n\nsocket = \"unterminated;\n"
	"pidfile = \"/run/x\";\n",
	"main.conf:", 0},
    {"syntax error", "workers = 4;\n\ndns = { timeout_ms = ; };\n",
	"main.conf:3: syntax error", 0},

    /* mode, trusted_networks, lists */
    {"mode", "mode = \"enforcing\";\n",
	"main.conf:1: mode: \"enforcing\" is neither \"enforce\" nor "
	"\"monitor\"",
	0},
    {"mode string", "mode = true;\n", "main.conf:1: mode: expected a string",
	0},
    {"trusted bad cidr",
	"trusted_networks = [ \"127.0.0.0/8\",\n"
	" \"10.0.0.0/33\" ];\n",
	"main.conf:2: trusted_networks: \"10.0.0.0/33\" is not an address or "
	"CIDR",
	0},
    {"trusted one address", "trusted_networks = \"10.1.2.3\";\n", NULL, 0},
    {"trusted none", "trusted_networks = [];\n", NULL, 0},
    {"trusted group", "trusted_networks = { a = 1; };\n",
	"main.conf:1: trusted_networks: expected a string or a list of "
	"strings",
	0},
    {"list bad cidr",
	"lists = {\n  partners = [ \"192.0.2.0/24\", \"nope\" "
	"];\n};\n",
	"main.conf:2: lists: partners: \"nope\" is not an address or CIDR", 0},
    {"list named trusted", "lists = { trusted = [ \"192.0.2.0/24\" ]; };\n",
	"main.conf:1: lists: trusted: \"trusted\" is reserved", 0},
    {"lists is a group", "lists = [ \"192.0.2.0/24\" ];\n",
	"main.conf:1: lists: expected a group", 0},

    /* rules */
    {"rules is a list", "rules = { name = \"a\"; action = \"accept\"; };\n",
	"main.conf:1: rules: expected a list", 0},
    {"rules empty", "rules = ();\n", NULL, 0},
    {"rules empty array", "rules = [];\npolicy_sets = [];\n", NULL, 0},
    {"rule is a group", "rules = ( \"accept\" );\n",
	"main.conf:1: rule #1: expected a group", 0},
    {"rule ok", "rules = ( { name = \"a\"; action = \"accept\"; } );\n", NULL,
	0},
    {"missing name", "rules = (\n  { action = \"accept\"; }\n);\n",
	"main.conf:2: rule #1: missing name", 0},
    {"missing action",
	"rules = (\n  { name = \"a\"; },\n  { name = \"b\";\n"
	"    action = \"accept\"; }\n);\n",
	"main.conf:2: rule \"a\": missing action", 0},
    {"name with a space",
	"rules = ( { name = \"a b\"; action = \"tag\"; } );\n",
	"main.conf:1: rule #1: name: \"a b\" is not a name", 0},
    {"name not a string", "rules = ( { name = 1; action = \"tag\"; } );\n",
	"main.conf:1: rule #1: name: expected a string", 0},
    {"duplicate rule names",
	"rules = (\n  { name = \"a\"; action = \"accept\"; "
	"},\n  { name = \"b\"; action = \"accept\"; },\n  "
	"{ name = \"A\"; action = \"reject\"; }\n);\n",
	"main.conf:4: duplicate rule name \"A\" (first at line 2)", 0},
    {"bad action",
	"rules = (\n  { name = \"a\";\n    action = \"rejekt\"; }\n"
	");\n",
	"main.conf:3: rule \"a\": action: \"rejekt\" is not an action (accept, "
	"tag, quarantine, tempfail, greylist, reject)",
	0},
    {"action not a string", "rules = ( { name = \"a\"; action = 550; } );\n",
	"main.conf:1: rule \"a\": action: expected a string", 0},
    {"every action",
	"rules = ( { name = \"a\"; action = \"accept\"; },\n"
	"{ name = \"t\"; action = \"tag\"; },\n"
	"{ name = \"q\"; action = \"quarantine\"; },\n"
	"{ name = \"f\"; action = \"tempfail\"; },\n"
	"{ name = \"r\"; action = \"reject\"; } );\n",
	NULL, 0},
    {"unknown rule key",
	"rules = ( { name = \"a\"; action = \"accept\";\n"
	"  when = { spf = \"fail\"; }; } );\n",
	"main.conf:2: rule \"a\": unknown key \"when\"", 0},
    {"misspelt action key",
	"rules = ( { name = \"a\"; actoin = \"accept\"; } "
	");\n",
	"main.conf:1: rule \"a\": unknown key \"actoin\"", 2},
    {"shadow bool",
	"rules = ( { name = \"a\"; action = \"tag\"; shadow = 1; } "
	");\n",
	"main.conf:1: rule \"a\": shadow: expected true or false", 0},

    /* match */
    {"match is a group",
	"rules = ( { name = \"a\"; action = \"tag\"; match = "
	"\"all\"; } );\n",
	"main.conf:1: rule \"a\": match: expected a group { ... }", 0},
    {"match empty",
	"rules = ( { name = \"a\"; action = \"tag\"; match = {}; } "
	");\n",
	NULL, 0},
    {"unknown match key",
	"rules = ( { name = \"a\"; action = \"tag\";\n"
	"  match = { spf = \"fail\";\n    sender = \"x\"; }; } "
	");\n",
	"main.conf:3: rule \"a\": match: unknown key \"sender\"", 0},
    {"match every key",
	"lists = { l = \"192.0.2.1\"; };\n"
	"rules = ( { name = \"a\"; action = \"tag\"; match = {\n"
	"  client = [ \"trusted\", \"l\", \"2001:db8::/32\" ];\n"
	"  client_name = \"unknown\"; helo = \"*.example\";\n"
	"  from_domain = \"example.org\"; from_localpart = \"bounce+*\";\n"
	"  rcpt_domain = [ \"a.example\" ]; auth_user = \"alice\";\n"
	"  null_sender = false; authenticated = true; spf = \"pass\";\n"
	"  spf_helo = \"none\"; spf_mfrom = [ \"permerror\" ]; }; } );\n",
	NULL, 0},
    {"unknown list",
	"rules = (\n  { name = \"a\"; match = { client = "
	"\"partners\"; }; action = \"accept\"; }\n);\n",
	"main.conf:2: rule \"a\": match: client: \"partners\" is not "
	"\"trusted\", an address, a CIDR or a list defined in lists",
	0},
    {"list defined after use",
	"rules = ( { name = \"a\"; match = { client = "
	"\"partners\"; }; action = \"accept\"; } );\n"
	"lists = { partners = \"192.0.2.0/24\"; };\n",
	NULL, 0},
    {"client bad cidr",
	"rules = ( { name = \"a\"; match = { client = [ "
	"\"192.0.2.0/24\", \"192.0.2.0/40\" ]; }; action = "
	"\"accept\"; } );\n",
	"main.conf:1: rule \"a\": match: client: \"192.0.2.0/40\" is not", 0},
    {"spf result",
	"rules = ( { name = \"a\"; action = \"reject\";\n  match = "
	"{ spf = [ \"fail\", \"failed\" ]; }; } );\n",
	"main.conf:2: rule \"a\": match: spf: \"failed\" is not an SPF result",
	0},
    {"spf_helo result",
	"rules = ( { name = \"a\"; action = \"reject\"; match "
	"= { spf_helo = \"hardfail\"; }; } );\n",
	"main.conf:1: rule \"a\": match: spf_helo: \"hardfail\" is not an SPF "
	"result",
	0},
    {"spf empty list",
	"rules = ( { name = \"a\"; action = \"reject\"; match "
	"= { spf_mfrom = []; }; } );\n",
	"main.conf:1: rule \"a\": match: spf_mfrom: empty list", 0},
    {"null_sender bool",
	"rules = ( { name = \"a\"; action = \"tag\"; match = "
	"{ null_sender = \"yes\"; }; } );\n",
	"main.conf:1: rule \"a\": match: null_sender: expected true or false",
	0},
    {"authenticated bool",
	"rules = ( { name = \"a\"; action = \"tag\"; match "
	"= { authenticated = 1; }; } );\n",
	"main.conf:1: rule \"a\": match: authenticated: expected true or false",
	0},
    {"pattern with space",
	"rules = ( { name = \"a\"; action = \"tag\"; match "
	"= { from_domain = [ \"ok.example\", \"bad "
	"example\" ]; }; } );\n",
	"main.conf:1: rule \"a\": match: from_domain: \"bad example\" is not a "
	"pattern",
	0},
    {"pattern empty",
	"rules = ( { name = \"a\"; action = \"tag\"; match = { "
	"helo = \"\"; }; } );\n",
	"main.conf:1: rule \"a\": match: helo: \"\" is not a pattern", 0},
    {"pattern group",
	"rules = ( { name = \"a\"; action = \"tag\"; match = { "
	"auth_user = { a = 1; }; }; } );\n",
	"main.conf:1: rule \"a\": match: auth_user: expected a string or a "
	"list "
	"of strings",
	0},

    /* reply, code, xcode */
    {"reply placeholder",
	"rules = ( { name = \"a\"; action = \"reject\";\n"
	"  reply = \"{domain} refused {nope}\"; } );\n",
	"main.conf:2: rule \"a\": reply: unknown placeholder {nope}", 0},
    {"reply brace",
	"rules = ( { name = \"a\"; action = \"reject\"; reply = "
	"\"{domain\"; } );\n",
	"main.conf:1: rule \"a\": reply: unterminated '{' in reply", 0},
    {"reply on accept",
	"rules = ( { name = \"a\"; action = \"accept\"; reply "
	"= \"welcome\"; } );\n",
	"main.conf:1: rule \"a\": reply: only tempfail, greylist and reject "
	"rules send a reply",
	0},
    {"reply ok",
	"rules = ( { name = \"a\"; action = \"tempfail\"; reply = "
	"\"{{try}} again {ip} {rule}\"; } );\n",
	NULL, 0},
    {"code 4xx with reject",
	"rules = ( { name = \"a\"; action = \"reject\";\n"
	"  code = 451; } );\n",
	"main.conf:2: rule \"a\": code: a reject rule needs a 5xx code", 0},
    {"code 5xx with tempfail",
	"rules = ( { name = \"a\"; action = "
	"\"tempfail\"; code = 550; } );\n",
	"main.conf:1: rule \"a\": code: a tempfail rule needs a 4xx code", 0},
    {"code with accept",
	"rules = ( { name = \"a\"; action = \"accept\"; code "
	"= 250; } );\n",
	"main.conf:1: rule \"a\": code: 250 is out of range (400..599)", 0},
    {"code with tag",
	"rules = ( { name = \"a\"; action = \"tag\"; code = 550; "
	"} );\n",
	"main.conf:1: rule \"a\": code: only tempfail, greylist and reject "
	"rules send a code",
	0},
    {"code 700",
	"rules = ( { name = \"a\"; action = \"reject\"; code = 700; } "
	");\n",
	"main.conf:1: rule \"a\": code: 700 is out of range (400..599)", 0},
    {"code string",
	"rules = ( { name = \"a\"; action = \"reject\"; code = "
	"\"550\"; } );\n",
	"main.conf:1: rule \"a\": code: expected an integer", 0},
    {"xcode class",
	"rules = ( { name = \"a\"; action = \"reject\"; code = "
	"550;\n  xcode = \"4.7.1\"; } );\n",
	"main.conf:2: rule \"a\": xcode: 4.7.1 does not match the 5xx code of "
	"a "
	"reject rule",
	0},
    {"xcode class without code",
	"rules = ( { name = \"a\"; action = "
	"\"tempfail\"; xcode = \"5.7.1\"; } );\n",
	"main.conf:1: rule \"a\": xcode: 5.7.1 does not match the 4xx code of "
	"a "
	"tempfail rule",
	0},
    {"xcode form",
	"rules = ( { name = \"a\"; action = \"reject\"; xcode = "
	"\"5.7\"; } );\n",
	"main.conf:1: rule \"a\": xcode: \"5.7\" is not an enhanced status "
	"code",
	0},
    {"xcode digits",
	"rules = ( { name = \"a\"; action = \"reject\"; xcode = "
	"\"5.7.1000\"; } );\n",
	"main.conf:1: rule \"a\": xcode: \"5.7.1000\" is not an enhanced", 0},
    {"xcode class 2",
	"rules = ( { name = \"a\"; action = \"reject\"; xcode = "
	"\"2.0.0\"; } );\n",
	"main.conf:1: rule \"a\": xcode: \"2.0.0\" is not an enhanced", 0},
    {"xcode with tag",
	"rules = ( { name = \"a\"; action = \"tag\"; xcode = "
	"\"5.7.1\"; } );\n",
	"main.conf:1: rule \"a\": xcode: only tempfail, greylist and reject "
	"rules",
	0},
    {"code and xcode ok",
	"rules = ( { name = \"a\"; action = \"reject\"; code "
	"= 554; xcode = \"5.7.23\"; },\n"
	"{ name = \"b\"; action = \"tempfail\"; code = 421; "
	"xcode = \"4.4.5\"; } );\n",
	NULL, 0},

    /* policy sets */
    {"set ok",
	"policy_sets = ( { name = \"t\"; recipient_domains = "
	"\"t.example\"; mode = \"monitor\";\n  rules = ( { name = "
	"\"a\"; action = \"reject\"; } ); } );\n",
	NULL, 0},
    {"sets is a list", "policy_sets = { name = \"t\"; };\n",
	"main.conf:1: policy_sets: expected a list", 0},
    {"set missing domains",
	"policy_sets = (\n  { name = \"t\"; rules = (); }\n"
	");\n",
	"main.conf:2: policy set \"t\": missing recipient_domains", 0},
    {"set empty domains",
	"policy_sets = ( { name = \"t\"; recipient_domains "
	"= []; } );\n",
	"main.conf:1: policy set \"t\": recipient_domains: empty list", 0},
    {"set missing name",
	"policy_sets = ( { recipient_domains = \"t.example\"; "
	"} );\n",
	"main.conf:1: policy set #1: missing name", 0},
    {"set named default",
	"policy_sets = ( { name = \"default\"; "
	"recipient_domains = \"t.example\"; } );\n",
	"main.conf:1: duplicate policy set name \"default\"", 0},
    {"duplicate set names",
	"policy_sets = (\n  { name = \"t\"; "
	"recipient_domains = \"a.example\"; },\n  { name = "
	"\"t\"; recipient_domains = \"b.example\"; }\n);\n",
	"main.conf:3: duplicate policy set name \"t\"", 0},
    {"set domain twice",
	"policy_sets = (\n  { name = \"a\"; "
	"recipient_domains = \"a.example\"; },\n  { name = "
	"\"b\"; recipient_domains = [ \"b.example\", "
	"\"A.example\" ]; }\n);\n",
	"main.conf:3: recipient domain \"A.example\" is already in policy set "
	"\"a\"",
	0},
    {"set unknown key",
	"policy_sets = ( { name = \"t\"; recipient_domains = "
	"\"t.example\"; domains = \"x\"; } );\n",
	"main.conf:1: policy set \"t\": unknown key \"domains\"", 0},
    {"set mode",
	"policy_sets = ( { name = \"t\"; recipient_domains = "
	"\"t.example\"; mode = \"off\"; } );\n",
	"main.conf:1: policy set \"t\": mode: \"off\" is neither", 0},
    {"set rules is a list",
	"policy_sets = ( { name = \"t\"; "
	"recipient_domains = \"t.example\"; rules = {}; } "
	");\n",
	"main.conf:1: policy set \"t\": rules: expected a list", 0},
    {"set rule error",
	"policy_sets = ( { name = \"t\"; recipient_domains = "
	"\"t.example\";\n  rules = ( { name = \"a\"; action = "
	"\"drop\"; } ); } );\n",
	"main.conf:2: policy set \"t\": rule \"a\": action: \"drop\" is not an "
	"action",
	0},
    {"set duplicate rule",
	"policy_sets = ( { name = \"t\"; recipient_domains "
	"= \"t.example\"; rules = (\n  { name = \"a\"; "
	"action = \"tag\"; },\n  { name = \"a\"; action = "
	"\"tag\"; } ); } );\n",
	"main.conf:3: policy set \"t\": duplicate rule name \"a\"", 0},
    {"same rule name in two sets",
	"rules = ( { name = \"a\"; action = "
	"\"tag\"; } );\npolicy_sets = ( { name = "
	"\"t\"; recipient_domains = \"t.example\"; "
	"rules = ( { name = \"a\"; action = "
	"\"tag\"; } ); } );\n",
	NULL, 0},

    /* @include */
    {"include",
	"@include \"inc/lists.conf\"\nrules = ( { name = \"a\"; match "
	"= { client = \"partners\"; }; action = \"accept\"; } );\n",
	NULL, 0},
    {"include nested",
	"@include \"inc/nested.conf\"\nrules = ( { name = "
	"\"a\"; match = { client = \"partners\"; }; action = "
	"\"accept\"; } );\n",
	NULL, 0},
    {"error in an included file",
	"mode = \"enforce\";\n@include \"inc/bad.conf\"\n",
	"inc/bad.conf:3: workers: expected an integer", 0},
    {"rule error in an included file", "\n@include \"inc/rules.conf\"\n",
	"inc/rules.conf:2: rule \"r\": code: a reject rule needs a 5xx code",
	0},
    {"syntax error in an included file", "@include \"inc/syntax.conf\"\n",
	"inc/syntax.conf:2: syntax error", 0},
    {"duplicate rule across files",
	"rules = (\n@include \"inc/rule-a.conf\"\n  { name = \"a\"; action = "
	"\"tag\"; }\n);\n",
	"main.conf:3: duplicate rule name \"a\" (first at /", 0},
    {"missing include", "workers = 4;\n@include \"inc/none.conf\"\n",
	"main.conf:2: cannot open include file", 0},
    /* libconfig 1.5 would read a directory and exit(2) from its scanner */
    {"include of the directory itself", "workers = 4;\n@include \"\"\n",
	"main.conf:2: @include \"\": not a regular file", 0},
    {"include of a directory", "\n\n  @include \"inc\"\n",
	"main.conf:3: @include \"inc\": not a regular file", 0},
    {"include loop", "@include \"inc/self.conf\"\n",
	"inc/self.conf:2: @include \"inc/self.conf\": includes itself (a loop)",
	0},
    {"main file includes itself", "workers = 4;\n@include \"main.conf\"\n",
	"main.conf:2: @include \"main.conf\": includes itself (a loop)", 0},
    {"the same file twice is no loop",
	"@include \"inc/empty.conf\"\n@include \"inc/empty.conf\"\n", NULL, 0},
    {"include of a device in an included file", "@include \"inc/dev.conf\"\n",
	"inc/dev.conf:1: @include \"../../../../../../../dev/zero\": not a "
	"regular file",
	0},
    /* reputation: lists, limits, store, greylist and history */
    {"dnsbl ok",
	"dnsbl = ( { name = \"zen\"; zone = \"zen.example.\"; codes = [ "
	"\"127.0.0.2\", \"127.0.0.4\" ]; },\n  { name = \"m\"; zone = "
	"\"m.example\"; mask = \"127.0.0.6\"; } );\nrules = ( { name = "
	"\"bl\"; match = { dnsbl = [ \"zen\", \"m\" ]; }; action = "
	"\"reject\"; reply = \"listed on {dnsbl}\"; } );\n",
	NULL, 0},
    {"dnsbl needs zone", "dnsbl = ( { name = \"zen\"; } );\n",
	"main.conf:1: dnsbl \"zen\": missing zone", 0},
    {"dnsbl code outside 127/8",
	"dnsbl = ( { name = \"z\"; zone = \"z.example\";\n  codes = "
	"\"10.0.0.2\"; } );\n",
	"main.conf:2: dnsbl \"z\": codes: \"10.0.0.2\" is not an address in "
	"127.0.0.0/8",
	0},
    {"dnsbl codes and mask",
	"dnsbl = ( { name = \"z\"; zone = \"z.example\"; codes = "
	"\"127.0.0.2\"; mask = 2; } );\n",
	"main.conf:1: dnsbl \"z\": codes or mask, not both", 0},
    {"dnsbl mask range",
	"dnsbl = ( { name = \"z\"; zone = \"z.example\"; mask = 256; } );\n",
	"main.conf:1: dnsbl \"z\": mask: 256 is out of range (1..255)", 0},
    {"dnsbl bad zone", "dnsbl = ( { name = \"z\"; zone = \"bad..zone\"; } );\n",
	"main.conf:1: dnsbl \"z\": zone: \"bad..zone\" is not a DNS zone", 0},
    {"dnsbl duplicate",
	"dnsbl = ( { name = \"z\"; zone = \"a.example\"; },\n { name = "
	"\"z\"; zone = \"b.example\"; } );\n",
	"main.conf:2: dnsbl: duplicate list name \"z\"", 0},
    {"dnsbl identities is rhsbl only",
	"dnsbl = ( { name = \"z\"; zone = \"a.example\"; identities = "
	"\"helo\"; } );\n",
	"main.conf:1: dnsbl \"z\": unknown key \"identities\"", 0},
    {"rhsbl identities",
	"rhsbl = ( { name = \"d\"; zone = \"d.example\"; identities = [ "
	"\"from\", \"sender\" ]; } );\n",
	"main.conf:1: rhsbl \"d\": identities: \"sender\" is neither \"from\" "
	"nor \"helo\"",
	0},
    {"rule names an undeclared list",
	"dnsbl = ( { name = \"zen\"; zone = \"z.example\"; } );\nrules = ( { "
	"name = \"a\"; match = { dnsbl = \"zne\"; }; action = \"reject\"; } "
	");\n",
	"main.conf:2: rule \"a\": match: dnsbl: \"zne\" is not the name of a "
	"list in dnsbl",
	0},
    {"rhsbl name is not a dnsbl name",
	"rhsbl = ( { name = \"d\"; zone = \"d.example\"; } );\nrules = ( { "
	"name = \"a\"; match = { dnsbl = \"d\"; }; action = \"reject\"; } );\n",
	"main.conf:2: rule \"a\": match: dnsbl: \"d\" is not the name of a "
	"list "
	"in dnsbl",
	0},
    {"dnsbl any",
	"rules = ( { name = \"a\"; match = { dnsbl_unknown = \"*\"; }; action "
	"= \"tempfail\"; } );\n",
	NULL, 0},
    {"ratelimit ok",
	"ratelimits = ( { name = \"per-ip\"; key = \"ip\"; limit = 100; "
	"window = 3600; action = \"tempfail\"; reply = \"slow down "
	"({rate})\"; },\n  { name = \"u\"; key = \"auth_user\"; limit = 10; "
	"window = 60; count = \"recipients\"; } );\nrules = ( { name = \"a\"; "
	"match = { rate_over = \"u\"; }; action = \"reject\"; } );\n",
	NULL, 0},
    {"ratelimit key",
	"ratelimits = ( { name = \"x\"; key = \"helo\"; limit = 1; window = 1; "
	"} );\n",
	"main.conf:1: ratelimits \"x\": key: \"helo\" is not ip, net, "
	"sender_domain or auth_user",
	0},
    {"ratelimit missing", "ratelimits = ( { name = \"x\"; key = \"ip\"; } );\n",
	"main.conf:1: ratelimits \"x\": missing limit", 2},
    {"ratelimit greylist",
	"ratelimits = ( { name = \"x\"; key = \"ip\"; limit = 1; window = 1; "
	"action = \"greylist\"; } );\n",
	"main.conf:1: ratelimits \"x\": action: \"greylist\" is not an action "
	"for a limit",
	0},
    {"ratelimit reply needs action",
	"ratelimits = ( { name = \"x\"; key = \"ip\"; limit = 1; window = 1; "
	"reply = \"no\"; } );\n",
	"main.conf:1: ratelimits \"x\": reply, code and xcode need an action",
	0},
    {"ratelimit code class",
	"ratelimits = ( { name = \"x\"; key = \"ip\"; limit = 1; window = 1; "
	"action = \"tempfail\"; code = 550; } );\n",
	"main.conf:1: ratelimits \"x\": code: a tempfail rule needs a 4xx code",
	0},
    {"rate_over undeclared",
	"rules = ( { name = \"a\"; match = { rate_over = \"x\"; }; action = "
	"\"reject\"; } );\n",
	"main.conf:1: rule \"a\": match: rate_over: \"x\" is not the name of a "
	"limit in ratelimits",
	0},
    {"greylist rule",
	"greylist = { delay = 2; retry_window = 600; };\nrules = ( { name = "
	"\"g\"; match = { spf = [ \"none\", \"softfail\" ]; }; action = "
	"\"greylist\"; reply = \"retry in {retry} s\"; code = 450; xcode = "
	"\"4.7.1\"; } );\n",
	NULL, 0},
    {"greylist needs 4xx",
	"rules = ( { name = \"g\"; action = \"greylist\"; code = 550; } );\n",
	"main.conf:1: rule \"g\": code: a greylist rule needs a 4xx code", 0},
    {"greylist window range", "greylist = { retry_window = 10; };\n",
	"main.conf:1: greylist.retry_window: 10 is out of range", 0},
    {"history needs enabling",
	"rules = ( { name = \"h\";\n match = { history = \"new\"; }; action = "
	"\"tag\"; } );\n",
	"main.conf:2: rule \"h\": match: history: needs history.enabled = true",
	0},
    {"history class",
	"history = { enabled = true; };\nrules = ( { name = \"h\"; match = { "
	"history = \"old\"; }; action = \"tag\"; } );\n",
	"main.conf:2: rule \"h\": match: history: \"old\" is not new, "
	"established or bad",
	0},
    {"history ok",
	"history = { enabled = true; established_messages = 2; "
	"established_hours = 0; };\nrules = ( { name = \"h\"; match = { "
	"history = [ \"new\", \"bad\" ]; anomaly = false; }; action = "
	"\"tag\"; } );\n",
	NULL, 0},
    {"store backend", "store = { backend = \"mysql\"; };\n",
	"main.conf:1: store.backend: \"mysql\": expected lmdb or redis", 0},
    {"store on_error", "store = { on_error = \"reject\"; };\n",
	"main.conf:1: store.on_error: \"reject\": expected accept (fail open) "
	"or tempfail (fail closed)",
	0},
    {"store redis",
	"store = { backend = \"redis\"; redis_host = \"127.0.0.1\"; redis_port "
	"= 6380; timeout_ms = 100; prefix = \"mx:\"; on_error = "
	"\"tempfail\"; };\n",
	NULL, 0},
    {"store unknown key", "store = { host = \"x\"; };\n",
	"main.conf:1: store: unknown key \"host\"", 0},
};

static int
write_file(const char *path, const char *text)
{
	FILE *fp;
	int rc;

	if ((fp = fopen(path, "w")) == NULL)
		return -1;
	rc = fputs(text, fp) < 0 ? -1 : 0;
	return fclose(fp) != 0 ? -1 : rc;
}

static int
count_lines(const char *s)
{
	int n = 0;

	for (; *s != '\0'; s++)
		n += *s == '\n';
	return n;
}

/* lines_start_with - every error line names a file in the directory */
static bool
lines_start_with(const char *s, const char *prefix)
{
	size_t n = strlen(prefix);

	for (; *s != '\0'; s = strchr(s, '\n') + 1)
		if (strncmp(s, prefix, n) != 0)
			return false;
	return true;
}

/* diag - lines as TAP comments */
static void
diag(const char *s)
{
	const char *nl;

	for (; *s != '\0'; s = nl + 1) {
		if ((nl = strchr(s, '\n')) == NULL)
			nl = s + strlen(s) - 1;
		(void)printf("# %.*s\n", (int)(nl - s + (*nl != '\n')), s);
	}
}

static void
run_case(const struct tcase *t)
{
	char path[PATH_MAX], want[PATH_MAX + 256], prefix[PATH_MAX];
	struct conf *c;
	struct buf err;
	int nerr = t->nerr != 0 ? t->nerr : 1;
	bool ok;

	(void)snprintf(path, sizeof(path), "%s/main.conf", tmpdir);
	(void)snprintf(prefix, sizeof(prefix), "%s/", tmpdir);
	if (write_file(path, t->text) != 0) {
		TAP_OK(0, "%s: cannot write %s", t->label, path);
		return;
	}
	buf_init(&err);
	c = conf_load(path, &err);
	(void)snprintf(want, sizeof(want), "%s/%s", tmpdir,
	    t->want != NULL ? t->want : "");
	if (t->want == NULL)
		ok = c != NULL && err.len == 0;
	else
		ok = c == NULL && strstr(buf_str(&err), want) != NULL &&
		    count_lines(buf_str(&err)) == nerr &&
		    lines_start_with(buf_str(&err), prefix);
	TAP_OK(ok, "%s: %s", t->label, t->want != NULL ? t->want : "loads");
	if (!ok)
		diag(c != NULL ? "loaded\n" : buf_str(&err));
	conf_unref(c);
	buf_free(&err);
}

/* test_many_errors - every error of a file, in one pass */
static void
test_many_errors(void)
{
	static const char text[] =
	    "socket = \"inet:0@127.0.0.1\";\n"
	    "workers = 0;\n"
	    "dns = { timeout_ms = \"5s\"; bogus = 1; };\n"
	    "mode = \"strict\";\n"
	    "rules = (\n"
	    "  { name = \"a\"; action = \"reject\"; code = 451; },\n"
	    "  { name = \"a\"; action = \"drop\"; },\n"
	    "  { action = \"accept\"; match = { client = \"nolist\"; }; }\n"
	    ");\n";
	static const char *const want[] = {
	    "main.conf:1: socket:",
	    "main.conf:2: workers: 0 is out of range",
	    "main.conf:3: dns.timeout_ms: expected an integer",
	    "main.conf:3: dns: unknown key \"bogus\"",
	    "main.conf:4: mode: \"strict\" is neither",
	    "main.conf:6: rule \"a\": code: a reject rule needs a 5xx code",
	    "main.conf:7: duplicate rule name \"a\" (first at line 6)",
	    "main.conf:7: rule \"a\": action: \"drop\" is not an action",
	    "main.conf:8: rule #3: missing name",
	    "main.conf:8: rule #3: match: client: \"nolist\" is not",
	};
	char path[PATH_MAX], line[PATH_MAX + 128];
	struct conf *c;
	struct buf err;
	size_t i, found = 0;

	(void)snprintf(path, sizeof(path), "%s/main.conf", tmpdir);
	if (write_file(path, text) != 0) {
		TAP_OK(0, "many errors: cannot write %s", path);
		return;
	}
	buf_init(&err);
	c = conf_load(path, &err);
	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		(void)snprintf(line, sizeof(line), "%s/%s", tmpdir, want[i]);
		found += strstr(buf_str(&err), line) != NULL;
	}
	TAP_OK(c == NULL && found == i && count_lines(buf_str(&err)) == (int)i,
	    "many errors: all %zu reported in one pass (%zu found, %d "
	    "lines)",
	    i, found, count_lines(buf_str(&err)));
	conf_unref(c);
	buf_free(&err);
}

static void
test_missing_file(void)
{
	struct conf *c;
	struct buf err;
	char path[PATH_MAX];
	bool ok;

	(void)snprintf(path, sizeof(path), "%s/none.conf", tmpdir);
	buf_init(&err);
	c = conf_load(path, &err);
	ok = c == NULL &&
	    strstr(buf_str(&err), "none.conf: No such file") != NULL &&
	    count_lines(buf_str(&err)) == 1;
	TAP_OK(ok, "missing file: FILE: No such file or directory");
	if (!ok)
		diag(buf_str(&err));
	conf_unref(c);
	buf_free(&err);
}

/* more @include lines than the loader follows: refused at the first one
 * over (a file including another N times, N levels deep, is N^10 reads) */
static void
test_many_includes(void)
{
	struct conf *c;
	struct buf err, text;
	char path[PATH_MAX];
	bool ok;
	int i;

	buf_init(&text);
	for (i = 0; i < 300; i++)
		buf_addf(&text, "@include \"inc/empty.conf\"\n");
	(void)snprintf(path, sizeof(path), "%s/main.conf", tmpdir);
	if (write_file(path, buf_str(&text)) != 0) {
		TAP_OK(false, "300 @include lines: cannot write %s", path);
		buf_free(&text);
		return;
	}
	buf_init(&err);
	c = conf_load(path, &err);
	ok = c == NULL &&
	    strstr(buf_str(&err),
		"main.conf:257: more than 256 @include lines in all") != NULL &&
	    count_lines(buf_str(&err)) == 1;
	TAP_OK(ok, "300 @include lines: refused at the 257th");
	if (!ok)
		diag(buf_str(&err));
	conf_unref(c);
	buf_free(&err);
	buf_free(&text);
}

/* a directory as the configuration: refused, the process goes on */
static void
test_directory(void)
{
	struct conf *c;
	struct buf err;
	char path[PATH_MAX];
	bool ok;

	(void)snprintf(path, sizeof(path), "%s/inc", tmpdir);
	buf_init(&err);
	c = conf_load(path, &err);
	ok = c == NULL &&
	    strstr(buf_str(&err), "/inc: not a regular file") != NULL &&
	    count_lines(buf_str(&err)) == 1;
	TAP_OK(ok, "a directory: FILE: not a regular file");
	if (!ok)
		diag(buf_str(&err));
	conf_unref(c);
	buf_free(&err);
}

static bool
net_is(const struct policy_cidr *n, int family, int bits)
{
	return n->family == family && n->bits == bits;
}

/* test_defaults - an empty file is every default */
static void
test_defaults(void)
{
	char path[PATH_MAX], host[256];
	struct conf *c;
	struct buf err;
	struct policy *p;

	(void)snprintf(path, sizeof(path), "%s/main.conf", tmpdir);
	if (write_file(path, "") != 0 || gethostname(host, sizeof(host)) != 0) {
		TAP_OK(0, "defaults: set-up");
		return;
	}
	host[sizeof(host) - 1] = '\0';
	buf_init(&err);
	if ((c = conf_load(path, &err)) == NULL) {
		TAP_OK(0, "defaults: load");
		diag(buf_str(&err));
		buf_free(&err);
		return;
	}
	TAP_OK(c->refs == 1 && strcmp(c->file, path) == 0,
	    "defaults: one reference, the file's name");
	TAP_OK(strcmp(c->socket, CONF_DEFAULT_SOCKET) == 0 &&
		c->pidfile == NULL && c->user == NULL && c->group == NULL &&
		c->socket_mode == -1 && c->socket_group == NULL &&
		c->decision_log == NULL &&
		strcmp(c->syslog_facility, "mail") == 0 && c->workers == 1024,
	    "defaults: daemon");
	TAP_OK(c->resolvers == NULL && c->nresolvers == 0 &&
		c->dns_timeout_ms == 5000,
	    "defaults: dns");
	TAP_OK(strcmp(c->spf_engine, "builtin") == 0 &&
		c->spf_deadline_ms == 20000 && strcmp(c->receiver, host) == 0 &&
		c->default_explanation == NULL && c->helo_check,
	    "defaults: spf (receiver %s)", c->receiver);
	TAP_OK(strcmp(c->authserv_id, host) == 0 && c->add_auth_results &&
		c->add_received_spf && c->remove_forged_ar &&
		strcmp(c->tag_header, "X-Spfguard-Tag") == 0,
	    "defaults: headers (authserv_id %s)", c->authserv_id);
	p = c->policy;
	TAP_OK(p != NULL && p->mode == MODE_ENFORCE && p->ntrusted == 2 &&
		net_is(&p->trusted[0], AF_INET, 8) &&
		p->trusted[0].addr[0] == 127 &&
		net_is(&p->trusted[1], AF_INET6, 128) &&
		p->trusted[1].addr[15] == 1,
	    "defaults: enforce, trusted 127.0.0.0/8 and ::1/128");
	TAP_OK(p != NULL && p->nsets == 1 &&
		strcmp(p->sets[0].name, "default") == 0 &&
		p->sets[0].nrules == 0 && p->sets[0].mode == POLICY_ANY &&
		p->sets[0].rcpt_domains.n == 0,
	    "defaults: one empty default set");
	conf_unref(c);
	buf_free(&err);
}

/* test_full - tests/conf/full.conf: every setting, policy in an @include */
static void
test_full(const char *srcdir)
{
	char path[PATH_MAX];
	const struct policy_rule *r;
	const struct policy_set *s;
	struct policy_facts f;
	struct policy_verdict v;
	struct policy *p;
	struct conf *c;
	struct buf err;
	size_t n;

	(void)snprintf(path, sizeof(path), "%s/conf/full.conf", srcdir);
	buf_init(&err);
	c = conf_load(path, &err);
	TAP_OK(c != NULL, "full.conf loads");
	diag(buf_str(&err));
	buf_free(&err);
	if (c == NULL)
		return;
	TAP_OK(strcmp(c->socket, "unix:/run/spfguard/spfguard.sock") == 0 &&
		strcmp(c->pidfile, "/run/spfguard/spfguard.pid") == 0 &&
		strcmp(c->user, "spfguard") == 0 &&
		strcmp(c->group, "spfguard") == 0 && c->socket_mode == 0660 &&
		strcmp(c->socket_group, "postfix") == 0 &&
		strcmp(c->decision_log, "/var/log/spfguard/decisions.log") ==
		    0 &&
		strcmp(c->syslog_facility, "local3") == 0 && c->workers == 16,
	    "full: daemon settings");
	TAP_OK(c->nresolvers == 3 && strcmp(c->resolvers[1], "[::1]:53") == 0 &&
		c->dns_timeout_ms == 2500,
	    "full: dns settings");
	TAP_OK(c->spf_deadline_ms == 15000 &&
		strcmp(c->receiver, "mx.example.org") == 0 &&
		strncmp(c->default_explanation, "See https:", 10) == 0 &&
		!c->helo_check,
	    "full: spf settings");
	TAP_OK(strcmp(c->authserv_id, "mx.example.org") == 0 &&
		c->add_auth_results && !c->add_received_spf &&
		!c->remove_forged_ar &&
		strcmp(c->tag_header, "X-Spam-Spfguard") == 0,
	    "full: headers settings");
	p = c->policy;
	TAP_OK(p->mode == MODE_MONITOR && p->ntrusted == 3 && p->nsets == 3 &&
		p->sets[0].nrules == 6,
	    "full: monitor, 3 trusted networks, 3 sets, 6 default rules");
	r = &p->sets[0].rules[0];
	TAP_OK(strcmp(r->name, "local") == 0 && r->match.has_client &&
		r->match.client_trusted && r->match.nnets == 0 &&
		r->match.null_sender == POLICY_ANY &&
		r->match.authenticated == POLICY_ANY && r->action == ACT_ACCEPT,
	    "full: rule local");
	r = &p->sets[0].rules[1];
	n = strlen(r->file);
	TAP_OK(r->line == 11 && n > 17 &&
		strcmp(r->file + n - 17, "/full-policy.conf") == 0 &&
		access(r->file, R_OK) == 0,
	    "full: a rule's place is its included file and line (%s:%d)",
	    r->file, r->line);
	TAP_OK(strcmp(r->name, "bank-spoof") == 0 && r->action == ACT_REJECT &&
		r->match.from_domain.n == 2 &&
		strcmp(r->match.from_domain.pat[0], "*.bank.example") == 0 &&
		r->match.spf ==
		    (1u << SPF_FAIL | 1u << SPF_SOFTFAIL | 1u << SPF_NONE) &&
		!r->match.has_client && r->code == 550 &&
		strcmp(r->xcode, "5.7.23") == 0 &&
		strcmp(r->reply, "{domain} does not send from {ip}") == 0,
	    "full: rule bank-spoof");
	r = &p->sets[0].rules[2];
	TAP_OK(r->match.has_client && r->match.client_trusted &&
		r->match.nnets == 4 && r->match.null_sender == 0 &&
		r->match.authenticated == 0 &&
		r->match.spf_helo == 1u << SPF_PASS &&
		r->match.spf_mfrom == (1u << SPF_NEUTRAL | 1u << SPF_NONE) &&
		r->match.helo.n == 1 && r->match.client_name.n == 1 &&
		r->match.from_localpart.n == 1 && r->match.rcpt_domain.n == 1 &&
		r->match.auth_user.n == 1 && r->action == ACT_TAG &&
		r->code == 0 && r->xcode == NULL && r->reply == NULL,
	    "full: rule partners (lists, CIDR and trusted in one client)");
	TAP_OK(p->sets[0].rules[3].shadow && !p->sets[0].rules[2].shadow &&
		p->sets[0].rules[4].action == ACT_TEMPFAIL &&
		p->sets[0].rules[4].code == 451 &&
		p->sets[0].rules[5].match.has_client == false,
	    "full: rules soft, temp, default");
	s = &p->sets[1];
	TAP_OK(strcmp(s->name, "tenant-b") == 0 && s->rcpt_domains.n == 2 &&
		s->mode == MODE_ENFORCE && s->nrules == 2 &&
		s->rules[1].action == ACT_QUARANTINE,
	    "full: policy set tenant-b");
	s = &p->sets[2];
	TAP_OK(strcmp(s->name, "tenant-c") == 0 && s->rcpt_domains.n == 1 &&
		s->mode == POLICY_ANY && s->nrules == 0,
	    "full: policy set tenant-c");

	/* the snapshot is what the engine reads */
	memset(&f, 0, sizeof(f));
	f.client_ip = "198.51.100.9";
	f.helo = "mail.bank.example";
	f.sender = "alerts@bank.example";
	f.from_localpart = "alerts";
	f.from_domain = "bank.example";
	f.rcpt = "someone@example.org";
	f.rcpt_domain = "example.org";
	f.have_spf_helo = f.have_spf_mfrom = true;
	f.spf_helo = SPF_NONE;
	f.spf_mfrom = SPF_FAIL;
	policy_spf(&f);
	policy_evaluate(p, &f, &v);
	TAP_OK(v.rule != NULL && strcmp(v.rule->name, "bank-spoof") == 0 &&
		v.would == ACT_REJECT && v.action == ACT_ACCEPT && v.monitor &&
		v.code == 550,
	    "full: the engine decides with the loaded policy (%s)",
	    v.rule != NULL ? v.rule->name : "no rule");
	policy_verdict_free(&v);
	conf_unref(c);
}

/* test_refs - references keep the snapshot; the last one frees it (ASan) */
static void
test_refs(void)
{
	char path[PATH_MAX];
	struct conf *c, *c2;
	struct buf err;

	(void)snprintf(path, sizeof(path), "%s/main.conf", tmpdir);
	if (write_file(path,
		"rules = ( { name = \"a\"; action = \"tag\"; "
		"match = { helo = \"x\"; }; } );\n") != 0) {
		TAP_OK(0, "refs: set-up");
		return;
	}
	buf_init(&err);
	if ((c = conf_load(path, &err)) == NULL) {
		TAP_OK(0, "refs: load");
		diag(buf_str(&err));
		buf_free(&err);
		return;
	}
	c2 = conf_ref(c);
	TAP_OK(c2 == c && c->refs == 2, "refs: conf_ref counts");
	conf_unref(c2);
	TAP_OK(c->refs == 1 &&
		strcmp(c->policy->sets[0].rules[0].name, "a") == 0,
	    "refs: conf_unref keeps it while referenced");
	conf_unref(c);
	conf_unref(NULL);
	TAP_OK(1, "refs: the last conf_unref frees (leaks show under ASan)");
	buf_free(&err);
}

static void
test_describe(void)
{
	static const char *const want[] = {
	    "socket (string, default \"inet:8891@127.0.0.1\")",
	    "workers (integer 1..4096, default 1024)",
	    "dns.resolvers (string or list of strings)",
	    "dns.timeout_ms (integer 100..60000, default 5000)",
	    "spf.deadline_ms (integer 500..120000, default 20000)",
	    "spf.receiver (string, default: the host name)",
	    "spf.helo_check (boolean, default true)",
	    "socket_mode (octal string)",
	    "trusted_networks (",
	    "policy_sets (",
	    "  xcode (string)",
	    "  from_domain\n",
	    "  recipient_domains (",
	};
	struct buf b;
	size_t i, found = 0;

	buf_init(&b);
	conf_describe(&b);
	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		if (strstr(buf_str(&b), want[i]) != NULL)
			found++;
		else
			(void)printf("# missing: %s\n", want[i]);
	}
	TAP_OK(found == i, "conf_describe: every option, rule and match key");
	buf_free(&b);
}

/* test_policies - every shipped policy file loads */
static void
test_policies(const char *srcdir)
{
	static const char *const names[] = {"default.conf", "monitor.conf",
	    "strict.conf", "forwarding.conf", "multi-tenant.conf"};
	char dir[PATH_MAX], path[PATH_MAX * 2];
	struct dirent *de;
	struct conf *c;
	struct buf err;
	size_t i, n = 0, named = 0;
	DIR *d;

	(void)snprintf(dir, sizeof(dir), "%s/../policies", srcdir);
	if ((d = opendir(dir)) == NULL) {
		TAP_OK(0, "policies: cannot open %s", dir);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);

		if (len < 6 || strcmp(de->d_name + len - 5, ".conf") != 0)
			continue;
		(void)snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		buf_init(&err);
		c = conf_load(path, &err);
		TAP_OK(c != NULL, "policies/%s loads", de->d_name);
		diag(buf_str(&err));
		if (c != NULL && strcmp(de->d_name, "monitor.conf") == 0)
			TAP_OK(c->policy->mode == MODE_MONITOR,
			    "policies/monitor.conf is in monitor mode");
		if (c != NULL && strcmp(de->d_name, "multi-tenant.conf") == 0)
			TAP_OK(c->policy->nsets >= 3,
			    "policies/multi-tenant.conf has tenant sets");
		conf_unref(c);
		buf_free(&err);
		for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			named += strcmp(de->d_name, names[i]) == 0;
		n++;
	}
	(void)closedir(d);
	TAP_OK(named == sizeof(names) / sizeof(names[0]),
	    "policies: default, monitor, strict, forwarding, multi-tenant are "
	    "there (%zu files)",
	    n);
}

/* ctl - run "spfguardctl ARGS", its stdout and stderr into files */
static int
ctl(const char *bin, const char *args)
{
	char cmd[PATH_MAX * 4];
	int st;

	(void)snprintf(cmd, sizeof(cmd), "'%s' %s >'%s/out' 2>'%s/err'", bin,
	    args, tmpdir, tmpdir);
	st = system(cmd);
	return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static bool
file_has(const char *name, const char *text)
{
	char path[PATH_MAX], data[4096];
	size_t n;
	FILE *fp;

	(void)snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	if ((fp = fopen(path, "r")) == NULL)
		return false;
	n = fread(data, 1, sizeof(data) - 1, fp);
	data[n] = '\0';
	(void)fclose(fp);
	return strstr(data, text) != NULL;
}

/* test_ctl_check - spfguardctl check: 0 OK, 1 errors on stderr, 2 usage */
static void
test_ctl_check(void)
{
	const char *bin = getenv("SPFGUARDCTL");
	char path[PATH_MAX], args[PATH_MAX + 64], want[PATH_MAX * 2 + 128];
	int rc;

	if (bin == NULL || access(bin, X_OK) != 0) {
		(void)printf("ok %d # SKIP SPFGUARDCTL not set\n", ++tap_n);
		return;
	}
	(void)snprintf(path, sizeof(path), "%s/main.conf", tmpdir);
	(void)snprintf(args, sizeof(args), "check -c '%s'", path);
	(void)write_file(path, "workers = 8;\n");
	rc = ctl(bin, args);
	TAP_OK(rc == 0 && file_has("out", "configuration OK\n"),
	    "spfguardctl check: a good file (exit %d)", rc);
	(void)write_file(path, "workers = 8;\nfoo = 1;\nmode = 2;\n");
	rc = ctl(bin, args);
	(void)snprintf(want, sizeof(want),
	    "%s:2: unknown key \"foo\"\n%s:3: mode: expected a string\n", path,
	    path);
	TAP_OK(rc == 1 && file_has("err", want),
	    "spfguardctl check: errors on stderr (exit %d)", rc);
	rc = ctl(bin, "check -c /nonexistent/spfguard.conf");
	TAP_OK(rc == 1 &&
		file_has("err", "/nonexistent/spfguard.conf: No such"),
	    "spfguardctl check: a missing file (exit %d)", rc);
	rc = ctl(bin, "check -c");
	TAP_OK(rc == 2, "spfguardctl check: -c needs a file (exit %d)", rc);
	rc = ctl(bin, "check extra");
	TAP_OK(rc == 2, "spfguardctl check: no arguments (exit %d)", rc);
}

int
main(void)
{
	const char *srcdir = getenv("TESTS_SRCDIR");
	char path[PATH_MAX];
	size_t i;

	if (srcdir == NULL)
		srcdir = ".";
	if (mkdtemp(tmpdir) == NULL) {
		(void)printf("Bail out! mkdtemp\n");
		return 1;
	}
	(void)snprintf(path, sizeof(path), "%s/inc", tmpdir);
	if (mkdir(path, 0700) != 0) {
		(void)printf("Bail out! mkdir %s\n", path);
		return 1;
	}
	for (i = 0; i < sizeof(fixtures) / sizeof(fixtures[0]); i++) {
		(void)snprintf(path, sizeof(path), "%s/%s", tmpdir,
		    fixtures[i].path);
		if (write_file(path, fixtures[i].text) != 0) {
			(void)printf("Bail out! cannot write %s\n", path);
			return 1;
		}
	}

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		run_case(&cases[i]);
	test_many_errors();
	test_missing_file();
	test_directory();
	test_many_includes();
	test_defaults();
	test_full(srcdir);
	test_refs();
	test_describe();
	test_policies(srcdir);
	test_ctl_check();

	for (i = 0; i < sizeof(fixtures) / sizeof(fixtures[0]); i++) {
		(void)snprintf(path, sizeof(path), "%s/%s", tmpdir,
		    fixtures[i].path);
		(void)unlink(path);
	}
	for (i = 0; i < 3; i++) {
		static const char *const left[] = {"main.conf", "out", "err"};

		(void)snprintf(path, sizeof(path), "%s/%s", tmpdir, left[i]);
		(void)unlink(path);
	}
	(void)snprintf(path, sizeof(path), "%s/inc", tmpdir);
	(void)rmdir(path);
	(void)rmdir(tmpdir);
	TAP_DONE();
}
