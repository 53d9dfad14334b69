-- POST GraphQL bodies to /graphql, each with its own tenant's token, and judge every answer.
--
-- Usage: wrk -s bench/wrk/graphql.lua http://127.0.0.1:PORT -- PLAN.lua
-- PLAN.lua (written by bench/load.py) returns
--   { path = "/graphql", expect = '"userErrors":[]', requests = { { token = "...", body = "..." }, ... } }
-- Requests go round-robin through the plan, each thread starting at its own offset, so
-- tenants (and, for mutations, shipments) rotate and no two connections start in step.
-- Bodies are sent exactly as planned: for Q1p/Q2p (persisted, hash only) they are
--   {"operationName":..,"variables":{..},"extensions":{"persistedQuery":{"version":1,"sha256Hash":".."}}}
-- with no "query", so an unregistered hash answers PERSISTED_QUERY_NOT_FOUND and counts as failed.
-- A response counts as failed when it is not 2xx, carries "errors" anywhere, or lacks `expect`.
-- done() prints one line, "BENCH_JSON {...}", with counts and latency percentiles.

local threads = {}

function setup(thread)
  thread:set("thread_index", #threads)
  table.insert(threads, thread)
end

local prepared = {}
local cursor = 0
non2xx = 0
graphql_errors = 0
unexpected = 0
sample = nil

function init(args)
  local plan = dofile(args[1])
  expect = plan.expect
  for i, item in ipairs(plan.requests) do
    prepared[i] = wrk.format("POST", plan.path, {
      ["Content-Type"] = "application/json",
      ["Accept"] = "application/json",
      ["Authorization"] = "Bearer " .. item.token,
    }, item.body)
  end
  local nthreads = tonumber(args[2]) or 1
  cursor = math.floor((thread_index or 0) * #prepared / nthreads)
end

function request()
  cursor = cursor + 1
  return prepared[(cursor % #prepared) + 1]
end

local function remember(status, body)
  if sample == nil then
    sample = tostring(status) .. " " .. string.sub(body or "", 1, 400)
  end
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    remember(status, body)
  elseif string.find(body, '"errors"', 1, true) then
    graphql_errors = graphql_errors + 1
    remember(status, body)
  elseif expect and not string.find(body, expect, 1, true) then
    unexpected = unexpected + 1
    remember(status, body)
  end
end

local function json_string(value)
  if value == nil then
    return "null"
  end
  local escaped = string.gsub(value, '[%c"\\]', function(c)
    if c == '"' then return '\\"' end
    if c == "\\" then return "\\\\" end
    return string.format("\\u%04x", string.byte(c))
  end)
  return '"' .. escaped .. '"'
end

function done(summary, latency, requests)
  local bad_status, bad_graphql, bad_body, first_sample = 0, 0, 0, nil
  for _, thread in ipairs(threads) do
    bad_status = bad_status + (thread:get("non2xx") or 0)
    bad_graphql = bad_graphql + (thread:get("graphql_errors") or 0)
    bad_body = bad_body + (thread:get("unexpected") or 0)
    first_sample = first_sample or thread:get("sample")
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"socket_errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d},"wrk_status_errors":%d,' ..
    '"non2xx":%d,"graphql_errors":%d,"unexpected":%d,' ..
    '"latency_us":{"mean":%.1f,"stdev":%.1f,"max":%d,"p50":%d,"p75":%d,"p90":%d,"p99":%d,"p999":%d},' ..
    '"sample":%s}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.timeout, e.status,
    bad_status, bad_graphql, bad_body,
    latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(75), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9),
    json_string(first_sample)))
end
