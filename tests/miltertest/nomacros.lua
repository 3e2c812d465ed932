-- nomacros.lua - a session without any macro (no {auth_authen}, no i, no
-- j): an SPF pass is still decided and its headers added; run.py checks
-- the decision-log line (queue_id null, auth null).
dofile(dir .. "/common.lua")
run(function()
	local from = "mt-nomacros@pass.example"
	local conn = open_conn()
	envelope(conn, "mail.client.example", "192.0.2.1", "mail.client.example",
	    from, {"user@dest.example"})
	message(conn, std_headers(from))
	check_ar(conn, "pass", from)
	mt.disconnect(conn)
end)
