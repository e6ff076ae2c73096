"""The Lua scripts that change room records: each runs alone in Redis, so it is atomic.

Every change of a room's owner goes through these (store.py runs them), which is what makes
racing nodes agree: the first script to run decides, the others read its result. Replies
are a room hash as ``HGETALL`` gives it (a flat list of fields and values) or the integer 0.
docs/CLUSTER.md has the rules in a table.

The scripts read node keys whose names they build from the prefix (the owner is only known
inside the script): fine on one Redis primary, not on Redis Cluster.
"""

from __future__ import annotations

__all__ = ["CLAIM", "MOVE", "RELEASE", "SET_PASSWORD_KEY"]

# claim: KEYS room, candidate's rooms set; ARGV node key prefix, rooms key prefix, candidate
# ('' = only look), room id, now. Returns the record (HGETALL) if its owner is live or the
# candidate (live) took it; 0 if nobody live owns it and the candidate is '' or not live.
CLAIM = """
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner and redis.call('EXISTS', ARGV[1] .. owner) == 1 then
  return redis.call('HGETALL', KEYS[1])
end
if ARGV[3] == '' or redis.call('EXISTS', ARGV[1] .. ARGV[3]) == 0 then
  return 0
end
local epoch = tonumber(redis.call('HGET', KEYS[1], 'epoch')) or 0
if owner then
  redis.call('SREM', ARGV[2] .. owner, ARGV[4])
else
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'created', ARGV[5])
end
redis.call('HSET', KEYS[1], 'owner', ARGV[3], 'epoch', tostring(epoch + 1))
redis.call('SADD', KEYS[2], ARGV[4])
return redis.call('HGETALL', KEYS[1])
"""

# move: KEYS room, from's rooms set, to's rooms set; ARGV node key prefix, from, to, epoch,
# room id. Compare-and-set: only from the expected owner at the expected epoch, only to a
# live node. Returns the new record, or 0.
MOVE = """
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[2]
   or redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[4]
   or redis.call('EXISTS', ARGV[1] .. ARGV[3]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], 'owner', ARGV[3], 'epoch', tostring(tonumber(ARGV[4]) + 1))
redis.call('SREM', KEYS[2], ARGV[5])
redis.call('SADD', KEYS[3], ARGV[5])
return redis.call('HGETALL', KEYS[1])
"""

# release: KEYS room, node's rooms set; ARGV node, room id. 1 if the node owned it (gone now).
RELEASE = """
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[2])
return 1
"""

# set_password_key: KEYS room; ARGV node, key (hex). 1 if the node owns the room and the room
# had no key yet.
SET_PASSWORD_KEY = """
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1]
   or redis.call('HEXISTS', KEYS[1], 'password_key') == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'password_key', ARGV[2])
return 1
"""
