"""History and sequence reads from Redis: what recovery asks (rooms/history.py, recovery.py).

The room streams the consumer XADDs to are read with XINFO STREAM (first
entry, greatest id ever deleted) and XRANGE after an offset, every room of
one recovery in one script call (atomic, as a MULTI was; one org: one slot,
so this holds on a cluster too); the orgs' message counters with one MGET
(per slot on a cluster).

Why a script rather than a MULTI of XINFO + XRANGE per room: a resume storm
does one such read per client, and redis-py's transaction pipeline (six
commands packed, queued replies, XINFO's whole reply parsed into dicts with
the first and last entries' fields) was a tenth of a resuming gateway's CPU.
The script answers only what recovery looks at: each stream's first id and
greatest deleted id, and each entry's id and envelope.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from fleetcast.protocol import keys

#: KEYS: the streams; ARGV: the entry count, the history field, then one offset per key.
#: Per stream: {state, entries}: state is {first id or nil, greatest deleted id}, nil when
#: there is no such stream; entries are {id, envelope or nil}.
RANGES_SCRIPT: Final = """
local out = {}
for i, key in ipairs(KEYS) do
  local info = redis.pcall('XINFO', 'STREAM', key)
  local state = false
  if info.err then
    if not string.find(info.err, 'no such key', 1, true) then
      return redis.error_reply(info.err)
    end
  else
    local first, deleted = false, '0-0'
    for j = 1, #info, 2 do
      if info[j] == 'first-entry' and info[j + 1] then first = info[j + 1][1] end
      if info[j] == 'max-deleted-entry-id' then deleted = info[j + 1] end
    end
    state = {first, deleted}
  end
  local entries = {}
  for n, entry in ipairs(redis.call('XRANGE', key, '(' .. ARGV[i + 2], '+', 'COUNT', ARGV[1])) do
    local fields, envelope = entry[2], false
    for j = 1, #fields, 2 do
      if fields[j] == ARGV[2] then envelope = fields[j + 1] end
    end
    entries[n] = {entry[1], envelope}
  end
  out[i] = {state, entries}
end
return out
"""


class RedisStreamReader:
    """StreamReader and SequenceReader over redis-py's asyncio client."""

    def __init__(self, redis: Any) -> None:
        self._redis = redis
        # redis-py's Script: EVALSHA, loading the script once where Redis lacks it.
        self._ranges = redis.register_script(RANGES_SCRIPT)

    async def ranges(
        self, requests: Sequence[tuple[str, str]], count: int
    ) -> list[tuple[Mapping[Any, Any] | None, list[Any]]]:
        if not requests:
            return []
        names = [stream for stream, _ in requests]
        argv = [count, keys.HISTORY_FIELD, *(since for _, since in requests)]
        replies = await self._ranges(keys=names, args=argv)
        return [(_info(state), _entries(entries)) for state, entries in replies]

    async def sequences(self, orgs: Sequence[str]) -> dict[str, int | None]:
        """Each org's message counter (None where it does not exist)."""
        if not orgs:
            return {}
        names = [keys.org_sequence(org) for org in orgs]
        if hasattr(self._redis, "mget_nonatomic"):  # a cluster: one MGET per slot
            values = await self._redis.mget_nonatomic(names)
        else:
            values = await self._redis.mget(names)
        return {org: int(v) if v is not None else None for org, v in zip(orgs, values, strict=True)}


def _info(state: Sequence[Any] | None) -> Mapping[str, Any] | None:
    """The script's stream state in XINFO STREAM's shape (what history.stream_state reads)."""
    if state is None:
        return None
    first, deleted = state
    return {"first-entry": None if first is None else [first], "max-deleted-entry-id": deleted}


def _entries(entries: Sequence[Sequence[Any]]) -> list[tuple[Any, Mapping[str, Any]]]:
    """(id, fields) as XRANGE gives them, with the one field recovery reads (if it is there)."""
    field = keys.HISTORY_FIELD
    return [(eid, {field: env} if env is not None else {}) for eid, env in entries]
