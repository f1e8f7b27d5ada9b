-- fleetcast consumer: record control messages (revocations, withdrawals) and fan them out.
--
-- KEYS[1] the control log (stream), KEYS[2] the revocation list (sorted set), KEYS[3] the
-- gateways' control channel; one slot (the {control} tag).
-- ARGV[1] the publish command (PUBLISH on one Redis, SPUBLISH on a cluster), ARGV[2] the
-- log's MAXLEN, ARGV[3] now (epoch s),
-- then per message: its JSON, its until (epoch s), its revocation entry count n, n entries.
-- Each message is logged (a gateway that was away catches up from the log), its entries
-- join the list (scored by until), and it is published as "<log id> <json>". Entries
-- whose until has passed leave the list.
local log, revoked, channel = KEYS[1], KEYS[2], KEYS[3]
local publish, maxlen, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
local a = 4
while a <= #ARGV do
  local message, hold, n = ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2])
  local id = redis.call('XADD', log, 'MAXLEN', '~', maxlen, '*', 'm', message)
  for i = 1, n do
    redis.call('ZADD', revoked, hold, ARGV[a + 2 + i])
  end
  redis.call(publish, channel, id .. ' ' .. message)
  a = a + 3 + n
end
redis.call('ZREMRANGEBYSCORE', revoked, '-inf', now)
return 0
