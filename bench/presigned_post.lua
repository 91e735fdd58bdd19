-- POST pre-signed Jebbit deliveries from the file in $PRESIGNED ("<signature>\t<body>" per line).
-- Thread i of n sends lines i, i+n, i+2n...; DELAY_MS (optional) paces each connection;
-- CLOSE=1 (optional) asks for a new connection a request (Connection: close).
local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
  table.insert(threads, thread)
end

function init(args)
  local nthreads = tonumber(os.getenv("WRK_THREADS") or "2")
  requests = {}
  local n = 0
  local close = os.getenv("CLOSE")
  for line in io.lines(os.getenv("PRESIGNED")) do
    if n % nthreads == tid - 1 then
      local sig, body = line:match("([^\t]+)\t(.*)")
      local headers = {["Content-Type"] = "application/json", ["x-jebbit-signature"] = sig}
      if close then headers["Connection"] = "close" end
      table.insert(requests, wrk.format("POST", "/webhooks/jebbit", headers, body))
    end
    n = n + 1
  end
  index = 0
  pause = tonumber(os.getenv("DELAY_MS") or "0")
end

function delay()
  return pause
end

function request()
  index = index + 1
  if index > #requests then index = 1 end
  return requests[index]
end
