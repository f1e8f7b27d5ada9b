-- fleetcast consumer: publish one org's part of a batch of routed events, atomically, in
-- one round trip.
--
-- One call per org and batch: every key it touches is the org's (hash tag {org}), so on a
-- Redis Cluster the call runs on the org's shard, and every key it touches is in KEYS
-- (Redis routes a call, and decides ASK or TRYAGAIN during a migration, by its KEYS
-- only; a key touched undeclared is one it never checked): KEYS[1] the org's publish
-- fence, KEYS[2] its channel, KEYS[3] its sequence, KEYS[4..6] its fleet snapshot
-- (positions, statuses, last seen), KEYS[7..] every history stream of the call, then
-- every state key its changes may touch (the org's incidents or alerts table, its task
-- owners, the task table of each user a task event names). ARGV names them again where
-- they are used (an event's streams are packed once per route).
-- ARGV is laid out by fleetcast.consumer.publishing.Encoder (its docstring gives the
-- layout); the bounds, the publish command (PUBLISH on one Redis, SPUBLISH on a cluster)
-- and every byte of the wire message but the stream ids come from Python through it
-- (fleetcast.protocol.wire is the format's one author): nothing of the format is spelled
-- here. Steps, writing nothing before step 3:
--   1. Fence: read the org's last offset published of each Kafka partition in the call. If
--      an event is at or below it (a redelivery after a crash, a rebalance, or a retry of
--      a batch whose call on this shard had succeeded), return the fences: the consumer
--      drops those events and calls again.
--   2. Undeclared keys: a task's change touches its owner's table, and its owner on record
--      (the owners hash) may be one the event does not name (a reassignment). If such a
--      table is not in KEYS, return its name: the consumer calls again declaring it.
--   3. XADD each event to each of its history streams (MAXLEN ~), make its wire item by
--      putting the new stream ids into the item's template, and publish the items (a
--      bounded number per message, each numbered by INCR of the org's sequence); EXPIRE
--      the streams the consumer asks to refresh (user rooms' streams, their inboxes, for
--      longer); store the latest position/status per asset of the fleet snapshot, and age
--      the snapshot (assets not seen for the TTL and the oldest beyond the cap leave);
--      apply the org's state changes (open incidents, active alerts, users' tasks: what
--      changes is decided in Python, consumer/state.py; a record merges the event's data).
--   4. Last, move the fences to the call's last offsets: if anything above fails, no
--      event counts as published, and the consumer's retry loses nothing.
-- Returns {published, 0}, {-1, fence, fence, ...} from step 1 (false: no fence), or
-- {-2, table, ...} from step 2.

-- Redis' Lua unpack() is limited to a few thousand values: variadic calls go in chunks.
local CHUNK = 500

local function call_chunked(command, key, values, first, last)
  for from = first, last, CHUNK do
    redis.call(command, key, unpack(values, from, math.min(from + CHUNK - 1, last)))
  end
end

local fence_key, channel, seq_key = KEYS[1], KEYS[2], KEYS[3]
local positions, statuses, last_seen = KEYS[4], KEYS[5], KEYS[6]
local history_field, maxlen, history_expire = ARGV[1], ARGV[2], ARGV[3]
local fleet_ttl, fleet_max = tonumber(ARGV[4]), tonumber(ARGV[5])
local per_message, fence_ttl = tonumber(ARGV[6]), ARGV[7]
local item_separator, message_tail = ARGV[8], ARGV[9]
local message_time, message_events = ARGV[10], ARGV[11]
local publish_command, inbox_expire, head = ARGV[12], ARGV[13], ARGV[14]
local a = 15

-- 1. fences
local partitions = tonumber(ARGV[a])
local fence_fields, firsts, lasts = {}, {}, {}
for i = 1, partitions do
  fence_fields[i], firsts[i], lasts[i] = ARGV[a + 1], tonumber(ARGV[a + 2]), ARGV[a + 3]
  a = a + 3
end
a = a + 1
if partitions > 0 then
  local fences = redis.call('HMGET', fence_key, unpack(fence_fields))
  for i = 1, partitions do
    if fences[i] and tonumber(fences[i]) >= firsts[i] then
      return {-1, unpack(fences)}
    end
  end
end

-- 2. undeclared keys: the script touches only keys in KEYS (what Redis checks a call by,
-- on a cluster). A task's change touches the table of its owner on record, which the
-- consumer may not know (a reassignment): if that table is not among KEYS, write nothing
-- and name it; the consumer calls again declaring it. The state section: count, owners,
-- tasks prefix, TTL, then 5 arguments per change.
local state_at = a
local changes = tonumber(ARGV[a])
if changes > 0 then
  local owners, tasks_prefix = ARGV[a + 1], ARGV[a + 2]
  local declared, missing = {}, {}
  for _, key in ipairs(KEYS) do declared[key] = true end
  for i = a + 4, a + 4 + 5 * (changes - 1), 5 do
    if ARGV[i + 1] == '' then
      local owner = redis.call('HGET', owners, ARGV[i + 2])
      if owner and not declared[tasks_prefix .. owner] then
        declared[tasks_prefix .. owner] = true
        missing[#missing + 1] = tasks_prefix .. owner
      end
    end
  end
  if #missing > 0 then return {-2, unpack(missing)} end
  a = a + 4 + 5 * changes
else
  a = a + 1
end

local time = redis.call('TIME')
local now_ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
-- Every message of this call: head, its number (INCR of the org's sequence), then this.
local message_now = message_time .. string.format('%d', now_ms) .. message_events

local function xadd(stream, envelope)
  return redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', history_field, envelope)
end

-- Redis' Lua hashes every byte of every string it makes (Redis patched Lua 5.1 against
-- hash flooding), so the items are not made as strings of their own: the pieces of a
-- message go into one table, and the message is the one string made of them.

-- One event at ARGV[at]: its history stream count k, the k streams, the k + 1 pieces of
-- its wire item (the stream ids go between them), then the envelope. Appends the item's
-- parts to `parts`; returns the envelope and where the next event starts.
local function add_event(at, parts)
  local k = tonumber(ARGV[at])
  local envelope = ARGV[at + 2 * k + 2]
  local n = #parts
  parts[n + 1] = ARGV[at + k + 1]
  for r = 1, k do
    parts[n + 2 * r] = xadd(ARGV[at + r], envelope)
    parts[n + 2 * r + 1] = ARGV[at + k + 1 + r]
  end
  parts[n + 2 * k + 2] = envelope
  return envelope, at + 2 * k + 3
end

-- The org's events, published as they are added: at most per_message events a message,
-- each numbered by the org's sequence (gateways see a missing number as a gap).
-- Returns their envelopes (the snapshot refers to them by number) and where they end.
local function add_events(at, count)
  local envelopes, parts = {}, {head, 0, message_now}
  for i = 1, count do
    envelopes[i], at = add_event(at, parts)
    if i % per_message == 0 or i == count then
      parts[#parts + 1] = message_tail
      parts[2] = redis.call('INCR', seq_key)
      redis.call(publish_command, channel, table.concat(parts))
      parts = {head, 0, message_now}
    else
      parts[#parts + 1] = item_separator
    end
  end
  return envelopes, at
end

-- The snapshot section at ARGV[at]: positions (count, then asset and event number
-- pairs), statuses (likewise). Returns the assets touched and where the section ends.
local function store_snapshot(at, envelopes, positions, statuses)
  local touched = {}
  for _, key in ipairs({positions, statuses}) do
    local n = tonumber(ARGV[at])
    if n > 0 then
      local flat = {}
      for j = 1, n do
        local asset = ARGV[at + 2 * j - 1]
        flat[2 * j - 1] = asset
        flat[2 * j] = envelopes[tonumber(ARGV[at + 2 * j])]
        touched[asset] = true
      end
      call_chunked('HSET', key, flat, 1, 2 * n)
    end
    at = at + 2 * n + 1
  end
  return touched, at
end

local function age_snapshot(touched)
  local scores = {}
  for asset in pairs(touched) do
    scores[#scores + 1] = now_ms
    scores[#scores + 1] = asset
  end
  if #scores == 0 then return end
  call_chunked('ZADD', last_seen, scores, 1, #scores)
  local stale = redis.call('ZRANGEBYSCORE', last_seen, '-inf', now_ms - fleet_ttl * 1000,
    'LIMIT', 0, 1000)
  local excess = redis.call('ZCARD', last_seen) - #stale - fleet_max
  if excess > 0 then
    local oldest = redis.call('ZRANGE', last_seen, #stale, #stale + math.min(excess, 1000) - 1)
    for _, asset in ipairs(oldest) do stale[#stale + 1] = asset end
  end
  if #stale > 0 then
    call_chunked('HDEL', positions, stale, 1, #stale)
    call_chunked('HDEL', statuses, stale, 1, #stale)
    call_chunked('ZREM', last_seen, stale, 1, #stale)
  end
  for _, key in ipairs({positions, statuses, last_seen}) do
    redis.call('EXPIRE', key, fleet_ttl)
  end
end

-- A record (JSON or false) with the data fields of an envelope merged over its own.
local function merged(record, envelope)
  local fields = record and cjson.decode(record) or {}
  local data = cjson.decode(envelope).data
  if type(data) == 'table' then
    for name, value in pairs(data) do fields[name] = value end
  end
  return cjson.encode(fields)
end

local function merge(key, item, envelope, touched)
  redis.call('HSET', key, item, merged(redis.call('HGET', key, item), envelope))
  touched[key] = true
end

-- A task's change: its table is its owner's (tasks_prefix .. user), on record in `owners`.
local function change_task(kind, item, owner, envelope, owners, tasks_prefix, touched)
  local previous = redis.call('HGET', owners, item)
  if kind == 'drop' then
    if previous then redis.call('HDEL', tasks_prefix .. previous, item) end
    redis.call('HDEL', owners, item)
  elseif kind == 'own' then
    if previous and previous ~= owner then  -- reassigned: the record moves with it
      local record = redis.call('HGET', tasks_prefix .. previous, item)
      redis.call('HDEL', tasks_prefix .. previous, item)
      if record then redis.call('HSET', tasks_prefix .. owner, item, record) end
    end
    redis.call('HSET', owners, item, owner)
    touched[owners] = true
  else
    if owner == '' then owner = previous end  -- an update that does not say whose
    if owner then
      if not previous then redis.call('HSET', owners, item, owner) touched[owners] = true end
      merge(tasks_prefix .. owner, item, envelope, touched)
    end
  end
end

-- The state section at ARGV[at]: count, then (if any) owners key, tasks prefix, TTL and
-- the changes (kind, table key or '' for a task, item, event number, owner).
local function apply_state(at, envelopes)
  local n = tonumber(ARGV[at])
  if n == 0 then return end
  local owners, tasks_prefix, ttl = ARGV[at + 1], ARGV[at + 2], ARGV[at + 3]
  local touched = {}
  at = at + 4
  for _ = 1, n do
    local kind, key, item = ARGV[at], ARGV[at + 1], ARGV[at + 2]
    local envelope, owner = envelopes[tonumber(ARGV[at + 3])], ARGV[at + 4]
    at = at + 5
    if key == '' then
      change_task(kind, item, owner, envelope, owners, tasks_prefix, touched)
    elseif kind == 'drop' then
      redis.call('HDEL', key, item)
    else
      merge(key, item, envelope, touched)
    end
  end
  for key in pairs(touched) do redis.call('EXPIRE', key, ttl) end
end

-- 3. the org's events and state
local count = tonumber(ARGV[a])
local envelopes
envelopes, a = add_events(a + 1, count)
for _, expire in ipairs({history_expire, inbox_expire}) do
  local refresh = tonumber(ARGV[a])
  for i = a + 1, a + refresh do redis.call('EXPIRE', ARGV[i], expire) end
  a = a + refresh + 1
end
local touched
touched, a = store_snapshot(a, envelopes, positions, statuses)
age_snapshot(touched)
apply_state(state_at, envelopes)

-- 4. fences, last
if partitions > 0 then
  local moved = {}
  for i = 1, partitions do
    moved[2 * i - 1] = fence_fields[i]
    moved[2 * i] = lasts[i]
  end
  redis.call('HSET', fence_key, unpack(moved))
  redis.call('EXPIRE', fence_key, fence_ttl)
end

return {count, 0}
