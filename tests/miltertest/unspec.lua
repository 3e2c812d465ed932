-- unspec.lua - hostile or odd sessions get defined answers: a connection
-- of an unknown protocol family (no address), an IPv6 client, an
-- IP-literal HELO, an empty HELO, the null sender.
dofile(dir .. "/common.lua")
local defined = {SMFIR_CONTINUE, SMFIR_ACCEPT, SMFIR_REPLYCODE, SMFIR_REJECT,
		 SMFIR_TEMPFAIL}
run(function()
	local conn = open_conn()
	expect(conn, mt.conninfo(conn, "unknown", "unspec"), "connect unspec",
	    table.unpack(defined))
	expect(conn, mt.helo(conn, "whatever.example"), "helo", table.unpack(defined))
	expect(conn, mt.mailfrom(conn, "<mt-unspec@pass.example>"), "mail",
	    table.unpack(defined))
	expect(conn, mt.rcptto(conn, "<user@dest.example>"), "rcpt",
	    table.unpack(defined))
	mt.disconnect(conn)

	-- IPv6 client, ip6: mechanism
	local from = "mt-v6@pass6.example"
	conn = open_conn()
	envelope(conn, "mail6.client.example", "2001:db8::25", "mail6.client.example",
	    from, {"user@dest.example"})
	message(conn, std_headers(from))
	check_ar(conn, "pass", from)
	mt.disconnect(conn)

	-- IP-literal HELO, then an empty HELO, the null sender
	conn = open_conn()
	expect(conn, mt.conninfo(conn, "mail.client.example", "192.0.2.1"),
	    "connect", SMFIR_CONTINUE)
	expect(conn, mt.helo(conn, "[192.0.2.1]"), "helo literal", table.unpack(defined))
	expect(conn, mt.helo(conn, ""), "empty helo", table.unpack(defined))
	expect(conn, mt.mailfrom(conn, "<>"), "null sender", table.unpack(defined))
	expect(conn, mt.rcptto(conn, "<user@dest.example>"), "rcpt",
	    table.unpack(defined))
	mt.disconnect(conn)
end)
