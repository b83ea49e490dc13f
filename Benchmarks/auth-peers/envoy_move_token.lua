-- Envoy Lua filter for run.sh's envoy auth peer (issue 16), placed after jwt_authn (which has verified the
-- access_token query parameter and, with forward: true, left it in place): the token goes upstream as
-- "Authorization: Bearer <token>" and the parameter leaves :path (every other parameter kept, in order).
function envoy_on_request(handle)
  local headers = handle:headers()
  local path = headers:get(":path")
  local mark = path:find("?", 1, true)
  if not mark then return end
  local query = "&" .. path:sub(mark + 1)
  local token = query:match("&access_token=([^&]*)")
  if not token then return end
  headers:replace("authorization", "Bearer " .. token)
  local rest = (query:gsub("&access_token=[^&]*", "")):sub(2)
  if rest == "" then
    headers:replace(":path", path:sub(1, mark - 1))
  else
    headers:replace(":path", path:sub(1, mark) .. rest)
  end
end
