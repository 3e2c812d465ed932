-- forged.lua - an incoming Authentication-Results with our authserv-id is
-- removed at end of message; another server's is left alone.
dofile(dir .. "/common.lua")
run(function()
	local from = "mt-forged@pass.example"
	local conn = open_conn()
	envelope(conn, "mail.client.example", "192.0.2.1", "mail.client.example",
	    from, {"user@dest.example"})
	local h = std_headers(from)
	table.insert(h, 1, {"Authentication-Results",
	    "other.example; dkim=pass header.d=other.example"})
	table.insert(h, 1, {"Authentication-Results",
	    AUTHSERV .. "; spf=pass smtp.mailfrom=forged@pass.example"})
	message(conn, h)
	check(mt.eom_check(conn, MT_HDRDELETE, "Authentication-Results") or
	    mt.eom_check(conn, MT_HDRCHANGE, "Authentication-Results", ""),
	    "the forged Authentication-Results was not removed")
	check_ar(conn, "pass", from)
	mt.disconnect(conn)
end)
