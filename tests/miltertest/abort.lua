-- abort.lua - abort mid-message, then a new transaction on the same
-- connection: its headers describe it alone; abort right after MAIL; an
-- abrupt disconnect mid-transaction; and a new connection still works.
dofile(dir .. "/common.lua")
run(function()
	local conn = open_conn()
	envelope(conn, "mail.client.example", "192.0.2.1", "mail.client.example",
	    "mt-abort1@pass.example", {"user@dest.example"})
	if not mt.test_option(conn, SMFIP_NODATA) then
		expect(conn, mt.data(conn), "data", SMFIR_CONTINUE)
	end
	expect(conn, mt.header(conn, "From", "<mt-abort1@pass.example>"), "header",
	    SMFIR_CONTINUE)
	check(mt.abort(conn) == nil, "abort failed")
	-- a softfail message after it: tagged, and about its own sender
	local from = "mt-abort2@soft.example"
	expect(conn, mt.mailfrom(conn, "<" .. from .. ">"), "mail 2", SMFIR_CONTINUE)
	expect(conn, mt.rcptto(conn, "<user@dest.example>"), "rcpt 2", SMFIR_CONTINUE)
	message(conn, std_headers(from))
	local ar = check_ar(conn, "softfail", from)
	check(string.find(ar, "mt-abort1", 1, true) == nil,
	    "the aborted sender leaked into " .. ar)
	check(mt.eom_check(conn, MT_HDRADD, "X-Spfguard-Tag"), "softfail not tagged")
	-- abort right after MAIL, then disconnect without QUIT mid-transaction
	expect(conn, mt.mailfrom(conn, "<mt-abort3@pass.example>"), "mail 3",
	    SMFIR_CONTINUE)
	check(mt.abort(conn) == nil, "abort 2 failed")
	expect(conn, mt.mailfrom(conn, "<mt-abort4@pass.example>"), "mail 4",
	    SMFIR_CONTINUE)
	mt.disconnect(conn, false)
	-- the filter still serves a new connection
	local c2 = open_conn()
	envelope(c2, "mail.client.example", "192.0.2.1", "mail.client.example",
	    "mt-abort5@pass.example", {"user@dest.example"})
	message(c2, std_headers("mt-abort5@pass.example"))
	check_ar(c2, "pass", "mt-abort5@pass.example")
	mt.disconnect(c2)
end)
