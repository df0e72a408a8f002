-- orchestrate: optional HTTP pipelining + one machine-readable result line.
-- setup() and done() run in wrk's main Lua state, init() in each thread's own state:
-- the depth given to init() is read back from a thread in done().
local threads = {}
orch_depth = 1
orch_budget = 2e7  -- steps allowed for the exact histogram walk (script argument 2; wrk.py WALK_BUDGET)

setup = function(thread)
  threads[#threads + 1] = thread
end

-- Starting at an instant (script argument 3, epoch seconds): wrk waits inside its script, in
-- init(), which wrk runs in its main thread before creating each thread, so only the first one
-- sleeps; wrk is already running and only wakes from a timer, as orchestrate-load does. Each
-- thread then notes on stderr when its first request is about to leave: just before it
-- connects (wrk asks a static script's wrk.request() once per thread there), or at its first
-- request() when pipelining. The note is evidence, not the wake-up: on a CPU shared by several
-- generators a woken wrk can wait a scheduler tick or more before it connects.
local ffi  -- LuaJIT's, loaded when a start instant is given (every wrk 4 build has LuaJIT)

local function load_ffi()
  local ok, lib = pcall(require, "ffi")
  if not ok then
    error("orchestrate: this wrk's Lua has no ffi (LuaJIT): it cannot start at an instant")
  end
  ffi = lib
  pcall(ffi.cdef, [[
    struct orch_timespec { long tv_sec; long tv_nsec; };
    int clock_nanosleep(int clock, int flags, const struct orch_timespec *t, void *rem);
    int clock_gettime(int clock, struct orch_timespec *t);
    int getpid(void);
    int gettid(void);
    long syscall(long number, ...);
  ]])
end

local function wait_until(at)
  local t = ffi.new("struct orch_timespec")
  t.tv_sec = math.floor(at)
  t.tv_nsec = math.floor((at - math.floor(at)) * 1e9)
  -- CLOCK_REALTIME (0), TIMER_ABSTIME (1); only EINTR (4) is worth another try
  while ffi.C.clock_nanosleep(0, 1, t, nil) == 4 do end
end

local function in_main_thread()
  -- glibc before 2.30 has no gettid(): then the raw system call (x86-64: 186, arm64: 178)
  local ok, tid = pcall(function() return ffi.C.gettid() end)
  if not ok then tid = tonumber(ffi.C.syscall(ffi.arch == "arm64" and 178 or 186)) end
  return tid == ffi.C.getpid()
end

-- true once noted; wrk's main thread also calls request() once, to count the requests in it
local function note_start()
  if in_main_thread() then return false end
  local t = ffi.new("struct orch_timespec")
  ffi.C.clock_gettime(0, t)
  io.stderr:write(string.format("%s%.6f\n", "orchestrate: wrk started at ",
                                tonumber(t.tv_sec) + tonumber(t.tv_nsec) / 1e9))
  io.stderr:flush()
  return true
end

-- The request's shape, as named arguments after the positional ones (wrk.py command):
-- method=M, body=TEXT, close=1 (Connection: close, so wrk opens a new connection per request).
-- Set before wrk.init() formats the request (it calls this init() first).
local function shape(args)
  for i = 3, #args do
    local name, value = string.match(args[i], "^(%a+)=(.*)$")
    if name == "method" then
      wrk.method = value
    elseif name == "body" then
      wrk.body = value
    elseif name == "close" then
      wrk.headers["Connection"] = "close"
    elseif name ~= nil then
      error("orchestrate: unknown script argument " .. name)
    end
  end
end

init = function(args)
  orch_depth = math.floor(tonumber(args[1]) or 1)
  orch_budget = tonumber(args[2]) or orch_budget
  shape(args)
  local timed = args[3] ~= nil and tonumber(args[3]) ~= nil
  if timed then
    load_ffi()
    wait_until(tonumber(args[3]))
  end
  if orch_depth > 1 then
    local r = {}
    for i = 1, orch_depth do r[i] = wrk.format() end
    local req = table.concat(r)
    -- a global request() makes wrk count orch_depth requests (and responses) per send
    local function plain() return req end
    request = plain
    if timed then
      request = function()
        if note_start() then request = plain end
        return req
      end
    end
  elseif timed then
    -- wrk.init() sets wrk.request after this init(): wrap it as it is set
    setmetatable(wrk, {__newindex = function(t, k, v)
      if k == "request" then
        rawset(t, k, function() note_start(); return v() end)  -- once per thread
      else
        rawset(t, k, v)
      end
    end})
  end
end

local function int(x) return string.format("%.0f", x) end

done = function(summary, latency, requests)
  local depth = (threads[1] and threads[1]:get("orch_depth")) or orch_depth
  local budget = (threads[1] and threads[1]:get("orch_budget")) or orch_budget
  local e = summary.errors
  local n = #latency
  local lo, hi = 0, 0
  if n > 0 then lo, hi = latency.min, latency.max end
  local parts = {}
  -- latency(i) scans from min each call: the exact walk costs ~ n * (hi - lo) / 2 steps
  local exact = n * (hi - lo) / 2 <= budget
  if exact then
    for i = 1, n do
      local v, c = latency(i)
      parts[i] = "[" .. int(v) .. "," .. int(c) .. "]"
    end
  else
    -- about 1000 percentiles: wrk's reported ones, 500 evenly to p99, 499 log-spaced through
    -- the tail to one sample from the top, and the max. Each is valued at its own percentile
    -- (the upper end of the samples it stands for, as HdrHistogram reports) and weighted up to
    -- its rank, with wrk's rank rule, so wrk's own percentiles come back exactly.
    local total = math.ceil(summary.requests / depth)
    local tail = math.min(1e-3, math.max(1 / math.max(total, 1), 1e-7))
    local reported = {[50] = true, [75] = true, [90] = true, [99] = true, [99.9] = true,
                      [99.99] = true}
    local ps = {}
    for p in pairs(reported) do ps[#ps + 1] = p end
    for j = 1, 500 do ps[#ps + 1] = 99 * j / 500 end
    for j = 1, 499 do ps[#ps + 1] = 100 - (tail / 0.01) ^ (j / 499) end
    table.sort(ps)
    local taken = 0
    for j = 1, #ps do
      -- the max keeps at least one sample: a rank of `total` is the max in wrk's rule too
      local rank = math.min(math.floor(ps[j] / 100 * total + 0.5 + 0.5), total - 1)
      if rank > taken then
        parts[#parts + 1] = {latency:percentile(ps[j]), rank - taken}
        taken = rank
      elseif reported[ps[j]] and #parts > 0 then
        -- wrk's count includes its corrected samples, ours is estimated: where ranks tie,
        -- a reported percentile keeps its own value
        parts[#parts][1] = latency:percentile(ps[j])
      end
    end
    if total > taken then parts[#parts + 1] = {hi, total - taken} end
    for j = 1, #parts do
      parts[j] = "[" .. int(parts[j][1]) .. "," .. int(parts[j][2]) .. "]"
    end
  end
  local pct = {}
  for _, p in ipairs({50, 75, 90, 99, 99.9}) do
    pct[#pct + 1] = "\"" .. p .. "\":" .. int(n > 0 and latency:percentile(p) or 0)
  end
  io.write("ORCH_JSON {\"requests\":", int(summary.requests),
    ",\"duration_us\":", int(summary.duration), ",\"bytes\":", int(summary.bytes),
    ",\"pipeline\":", int(depth),
    ",\"errors\":{\"connect\":", int(e.connect), ",\"read\":", int(e.read),
    ",\"write\":", int(e.write), ",\"status\":", int(e.status),
    ",\"timeout\":", int(e.timeout), "}",
    ",\"latency_us\":{\"min\":", int(lo), ",\"max\":", int(hi),
    ",\"mean\":", string.format("%.3f", n > 0 and latency.mean or 0),
    ",\"stdev\":", string.format("%.3f", n > 0 and latency.stdev or 0),
    ",\"percentiles\":{", table.concat(pct, ","), "}",
    ",\"distinct\":", int(n), ",\"exact\":", tostring(exact),
    ",\"histogram\":[", table.concat(parts, ","), "]}}\n")
  io.flush()
end
