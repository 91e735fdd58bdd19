-- POST distinct JSON records: a per-thread counter makes every body unique.
local counter = 0
local thread_id = 0
local pad = string.rep("x", 300)

function setup(thread)
  thread_id = thread_id + 1
  thread:set("tid", thread_id)
end

function request()
  counter = counter + 1
  local body = '{"thread":' .. tid .. ',"n":' .. counter .. ',"pad":"' .. pad .. '"}'
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end
