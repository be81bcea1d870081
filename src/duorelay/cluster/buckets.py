"""Token buckets shared by every process: one Redis hash per bucket, one Lua script.

A bucket (``{prefix}:{key}``) holds its tokens and the time they were counted
(Redis's clock, milliseconds: every process sees the same time). The script
refills, checks and takes a token in one step, so processes charging one
bucket at once never both take its last token. A bucket expires once it would
be full again (a full bucket is the same as none), so Redis keeps only the
buckets of recent charges.
"""

from __future__ import annotations

from duorelay.cluster.leases import Command

# KEYS[1]: the bucket. ARGV: rate (tokens per second), burst, cost (0 or 1).
# Returns 1 if the bucket holds a token (and takes cost tokens), else 0.
_CHARGE = """
local rate, burst, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = clock[1] * 1000 + math.floor(clock[2] / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate / 1000)
if tokens < 1 then return 0 end
if cost > 0 then
  tokens = tokens - cost
  redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
  redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) * 1000 / rate) + 1)
end
return 1
"""


async def charge(command: Command, name: bytes, rate: float, burst: int, cost: int) -> bool:
    """Whether bucket ``name`` (a Redis key) holds a token; if so, take ``cost``.

    ``rate`` is in tokens per second, ``burst`` the most it holds (it starts
    full). Raises what ``command`` raises.
    """
    result = await command(
        lambda client: client.eval(_CHARGE, keys=[name], args=[repr(rate), burst, cost])
    )
    return result == 1
