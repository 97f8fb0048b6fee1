-- PATCH /api/v1/photos/{id} (a committed write) as one user, counting statuses, and 503s
-- without Retry-After. Env: PHOTO_ID, TOKEN.
local threads = {}
local body = '{"title":"overload"}'

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  counts = {}
  no_retry_after = 0
  wrk.method = "PATCH"
  wrk.path = "/api/v1/photos/" .. os.getenv("PHOTO_ID")
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
end

function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
  if status == 503 and headers["Retry-After"] == nil and headers["retry-after"] == nil then
    no_retry_after = no_retry_after + 1
  end
end

function done(summary, latency, requests)
  local total = {}
  local missing = 0
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("counts")) do
      total[status] = (total[status] or 0) + n
    end
    missing = missing + thread:get("no_retry_after")
  end
  local line = "statuses:"
  for status, n in pairs(total) do
    line = line .. " " .. status .. "=" .. n
  end
  print(line)
  print("503 without Retry-After: " .. missing)
  print(string.format("socket errors: connect %d, read %d, write %d, timeout %d",
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout))
  print(string.format("latency p50 %.1f ms, p99 %.1f ms, max %.1f ms",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
