-- auth.lua - Postfix's macros for an authenticated client ({auth_type},
-- {auth_authen} at MAIL) with an SPF-fail sender: accepted; run.py checks
-- that no TXT query for auth.example was made.
dofile(dir .. "/common.lua")
run(function()
	local from = "mt-auth@auth.example"
	local conn = open_conn()
	mt.macro(conn, SMFIC_CONNECT, "j", "mx.test.example", "{daemon_name}",
	    "mx.test.example", "v", "Postfix 3.7.11", "_",
	    "mail.client.example [192.0.2.1]")
	expect(conn, mt.conninfo(conn, "mail.client.example", "192.0.2.1"),
	    "connect", SMFIR_CONTINUE)
	expect(conn, mt.helo(conn, "mail.client.example"), "helo", SMFIR_CONTINUE)
	mt.macro(conn, SMFIC_MAIL, "{auth_type}", "PLAIN", "{auth_authen}", "mt-user",
	    "{mail_addr}", from)
	expect(conn, mt.mailfrom(conn, "<" .. from .. ">"), "mail", SMFIR_CONTINUE)
	expect(conn, mt.rcptto(conn, "<user@dest.example>"), "rcpt", SMFIR_CONTINUE)
	message(conn, std_headers(from))
	mt.disconnect(conn)
end)
