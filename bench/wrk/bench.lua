-- wrk script for bench/run.py: optional method and body arguments, status counting,
-- one JSON line.
--
--   wrk -t1 -c32 -d5s -s bench/wrk/bench.lua http://127.0.0.1:PORT/path -- POST
--   wrk ... -s bench/wrk/bench.lua http://127.0.0.1:PORT/items -- POST body.json application/json
--
-- The optional second and third arguments name a file whose bytes are every
-- request's body and that body's Content-Type (quote it: a multipart type
-- carries "; boundary=..."). wrk adds the Content-Length itself. The file is
-- read once per wrk thread, in init(), so the load itself reads no file.
--
-- Other request headers come from wrk's own -H option (run.py sends
-- "Origin: ..." to the CORS variants only, so every other framework gets the
-- same requests as before).
--
-- Each wrk thread counts 2xx and other statuses in its own Lua state, and the
-- 2xx answers that carry access-control-allow-origin (a CORS middleware at
-- work); done() adds them up through the thread handles kept by setup() and
-- prints one line starting with BENCH_RESULT that run.py parses. A 2xx POST
-- that never shows up in the server's log is a lost background task.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  ok = 0
  other = 0
  allow_origin = 0
  if args[1] ~= nil then
    wrk.method = args[1]
  end
  if args[2] ~= nil then
    local file = assert(io.open(args[2], "rb"))
    wrk.body = file:read("*a")
    file:close()
    wrk.headers["Content-Type"] = assert(args[3], "a body needs its Content-Type argument")
  end
end

function response(status, headers, body)
  if status >= 200 and status < 300 then
    ok = ok + 1
    if headers["access-control-allow-origin"] ~= nil then
      allow_origin = allow_origin + 1
    end
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local total_ok, total_other, total_allow_origin = 0, 0, 0
  for _, thread in ipairs(threads) do
    total_ok = total_ok + thread:get("ok")
    total_other = total_other + thread:get("other")
    total_allow_origin = total_allow_origin + thread:get("allow_origin")
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_us": %d, "ok": %d, "other": %d, '
      .. '"allow_origin": %d, '
      .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
      .. '"latency_us": {"mean": %.1f, "p50": %d, "p90": %d, "p99": %d, "max": %d}}\n',
    summary.requests, summary.duration, total_ok, total_other, total_allow_origin,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max
  ))
end
