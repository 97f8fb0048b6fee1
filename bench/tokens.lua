-- Shared by the wrk scripts: the users' tokens and each user's first photo id, read from
-- TOKENS_FILE (lines "FIRST_PHOTO_ID TOKEN", written by photo_tokens in bench/lib.sh).
local tokens = {}
local first_ids = {}
for line in io.lines(os.getenv("TOKENS_FILE")) do
  local first, token = line:match("^(%d+) (.+)$")
  table.insert(first_ids, tonumber(first))
  table.insert(tokens, token)
end
return tokens, first_ids
