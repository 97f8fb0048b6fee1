-- wrk script for bench/rehearsal.sh: random users, each reading one of its photos or renaming
-- it (a write), half and half. Every answer must be 200.
local tokens, first_ids = dofile("bench/tokens.lua")
local per_user = tonumber(os.getenv("PHOTOS_PER_USER") or "50")

request = function()
  local u = math.random(1, #tokens)
  local id = first_ids[u] + math.random(0, per_user - 1)
  local path = "/api/v1/photos/" .. id
  if math.random() < 0.5 then
    return wrk.format("GET", path, { ["Authorization"] = "Bearer " .. tokens[u] })
  end
  local headers = { ["Authorization"] = "Bearer " .. tokens[u], ["Content-Type"] = "application/json" }
  return wrk.format("PATCH", path, headers, '{"title": "renamed ' .. math.random(1, 1000000) .. '"}')
end

response = function(status, headers, body)
  if status ~= 200 then
    io.stderr:write("unexpected status " .. status .. "\n")
  end
end
