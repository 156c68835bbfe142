-- wrk script: alternate GET /api/startstream/{u} and GET /api/endstream/{u}
-- for a random user u among USERS (default 100000), so about half the requests
-- start a stream and half end one. Each wrk thread gets its own random seed.
--
--   wrk -t2 -c16 -d10s -s ecosystem/bench/mix.lua http://127.0.0.1:8080
--
-- Environment: BENCH_USERS (default 100000); BENCH_PATH (a fixed path instead
-- of the mix, e.g. /health for the baseline); BENCH_WRK_POOL (requests prepared
-- per thread, default 200000).
--
-- The load generator shares the machine with the server, so its cost per
-- request is part of every ratio. Two choices keep it low and the same for the
-- mix and the BENCH_PATH baseline:
--   * Every request is formatted in init(), before wrk starts its clock, into
--     a pool of BENCH_WRK_POOL requests; request() only hands out the next one.
--     The baseline's pool has as many entries (all the one request), so the
--     Lua work is exactly the same for both, in init() and per request.
--     A pool twice the user count keeps the mix random over all users; wrk
--     walks it in a cycle, which the store does not notice (its state moves on).
--   * No response() callback: with one, wrk copies every response's headers
--     and body into Lua. wrk counts non-2xx answers itself ("Non-2xx or 3xx
--     responses"); done() prints them as the status breakdown. A 400 from
--     endstream ("no active streams" / "user_id not present") is a normal
--     answer in this mix; `/metrics` of the server has the outcome per route.

local users = tonumber(os.getenv("BENCH_USERS") or "100000")
local pool_size = tonumber(os.getenv("BENCH_WRK_POOL") or "200000")
local fixed = os.getenv("BENCH_PATH")
if fixed == "" then fixed = nil end
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
end

local mix, pool, n, i

function init(args)
  math.randomseed(os.time() * 1000 + id * 7919)
  -- wrk.format once per route; each request is then one concatenation
  -- (wrk.format for every entry made init() cost 0.25 s of CPU per thread).
  local function split(prefix)
    local req = wrk.format("GET", prefix .. "0")
    local at = #("GET " .. prefix)
    return req:sub(1, at), req:sub(at + 2)
  end
  local start_head, start_tail = split("/api/startstream/")
  local end_head, end_tail = split("/api/endstream/")
  local flip = (id % 2 == 0)
  mix, n = {}, pool_size
  for k = 1, n do
    flip = not flip
    local u = math.random(0, users - 1)
    if flip then
      mix[k] = start_head .. u .. start_tail
    else
      mix[k] = end_head .. u .. end_tail
    end
  end
  pool = mix
  if fixed then
    -- The baseline builds the mix's pool too (kept, so no garbage is left
    -- for the collector), so that its init() costs the same CPU.
    local req = wrk.format("GET", fixed)
    pool = {}
    for k = 1, n do pool[k] = req end
  end
  -- Threads start at different places of their (different) pools.
  i = (id * 7919) % n
end

function request()
  i = i + 1
  if i > n then i = 1 end
  return pool[i]
end

function done(summary, latency, requests)
  local e = summary.errors
  -- wrk counts every response with a status above 399 in errors.status.
  io.write(string.format("status_codes: 2xx3xx=%d 4xx5xx=%d\n",
    summary.requests - e.status, e.status))
  io.write(string.format("errors: connect=%d read=%d write=%d status=%d timeout=%d\n",
    e.connect, e.read, e.write, e.status, e.timeout))
end
