-- wrk script of router/benches/router_load.sh: POSTs one GraphQL request
-- (the JSON body in the file BENCH_BODY_FILE) with an optional bearer token
-- (BENCH_TOKEN) and an optional Origin header (BENCH_ORIGIN), counts answers
-- that are not HTTP 200 or that carry GraphQL `errors`, and prints one
-- machine-readable RESULT line at the end.
--
-- Many users: with BENCH_TOKENS_FILE (one token per line), every request
-- carries the next token of the file instead, each wrk thread starting at
-- its own place in it, so the requests of one second come from many users.

local body_file = os.getenv("BENCH_BODY_FILE")
local token = os.getenv("BENCH_TOKEN")
local origin = os.getenv("BENCH_ORIGIN")

local f = assert(io.open(body_file, "rb"), "cannot read BENCH_BODY_FILE")
local body = f:read("*a")
f:close()

wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json"
if token ~= nil and token ~= "" then
    wrk.headers["Authorization"] = "Bearer " .. token
end
if origin ~= nil and origin ~= "" then
    wrk.headers["Origin"] = origin
end

local tokens_file = os.getenv("BENCH_TOKENS_FILE")

local threads = {}

function setup(thread)
    thread:set("thread_index", #threads)
    table.insert(threads, thread)
end

function init(args)
    -- Per-thread globals, read back in done() with thread:get().
    gql_errors = 0
    bad_status = 0
    first_error = ""
    tokens = {}
    if tokens_file ~= nil and tokens_file ~= "" then
        for line in io.lines(tokens_file) do
            if line ~= "" then
                table.insert(tokens, line)
            end
        end
    end
    -- Threads start far apart in the list, so they do not move in step.
    next_token = (thread_index or 0) * 7919
end

function request()
    if #tokens == 0 then
        return wrk.format()
    end
    next_token = next_token + 1
    local headers = {}
    for name, value in pairs(wrk.headers) do
        headers[name] = value
    end
    headers["Authorization"] = "Bearer " .. tokens[(next_token % #tokens) + 1]
    return wrk.format(nil, nil, headers, nil)
end

function response(status, headers, resp_body)
    if status ~= 200 then
        bad_status = bad_status + 1
        if first_error == "" then
            first_error = "HTTP " .. status .. ": " .. string.sub(resp_body or "", 1, 300)
        end
    elseif string.find(resp_body, '"errors"', 1, true) then
        gql_errors = gql_errors + 1
        if first_error == "" then
            first_error = string.sub(resp_body, 1, 300)
        end
    end
end

function done(summary, latency, requests)
    local errs, bad, first = 0, 0, ""
    for _, t in ipairs(threads) do
        errs = errs + t:get("gql_errors")
        bad = bad + t:get("bad_status")
        local fe = t:get("first_error")
        if first == "" and fe ~= nil then
            first = fe
        end
    end
    local e = summary.errors
    io.write(string.format(
        "RESULT requests=%d duration_us=%d rps=%.1f p50_ms=%.2f p95_ms=%.2f p99_ms=%.2f max_ms=%.2f "
            .. "non2xx=%d connect_err=%d read_err=%d write_err=%d timeout_err=%d gql_errors=%d bad_status=%d\n",
        summary.requests,
        summary.duration,
        summary.requests / (summary.duration / 1e6),
        latency:percentile(50) / 1000,
        latency:percentile(95) / 1000,
        latency:percentile(99) / 1000,
        latency.max / 1000,
        e.status, e.connect, e.read, e.write, e.timeout, errs, bad))
    if first ~= "" then
        io.write("FIRST_ERROR " .. string.gsub(first, "\n", " ") .. "\n")
    end
end
