# Shared by the bench scripts (source it).

# photo_tokens DB_URL API_URL: for every user, "FIRST_PHOTO_ID ACCESS_TOKEN" (password
# "correct horse battery"), for bench/tokens.lua.
photo_tokens() {
  psql "$1" -Atc "SELECT u.username || ' ' || min(p.id) FROM users u JOIN photos p ON p.user_id = u.id GROUP BY u.username ORDER BY u.username" |
  while read -r name first; do
    token=$(curl -fsS -XPOST "$2/auth/login" -H 'content-type: application/json' \
      -d "{\"username\":\"$name\",\"password\":\"correct horse battery\"}" |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
    echo "$first $token"
  done
}
