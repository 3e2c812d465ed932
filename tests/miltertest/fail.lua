-- fail.lua - SPF fail: MAIL continues (decisions are per recipient), each
-- RCPT is refused with a reply code (550 5.7.23: checked by run.py in the
-- decision log, miltertest cannot read the text of a RCPT reply).
dofile(dir .. "/common.lua")
run(function()
	local conn = open_conn()
	expect(conn, mt.conninfo(conn, "mail.client.example", "192.0.2.1"),
	    "connect", SMFIR_CONTINUE)
	expect(conn, mt.helo(conn, "mail.client.example"), "helo", SMFIR_CONTINUE)
	expect(conn, mt.mailfrom(conn, "<mt-fail@fail.example>"), "mail",
	    SMFIR_CONTINUE)
	expect(conn, mt.rcptto(conn, "<user@dest.example>"), "rcpt",
	    SMFIR_REPLYCODE)
	expect(conn, mt.rcptto(conn, "<other@dest.example>"), "second rcpt",
	    SMFIR_REPLYCODE)
	mt.disconnect(conn)
end)
