-- wrk script for bench/run.sh: sets the method, an optional body and headers, and prints one
-- machine-readable result line at the end.
--
--   wrk -s request.lua URL -- METHOD BODY_FILE|- XFF|- [CONTENT_TYPE]
--
-- BODY_FILE is read once per thread at start-up; "-" means no body. XFF, when given, is sent
-- as X-Forwarded-For (Domicile trusts it from loopback; the peers just pass it on).

local function read_file(path)
  local f = assert(io.open(path, "rb"), "cannot open " .. path)
  local s = f:read("*a")
  f:close()
  return s
end

function init(args)
  wrk.method = args[1] or "GET"
  local body_file = args[2] or "-"
  local xff = args[3] or "-"
  if body_file ~= "-" then
    wrk.body = read_file(body_file)
    wrk.headers["Content-Type"] = args[4] or "application/json"
  end
  if xff ~= "-" then
    wrk.headers["X-Forwarded-For"] = xff
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK_RESULT requests=%d duration_us=%d bytes=%d connect=%d read=%d write=%d status=%d timeout=%d p50_us=%d p90_us=%d p99_us=%d mean_us=%.1f max_us=%d\n",
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max))
end
