-- mail_twice.lua - MAIL twice in one transaction (no abort between): the
-- decision follows the second sender, both ways round.
dofile(dir .. "/common.lua")
run(function()
	local conn = open_conn()
	expect(conn, mt.conninfo(conn, "mail.client.example", "192.0.2.1"),
	    "connect", SMFIR_CONTINUE)
	expect(conn, mt.helo(conn, "mail.client.example"), "helo", SMFIR_CONTINUE)
	-- pass, then fail: RCPT refused
	expect(conn, mt.mailfrom(conn, "<mt-twice1@pass.example>"), "mail 1",
	    SMFIR_CONTINUE)
	expect(conn, mt.mailfrom(conn, "<mt-twice2@fail.example>"), "mail 2",
	    SMFIR_CONTINUE)
	expect(conn, mt.rcptto(conn, "<user@dest.example>"),
	    "rcpt after pass then fail", SMFIR_REPLYCODE)
	mt.abort(conn)
	-- fail, then pass: accepted, headers name the second sender
	expect(conn, mt.mailfrom(conn, "<mt-twice3@fail.example>"), "mail 3",
	    SMFIR_CONTINUE)
	expect(conn, mt.mailfrom(conn, "<mt-twice4@pass.example>"), "mail 4",
	    SMFIR_CONTINUE)
	expect(conn, mt.rcptto(conn, "<user@dest.example>"),
	    "rcpt after fail then pass", SMFIR_CONTINUE)
	message(conn, std_headers("mt-twice4@pass.example"))
	local ar = check_ar(conn, "pass", "mt-twice4@pass.example")
	check(string.find(ar, "mt-twice3", 1, true) == nil,
	    "the first sender leaked into " .. ar)
	mt.disconnect(conn)
end)
