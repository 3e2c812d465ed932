-- common.lua - helpers shared by spfguard's miltertest scripts.
--
-- The wrapper (run.py) runs each script as
--   miltertest -D sock=inet:PORT@127.0.0.1 -D dir=THIS_DIR -s SCRIPT.lua
-- against a running filter/spfguard whose test DNS server knows the
-- domains used here (see ZONE in run.py).  A script fails by calling
-- error(); miltertest then exits non-zero with the message on stderr.

AUTHSERV = "mx.test.example"

-- the reply letters of the milter protocol, for messages
local names = {}
for _, n in ipairs({"SMFIR_ACCEPT", "SMFIR_CONTINUE", "SMFIR_DISCARD",
		    "SMFIR_REJECT", "SMFIR_TEMPFAIL", "SMFIR_REPLYCODE",
		    "SMFIR_SKIP"}) do
	if _G[n] ~= nil then
		names[math.tointeger(_G[n]) or _G[n]] = n
	end
end

function rname(r)
	if r == nil then
		return "nil"
	end
	local k = math.tointeger(r) or r
	return names[k] or string.format("%q", string.char(k))
end

function check(cond, what)
	if not cond then
		error(what, 2)
	end
end

-- The "no reply" protocol steps (SMFIP_NR_*).  Where the filter negotiated
-- one, miltertest reads no answer and mt.getreply() gives SMFIR_CONTINUE of
-- its own; so that each SMFIR_CONTINUE expected below is read from the
-- filter, open_conn() offers every step but these, as an MTA without them
-- (libmilter then answers "continue" for the filter).  A script that sets
-- noreply = true before loading this file is offered them too, as Postfix
-- and Sendmail offer them (noreply.lua).
NR_STEPS = {SMFIP_NR_CONN, SMFIP_NR_HELO, SMFIP_NR_MAIL, SMFIP_NR_RCPT,
	    SMFIP_NR_DATA, SMFIP_NR_UNKN, SMFIP_NR_HDR, SMFIP_NR_EOH,
	    SMFIP_NR_BODY}
local ALL_STEPS = 0x1FFFFF	-- libmilter's SMFI_CURR_PROT

function open_conn()
	check(sock ~= nil, "run with -D sock=inet:PORT@127.0.0.1")
	local conn = mt.connect(sock, 40, 0.05)
	check(conn ~= nil, "mt.connect(" .. sock .. ") failed")
	local steps = ALL_STEPS
	if not noreply then
		for _, b in ipairs(NR_STEPS) do
			steps = steps & ~math.tointeger(b)
		end
	end
	-- the steps are its third argument, the actions its fourth (its
	-- manual has them the other way round)
	local err = mt.negotiate(conn, nil, steps, nil)
	check(err == nil, "option negotiation: " .. tostring(err))
	for _, b in ipairs(noreply and {} or NR_STEPS) do
		check(not mt.test_option(conn, b), string.format(
		    "no reply asked for (0x%x) although not offered", math.tointeger(b)))
	end
	return conn
end

-- expect - a step went through and the filter answered one of want...
function expect(conn, err, what, ...)
	check(err == nil, what .. ": " .. tostring(err))
	local got = mt.getreply(conn)
	for _, w in ipairs({...}) do
		if got == w then
			return got
		end
	end
	local wants = {}
	for _, w in ipairs({...}) do
		table.insert(wants, rname(w))
	end
	error(string.format("%s: reply %s, want %s", what, rname(got),
	    table.concat(wants, " or ")), 2)
end

-- envelope - connect, HELO, MAIL, RCPT..., each answered CONTINUE
function envelope(conn, host, ip, helo, from, rcpts)
	expect(conn, mt.conninfo(conn, host, ip), "connect", SMFIR_CONTINUE)
	expect(conn, mt.helo(conn, helo), "helo", SMFIR_CONTINUE)
	expect(conn, mt.mailfrom(conn, "<" .. from .. ">"), "mail", SMFIR_CONTINUE)
	for _, r in ipairs(rcpts) do
		expect(conn, mt.rcptto(conn, "<" .. r .. ">"), "rcpt " .. r,
		    SMFIR_CONTINUE)
	end
end

-- message - DATA, headers, end of headers and a body, skipping the steps
-- the filter asked not to see; then end of message
function message(conn, headers)
	if not mt.test_option(conn, SMFIP_NODATA) then
		expect(conn, mt.data(conn), "data", SMFIR_CONTINUE)
	end
	for _, h in ipairs(headers) do
		if not mt.test_option(conn, SMFIP_NOHDRS) then
			expect(conn, mt.header(conn, h[1], h[2]), "header " .. h[1],
			    SMFIR_CONTINUE)
		end
	end
	if not mt.test_option(conn, SMFIP_NOEOH) then
		expect(conn, mt.eoh(conn), "eoh", SMFIR_CONTINUE)
	end
	if not mt.test_option(conn, SMFIP_NOBODY) then
		expect(conn, mt.bodystring(conn, "Test message.\r\n"), "body",
		    SMFIR_CONTINUE, SMFIR_SKIP)
	end
	expect(conn, mt.eom(conn), "eom", SMFIR_CONTINUE, SMFIR_ACCEPT)
end

function std_headers(from)
	return {{"From", "<" .. from .. ">"}, {"To", "<user@dest.example>"},
		{"Subject", "miltertest"},
		{"Message-ID", "<" .. from .. ".mt@test.example>"}}
end

-- our Authentication-Results, inserted at the top, saying result for from
function check_ar(conn, result, from)
	local ar = mt.getheader(conn, "Authentication-Results", 0)
	check(ar ~= nil, "no Authentication-Results added")
	local flat = string.gsub(ar, "%s+", " ")
	local want = AUTHSERV .. "; spf=" .. result .. " "
	check(string.sub(flat, 1, #want) == want,
	    "Authentication-Results: " .. flat .. " (want " .. want .. "...)")
	check(string.find(flat, "smtp.mailfrom=" .. from, 1, true) ~= nil,
	    "Authentication-Results: " .. flat .. " (no smtp.mailfrom=" .. from .. ")")
	check(mt.eom_check(conn, MT_HDRINSERT, "Authentication-Results", ar, 0),
	    "Authentication-Results not inserted at index 0")
	return flat
end

function check_received_spf(conn, result)
	local rs = mt.getheader(conn, "Received-SPF", 0)
	check(rs ~= nil, "no Received-SPF added")
	check(string.sub(rs, 1, #result) == result,
	    "Received-SPF: " .. rs .. " (want " .. result .. " ...)")
	return rs
end

-- run - the script's body; miltertest exits 1 on an error without saying
-- why, so the reason is printed first ("FAIL: ...") for the wrapper
function run(body)
	local ok, err = pcall(body)
	if not ok then
		mt.echo("FAIL: " .. tostring(err))
		error(err)
	end
	mt.echo("PASS")
end
