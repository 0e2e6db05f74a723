-- wrk script for GET /v1/users/{clerk_id}: every request asks for a random user among those
-- bench/run.sh created with usersync-loadgen (--run-id PREFIX --users N), so reads spread
-- over the whole table instead of hitting one cached row.
-- Usage: wrk ... -H "Authorization: Bearer TOKEN" -s bench/query.lua URL -- PREFIX N
-- The ids match loadgen's clerk_id(): "user_" .. PREFIX .. the index, zero-padded to 27.

local threads = {}

function setup(thread)
  thread:set("seed", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  prefix = args[1] or error("pass the run id: -- PREFIX USERS")
  users = tonumber(args[2]) or error("pass the user count: -- PREFIX USERS")
  width = 27 - #prefix
  math.randomseed(seed * 7919)
end

function request()
  local id = string.format("user_%s%0" .. width .. "d", prefix, math.random(0, users - 1))
  return wrk.format("GET", "/v1/users/" .. id)
end

-- No response() hook: it would make wrk parse every body in Lua. wrk's own "Non-2xx or 3xx
-- responses" line shows a wrong prefix or token (404 or 401) at once.
