-- wrk script for bench/pgo.sh: POSTs every body of a directory in turn, each with its own
-- Content-Type, from the directory's manifest.tsv (FILE<TAB>CONTENT_TYPE lines).
--
--   wrk -s bodies.lua URL -- DIR XFF|-

local requests = {}
local n = 0

function init(args)
  local dir = args[1]
  local xff = args[2] or "-"
  local path = dir .. "/manifest.tsv"
  local manifest = assert(io.open(path, "r"), "cannot open " .. path)
  for line in manifest:lines() do
    local file, ctype = line:match("^([^\t]+)\t(.+)$")
    if file then
      local f = assert(io.open(dir .. "/" .. file, "rb"), "cannot open " .. file)
      local body = f:read("*a")
      f:close()
      local headers = { ["Content-Type"] = ctype }
      if xff ~= "-" then headers["X-Forwarded-For"] = xff end
      requests[#requests + 1] = wrk.format("POST", nil, headers, body)
    end
  end
  manifest:close()
  assert(#requests > 0, "no bodies in " .. dir)
end

function request()
  n = n % #requests + 1
  return requests[n]
end
