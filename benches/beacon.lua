-- wrk script for benches/load.sh: POSTs realistic beacons (beacon API, POST /api/event).
--
-- Each wrk thread builds a pool of requests once, in init(), and cycles through it, so that
-- the load generator spends its CPU on sending, not on Lua string building (wrk shares the
-- machine with the server under test). Every request differs in:
--   * the page URL: account number and section of the path, utm_source on some;
--   * the referrer (search engines, mail, internal, none);
--   * User-Agent: 8 real browsers' strings, one of them a crawler (stored as is_bot=1,
--     kept out of the audience table);
--   * X-Forwarded-For: a few thousand public-looking IPv4 addresses (the collector trusts
--     127.0.0.1, so these become the client addresses: GeoIP, ASN, visitor pseudonyms);
--   * the beacon type: mostly pageviews, some custom events with props.
-- The same script drives nginx's baseline, so both targets parse identical requests.
-- With WEBSTATS_BEACON_POOL set, the first thread also writes its pool to that file for the
-- constant-rate generator (benches/rate), so both loops send the same requests.
-- done() prints the latency percentiles wrk's --latency output lacks (p99.9) as
-- "BENCH key=value" lines for load.sh to read.

local POOL_SIZE = 8192   -- requests per thread
local ADDRESSES = 4096   -- distinct client addresses

local user_agents = {
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 YaBrowser/24.4.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; SM-A546B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.0.0 Safari/537.36 Edg/123.0.2420.97",
    "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
}

local hosts = { "lk.example.ru", "lk.example.ru", "lk.example.ru", "www.example.ru" }
local sections = { "bills", "payments", "services", "tariff", "profile", "bills/archive", "support/tickets" }
local utm_sources = { "mail", "yandex", "vk", "telegram", "sms" }
local referrers = {
    "https://yandex.ru/", "https://www.google.com/", "https://e.mail.ru/", "https://lk.example.ru/",
    "https://dzen.ru/", false, false, false,
}
local screens = { 1920, 1536, 1366, 2560, 390, 412, 360, 1440 }
local langs = { "ru-RU", "ru-RU", "ru-RU", "en-US", "ru", "kk-KZ" }
-- First octets of public, mostly Russian-allocated, IPv4 ranges (none private or reserved).
local first_octets = { 5, 31, 37, 46, 62, 77, 78, 79, 80, 81, 82, 83, 85, 87, 88, 89, 90, 91,
                       92, 93, 94, 95, 109, 176, 178, 185, 188, 193, 194, 195, 212, 213, 217 }

-- Address k (0 <= k < ADDRESSES): deterministic, spread over many /8s and /24s.
local function address(k)
    local a = first_octets[(k % #first_octets) + 1]
    local b = (k * 37 + 11) % 256
    local c = (math.floor(k / 7) * 101 + 3) % 256
    local d = (k * 13) % 253 + 1
    return string.format("%d.%d.%d.%d", a, b, c, d)
end

local function pick(list)
    return list[math.random(#list)]
end

-- JSON string literal for the fixed, ASCII-only values above (no escaping needed).
local function q(s)
    return '"' .. s .. '"'
end

local function beacon_body()
    local host = pick(hosts)
    local path = string.format("/accounts/%08d/%s", math.random(10000000, 99999999), pick(sections))
    local url = "https://" .. host .. path
    if math.random(4) == 1 then
        url = url .. "?utm_source=" .. pick(utm_sources) .. "&utm_medium=email&sessionid=x" .. math.random(1e6)
    end
    local fields = { '"site":"bench"', '"url":' .. q(url) }
    local ref = pick(referrers)
    if ref then fields[#fields + 1] = '"ref":' .. q(ref) end
    fields[#fields + 1] = '"sw":' .. pick(screens)
    fields[#fields + 1] = '"lang":' .. q(pick(langs))
    if math.random(10) == 1 then
        fields[#fields + 1] = '"type":"event","name":"download","props":{"doc":"invoice","pages":2,"pdf":true}'
    end
    return "{" .. table.concat(fields, ",") .. "}"
end

-- setup() runs in the main state once per thread: number the threads.
local thread_count = 0
function setup(thread)
    thread:set("id", thread_count)
    thread_count = thread_count + 1
end

local pool = {}
local next_index = 1

function init(args)
    local thread_id = id or 0
    math.randomseed(1000 + thread_id)  -- reproducible, different per thread
    for i = 1, POOL_SIZE do
        local n = thread_id * POOL_SIZE + i
        local headers = {
            ["Host"] = wrk.host .. ":" .. wrk.port,
            ["Content-Type"] = "text/plain;charset=UTF-8",
            ["User-Agent"] = user_agents[(n * 5) % #user_agents + 1],
            ["X-Forwarded-For"] = address((n * 7919) % ADDRESSES),
            ["Origin"] = "https://lk.example.ru",
            ["Accept"] = "*/*",
            ["Accept-Language"] = "ru-RU,ru;q=0.9,en-US;q=0.8,en;q=0.7",
        }
        pool[i] = wrk.format("POST", "/api/event", headers, beacon_body())
    end
    next_index = (thread_id * 997) % POOL_SIZE + 1
    -- The open-loop generator (benches/rate) sends these same requests: the first thread
    -- writes its pool as "<length>\n<raw request>" records when asked to.
    local pool_file = os.getenv("WEBSTATS_BEACON_POOL")
    if pool_file and pool_file ~= "" and thread_id == 0 then
        local f = assert(io.open(pool_file, "wb"))
        for i = 1, POOL_SIZE do
            f:write(#pool[i], "\n", pool[i])
        end
        f:close()
    end
end

function request()
    local r = pool[next_index]
    next_index = next_index % POOL_SIZE + 1
    return r
end

-- done() runs once after all threads; latency values are in microseconds.
function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format("BENCH requests=%d duration_us=%d bytes=%d\n",
        summary.requests, summary.duration, summary.bytes))
    io.write(string.format("BENCH errors_status=%d errors_connect=%d errors_read=%d errors_write=%d errors_timeout=%d\n",
        e.status, e.connect, e.read, e.write, e.timeout))
    io.write(string.format("BENCH p50_us=%d p75_us=%d p90_us=%d p99_us=%d p999_us=%d max_us=%d mean_us=%.1f\n",
        latency:percentile(50), latency:percentile(75), latency:percentile(90),
        latency:percentile(99), latency:percentile(99.9), latency.max, latency.mean))
end
