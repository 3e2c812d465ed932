-- pass.lua - SPF pass: every step continues, and at end of message
-- Authentication-Results (index 0) and Received-SPF are inserted, no tag.
dofile(dir .. "/common.lua")
run(function()
	local from = "mt-pass@pass.example"
	local conn = open_conn()
	envelope(conn, "mail.client.example", "192.0.2.1", "mail.client.example",
	    from, {"user@dest.example"})
	message(conn, std_headers(from))
	check_ar(conn, "pass", from)
	check_received_spf(conn, "pass")
	check(not mt.eom_check(conn, MT_HDRADD, "X-Spfguard-Tag"),
	    "a tag header on a pass")
	check(not mt.eom_check(conn, MT_QUARANTINE), "quarantined a pass")
	mt.disconnect(conn)
end)
