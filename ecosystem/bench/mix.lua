-- wrk script: alternate GET /api/startstream/{u} and GET /api/endstream/{u}
-- for a random user u among USERS (default 100000), so about half the requests
-- start a stream and half end one. Each wrk thread gets its own random seed.
--
--   wrk -t2 -c16 -d10s -s ecosystem/bench/mix.lua http://127.0.0.1:8080
--
-- Environment: BENCH_USERS (default 100000).
-- A 400 from endstream ("no active streams" / "user_id not present") is a
-- normal answer in this mix; the summary prints the status-code breakdown.

local users = tonumber(os.getenv("BENCH_USERS") or "100000")
-- BENCH_PATH set: request that fixed path instead (same Lua cost per request,
-- so a /health baseline pays the load generator's cost like the mix does).
local fixed = os.getenv("BENCH_PATH")
if fixed == "" then fixed = nil end
local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(os.time() * 1000 + id * 7919)
  flip = (id % 2 == 0)
  codes = {}
end

function request()
  if fixed then
    return wrk.format("GET", fixed)
  end
  flip = not flip
  local u = math.random(0, users - 1)
  if flip then
    return wrk.format("GET", "/api/startstream/" .. u)
  else
    return wrk.format("GET", "/api/endstream/" .. u)
  end
end

function response(status, headers, body)
  codes[status] = (codes[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    local c = t:get("codes")
    if c then
      for k, v in pairs(c) do total[k] = (total[k] or 0) + v end
    end
  end
  local parts = {}
  for k, v in pairs(total) do table.insert(parts, k .. "=" .. v) end
  table.sort(parts)
  io.write("status_codes: " .. table.concat(parts, " ") .. "\n")
  io.write(string.format("errors: connect=%d read=%d write=%d status=%d timeout=%d\n",
    summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout))
end
