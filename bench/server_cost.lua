-- wrk script for bench/server_cost.sh. MODE (every mode goes through this script, so wrk's own
-- cost per request is the same for all of them):
--   health: GET /health, no token;
--   one:    GET /api/v1/photos/{id}, a random own photo of a random user;
--   page:   GET /api/v1/photos?limit=20 of a random user;
--   me:     GET /api/v1/users/me of a random user.
-- Env: MODE, TOKENS_FILE (see bench/tokens.lua; not read for health), PHOTOS_PER_USER.
-- done() prints one machine-readable line:
--   result requests=N duration_us=N non2xx=N statuses=200:N,... connect=N read=N write=N timeout=N p50_us=N p99_us=N
local mode = os.getenv("MODE") or "one"
local per_user = tonumber(os.getenv("PHOTOS_PER_USER") or "20")
local tokens, first_ids = {}, {}
if mode ~= "health" then
  tokens, first_ids = dofile("bench/tokens.lua")
end
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
end

function request()
  if mode == "health" then
    return wrk.format("GET", "/health")
  end
  local u = math.random(1, #tokens)
  local headers = { ["Authorization"] = "Bearer " .. tokens[u] }
  if mode == "page" then
    return wrk.format("GET", "/api/v1/photos?limit=20", headers)
  elseif mode == "me" then
    return wrk.format("GET", "/api/v1/users/me", headers)
  end
  local id = first_ids[u] + math.random(0, per_user - 1)
  return wrk.format("GET", "/api/v1/photos/" .. id, headers)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local total, non2xx = {}, 0
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do
      total[status] = (total[status] or 0) + n
      if status < 200 or status > 299 then
        non2xx = non2xx + n
      end
    end
  end
  local parts = {}
  for status, n in pairs(total) do
    table.insert(parts, status .. ":" .. n)
  end
  table.sort(parts)
  local e = summary.errors
  print(string.format(
    "result requests=%d duration_us=%d non2xx=%d statuses=%s connect=%d read=%d write=%d timeout=%d p50_us=%d p99_us=%d",
    summary.requests, summary.duration, non2xx, table.concat(parts, ","), e.connect, e.read, e.write,
    e.timeout, latency:percentile(50), latency:percentile(99)))
end
