-- postfix_macros.lua - the macros Postfix 3.7 sends with milter_protocol 6
-- (measured through tests/e2e): connect: j {daemon_name} {daemon_addr} v _;
-- MAIL: {mail_addr} {mail_host} {mail_mailer} (no i yet); first RCPT: no
-- i; second RCPT: i; DATA, headers, end of headers, end of message: i.
-- run.py checks that the decision-log line carries that queue id.
dofile(dir .. "/common.lua")
run(function()
	local from = "mt-postfix@pass.example"
	local conn = open_conn()
	mt.macro(conn, SMFIC_CONNECT, "j", "mx.test.example", "{daemon_name}",
	    "mx.test.example", "{daemon_addr}", "127.0.0.1", "v", "Postfix 3.7.11",
	    "_", "mail.client.example [192.0.2.1]")
	expect(conn, mt.conninfo(conn, "mail.client.example", "192.0.2.1"),
	    "connect", SMFIR_CONTINUE)
	expect(conn, mt.helo(conn, "mail.client.example"), "helo", SMFIR_CONTINUE)
	mt.macro(conn, SMFIC_MAIL, "{mail_addr}", from, "{mail_host}",
	    "[127.0.0.1]:25", "{mail_mailer}", "relay")
	expect(conn, mt.mailfrom(conn, "<" .. from .. ">"), "mail", SMFIR_CONTINUE)
	mt.macro(conn, SMFIC_RCPT, "{rcpt_addr}", "user@dest.example")
	expect(conn, mt.rcptto(conn, "<user@dest.example>"), "rcpt 1", SMFIR_CONTINUE)
	mt.macro(conn, SMFIC_RCPT, "i", "4F2C1A72300", "{rcpt_addr}", "two@dest.example")
	expect(conn, mt.rcptto(conn, "<two@dest.example>"), "rcpt 2", SMFIR_CONTINUE)
	-- (miltertest sends macros for the four envelope stages only, so the
	-- i of the later stages cannot be sent here; tests/e2e sees them)
	message(conn, std_headers(from))
	check_ar(conn, "pass", from)
	mt.disconnect(conn)
end)
