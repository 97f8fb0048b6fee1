-- wrk script for bench/read_path.sh: random users, each reading its own photos.
-- MODE=one: GET /api/v1/photos/{id} of a random own photo; MODE=page: GET /api/v1/photos?limit=20.
local tokens, first_ids = dofile("bench/tokens.lua")
local per_user = tonumber(os.getenv("PHOTOS_PER_USER") or "100")
local mode = os.getenv("MODE") or "one"

request = function()
  local u = math.random(1, #tokens)
  local headers = { ["Authorization"] = "Bearer " .. tokens[u] }
  if mode == "page" then
    return wrk.format("GET", "/api/v1/photos?limit=20", headers)
  end
  local id = first_ids[u] + math.random(0, per_user - 1)
  return wrk.format("GET", "/api/v1/photos/" .. id, headers)
end

response = function(status, headers, body)
  if status ~= 200 then
    io.stderr:write("unexpected status " .. status .. "\n")
  end
end
