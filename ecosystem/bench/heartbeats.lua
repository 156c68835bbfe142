-- wrk script for heartbeats.sh: POST a heartbeat for a random preloaded
-- lease, read from $TMPDIR/heartbeat_ids.txt ("<user> <stream id>" lines).
local ids = {}
local n = 0
function init(args)
  for line in io.lines((os.getenv("TMPDIR") or "/tmp") .. "/heartbeat_ids.txt") do
    n = n + 1
    local u, id = line:match("(%d+) (%S+)")
    ids[n] = wrk.format("POST", "/api/users/" .. u .. "/streams/" .. id .. "/heartbeat")
  end
  math.randomseed(os.time() + (args[1] or 0))
end
function request()
  return ids[math.random(1, n)]
end
