-- fleetcast consumer: publish one batch of routed events, atomically, in one round trip.
--
-- ARGV[1] is the whole batch as length-prefixed fields ("<len>:<bytes>"), written by
-- fleetcast.consumer.publishing.Encoder (its docstring gives the layout); key names
-- and prefixes come from fleetcast.protocol.keys through it, none is spelled here.
-- Per org:
--   1. MGET the events' seen-keys: an id already published (a Kafka redelivery), or met
--      earlier in this batch, is skipped;
--   2. XADD each new event to each target room's history stream (MAXLEN ~), EXPIRE each
--      stream once, keep the latest position/status of its asset in the fleet snapshot;
--   3. PUBLISH the wire message(s) (fleetcast.protocol.wire) whose offsets are the stream
--      ids just created, and age the snapshot: assets not seen for the TTL and the oldest
--      beyond the cap leave both hashes;
--   4. only then SET the seen-keys (EX seen TTL): if anything above fails, no event is
--      marked as published, so the consumer's retry loses nothing.
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
local CHUNK = 500

local function call_chunked(command, key, values, width)
  for first = 1, #values, CHUNK * width do
    redis.call(command, key, unpack(values, first, math.min(first + CHUNK * width - 1, #values)))
  end
end

local function mget(keys)
  local values = {}
  for first = 1, #keys, CHUNK do
    local got = redis.call('MGET', unpack(keys, first, math.min(first + CHUNK - 1, #keys)))
    for i, value in ipairs(got) do values[first + i - 1] = value end
  end
  return values
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
local fresh = {} -- seen-key -> true for every event published by this call

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

local function update_snapshot(keys, latest, touched)
  for kind, key in pairs({p = keys.positions, s = keys.statuses}) do
    local flat = {}
    for asset, envelope in pairs(latest[kind]) do
      flat[#flat + 1] = asset
      flat[#flat + 1] = envelope
    end
    if #flat > 0 then call_chunked('HSET', key, flat, 2) end
  end
  local scores = {}
  for asset in pairs(touched) do
    scores[#scores + 1] = now_ms
    scores[#scores + 1] = asset
  end
  call_chunked('ZADD', keys.last_seen, scores, 2)
  age_snapshot(keys.positions, keys.statuses, keys.last_seen)
end

for _ = 1, orgs do
  local org, channel = field(), field()
  local keys = {positions = field(), statuses = field(), last_seen = field()}
  local count = number()
  -- 1. read the org's events, then which of them were published before
  local seen_keys, snapshots, envelopes, rooms, histories = {}, {}, {}, {}, {}
  for i = 1, count do
    seen_keys[i] = seen_prefix .. field()
    snapshots[i], envelopes[i], rooms[i] = field(), field(), field()
    local history = {}
    for r = 1, number() do history[r] = field() end
    histories[i] = history
  end
  local seen = mget(seen_keys)
  -- 2. history, snapshot
  local items, streams = {}, {}
  local latest, touched = {p = {}, s = {}}, {}
  for i = 1, count do
    if seen[i] or fresh[seen_keys[i]] then
      duplicates = duplicates + 1
    else
      fresh[seen_keys[i]] = true
      local envelope, offsets = envelopes[i], {}
      for r, room in ipairs(histories[i]) do
        local stream = history_prefix .. room
        local id = redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', history_field, envelope)
        offsets[r] = '"' .. room .. '":"' .. id .. '"'
        streams[stream] = true
      end
      items[#items + 1] = '{"rooms":' .. rooms[i] .. ',"offsets":{' .. table.concat(offsets, ',')
        .. '},"event":' .. envelope .. '}'
      local snapshot = snapshots[i]
      if snapshot ~= '' then
        local asset = string.sub(snapshot, 2)
        latest[string.sub(snapshot, 1, 1)][asset] = envelope
        touched[asset] = true
      end
      published = published + 1
    end
  end
  for stream in pairs(streams) do redis.call('EXPIRE', stream, history_ttl) end
  -- 3. publish, age the snapshot
  for first = 1, #items, per_message do
    local last = math.min(first + per_message - 1, #items)
    redis.call('PUBLISH', channel, '{"v":' .. version .. ',"org":"' .. org .. '","events":['
      .. table.concat(items, ',', first, last) .. ']}')
  end
  if next(touched) then update_snapshot(keys, latest, touched) end
end

-- 4. mark as published, last
for key in pairs(fresh) do redis.call('SET', key, '1', 'EX', seen_ttl) end

return {published, duplicates}
