-- trusted.lua - a client in trusted_networks with an SPF-fail sender is
-- accepted; run.py checks that no TXT query for trusted.example was made.
dofile(dir .. "/common.lua")
run(function()
	local from = "mt-trusted@trusted.example"
	local conn = open_conn()
	envelope(conn, "relay.trusted.example", "198.51.100.7", "relay.trusted.example",
	    from, {"user@dest.example"})
	message(conn, std_headers(from))
	check(not mt.eom_check(conn, MT_QUARANTINE), "a trusted client's message quarantined")
	mt.disconnect(conn)
end)
