-- noreply.lua - every protocol step offered, as Postfix and Sendmail offer
-- them: the filter asks no reply for each header and end of headers only
-- (not for connect, HELO and MAIL: Postfix would hold those back until
-- RCPT; not for RCPT, where it refuses), so miltertest reads no answer at
-- those two.  A fail is still refused at RCPT; a pass gets its headers at
-- end of message, and a forged Authentication-Results sent without an
-- answer is removed (run.py checks the decision log for the client, HELO
-- and queue id).
noreply = true
dofile(dir .. "/common.lua")
run(function()
	local conn = open_conn()
	for _, s in ipairs({{"header", SMFIP_NR_HDR},
			    {"end of headers", SMFIP_NR_EOH}}) do
		check(mt.test_option(conn, s[2]), "no reply not asked for " .. s[1])
	end
	for _, s in ipairs({{"connect", SMFIP_NR_CONN}, {"HELO", SMFIP_NR_HELO},
			    {"MAIL", SMFIP_NR_MAIL}, {"RCPT", SMFIP_NR_RCPT}}) do
		check(not mt.test_option(conn, s[2]), "no reply asked for " .. s[1])
	end

	-- a fail: refused at RCPT
	expect(conn, mt.conninfo(conn, "mail.client.example", "192.0.2.1"),
	    "connect", SMFIR_CONTINUE)
	expect(conn, mt.helo(conn, "mail.client.example"), "helo", SMFIR_CONTINUE)
	expect(conn, mt.mailfrom(conn, "<mt-nr-fail@fail.example>"), "mail",
	    SMFIR_CONTINUE)
	expect(conn, mt.rcptto(conn, "<user@dest.example>"), "rcpt",
	    SMFIR_REPLYCODE)
	check(mt.abort(conn) == nil, "abort failed")

	-- a pass on the same connection, with a forged header
	local from = "mt-nr-pass@pass.example"
	expect(conn, mt.mailfrom(conn, "<" .. from .. ">"), "mail 2", SMFIR_CONTINUE)
	expect(conn, mt.rcptto(conn, "<user@dest.example>"), "rcpt 2", SMFIR_CONTINUE)
	local h = std_headers(from)
	table.insert(h, 1, {"Authentication-Results",
	    AUTHSERV .. "; spf=pass smtp.mailfrom=forged@pass.example"})
	-- the queue id with end of headers (miltertest names no SMFIC_EOH)
	check(mt.macro(conn, string.byte("N"), "i", "NRQ2") == nil, "macro failed")
	message(conn, h)
	check(mt.eom_check(conn, MT_HDRDELETE, "Authentication-Results") or
	    mt.eom_check(conn, MT_HDRCHANGE, "Authentication-Results", ""),
	    "the forged Authentication-Results was not removed")
	check_ar(conn, "pass", from)
	check_received_spf(conn, "pass")
	mt.disconnect(conn)
end)
