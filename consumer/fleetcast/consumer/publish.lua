-- fleetcast consumer: publish one batch of routed events, atomically, in one round trip.
--
-- ARGV[1] is the whole batch as length-prefixed fields ("<len>:<bytes>"), written by
-- fleetcast.consumer.publishing.Encoder (its docstring gives the layout); key names
-- and prefixes come from fleetcast.protocol.keys through it, none is spelled here.
-- For each event:
--   1. SET seen-key NX EX: an event id already published (a Kafka redelivery) is skipped;
--   2. XADD it to each target room's history stream (MAXLEN ~), EXPIRE each stream once;
--   3. keep the latest position/status of its asset in the org's fleet snapshot;
-- then, per org, PUBLISH the wire message(s) (fleetcast.protocol.wire, version 1) whose
-- offsets are the stream ids just created, and age the snapshot: assets not seen for the
-- TTL and the oldest beyond the cap leave both hashes.
-- Returns {published, duplicates}.

local blob = ARGV[1]
local cursor = 1

local function field()
  local colon = string.find(blob, ':', cursor, true)
  local size = tonumber(string.sub(blob, cursor, colon - 1))
  cursor = colon + size + 1
  return string.sub(blob, colon + 1, colon + size)
end

local function number() return tonumber(field()) end

-- Redis' Lua unpack() is limited to a few thousand values: chunk variadic calls.
local function call_chunked(command, key, values, width)
  local chunk = 500 * width
  for first = 1, #values, chunk do
    redis.call(command, key, unpack(values, first, math.min(first + chunk - 1, #values)))
  end
end

local version = field()
local history_field = field()
local seen_prefix = field()
local history_prefix = field()
local maxlen = field()
local history_ttl = number()
local seen_ttl = number()
local fleet_ttl = number()
local fleet_max = number()
local per_message = number()
local orgs = number()

local time = redis.call('TIME')
local now_ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local published, duplicates = 0, 0

local function age_snapshot(positions, statuses, last_seen)
  local stale = redis.call('ZRANGEBYSCORE', last_seen, '-inf', now_ms - fleet_ttl * 1000,
    'LIMIT', 0, 1000)
  local excess = redis.call('ZCARD', last_seen) - #stale - fleet_max
  if excess > 0 then
    local oldest = redis.call('ZRANGE', last_seen, #stale, #stale + math.min(excess, 1000) - 1)
    for _, asset in ipairs(oldest) do stale[#stale + 1] = asset end
  end
  if #stale > 0 then
    call_chunked('HDEL', positions, stale, 1)
    call_chunked('HDEL', statuses, stale, 1)
    call_chunked('ZREM', last_seen, stale, 1)
  end
  for _, key in ipairs({positions, statuses, last_seen}) do
    redis.call('EXPIRE', key, fleet_ttl)
  end
end

for _ = 1, orgs do
  local org, channel = field(), field()
  local positions, statuses, last_seen = field(), field(), field()
  local count = number()
  local items, streams = {}, {}
  local latest = {p = {}, s = {}}
  local touched = {}
  for _ = 1, count do
    local event_id, snapshot, envelope, rooms = field(), field(), field(), field()
    local history = {}
    for r = 1, number() do history[r] = field() end
    if redis.call('SET', seen_prefix .. event_id, '1', 'NX', 'EX', seen_ttl) then
      local offsets = {}
      for r, room in ipairs(history) do
        local stream = history_prefix .. room
        local id = redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', history_field, envelope)
        offsets[r] = '"' .. room .. '":"' .. id .. '"'
        streams[stream] = true
      end
      items[#items + 1] = '{"rooms":' .. rooms .. ',"offsets":{' .. table.concat(offsets, ',')
        .. '},"event":' .. envelope .. '}'
      if snapshot ~= '' then
        local asset = string.sub(snapshot, 2)
        latest[string.sub(snapshot, 1, 1)][asset] = envelope
        touched[asset] = true
      end
      published = published + 1
    else
      duplicates = duplicates + 1
    end
  end
  for stream in pairs(streams) do redis.call('EXPIRE', stream, history_ttl) end
  for first = 1, #items, per_message do
    local last = math.min(first + per_message - 1, #items)
    redis.call('PUBLISH', channel, '{"v":' .. version .. ',"org":"' .. org .. '","events":['
      .. table.concat(items, ',', first, last) .. ']}')
  end
  if next(touched) then
    for kind, key in pairs({p = positions, s = statuses}) do
      local pairs_list = {}
      for asset, envelope in pairs(latest[kind]) do
        pairs_list[#pairs_list + 1] = asset
        pairs_list[#pairs_list + 1] = envelope
      end
      if #pairs_list > 0 then call_chunked('HSET', key, pairs_list, 2) end
    end
    local scores = {}
    for asset in pairs(touched) do
      scores[#scores + 1] = now_ms
      scores[#scores + 1] = asset
    end
    call_chunked('ZADD', last_seen, scores, 2)
    age_snapshot(positions, statuses, last_seen)
  end
end

return {published, duplicates}
