//! The shared limiter: GCRA in one Lua script, so every router replica
//! draws from the same budget.
//!
//! Each client has one Redis string, its theoretical arrival time (TAT) in
//! microseconds of the Redis server clock; the script reads it, decides,
//! writes the new TAT with an expiry equal to the time until the bucket is
//! full again (so idle clients cost nothing), and answers
//! `{allowed, remaining, retry_after_us, reset_after_us}`. A script runs
//! atomically, so two replicas can never both spend the last cell.

use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{RedisResult, Script};

use super::Decision;
use super::key::ClientKey;

/// GCRA as in `redis-cell` / `go-redis/redis_rate`, in integer microseconds
/// (a double holds them exactly until 2255), on the server's `TIME` so that
/// every replica shares one clock.
///
/// KEYS\[1\] = the client's key; ARGV\[1\] = emission interval (µs);
/// ARGV\[2\] = burst.
const GCRA: &str = r#"
-- Before Redis 5, a script must ask for effect replication to write after
-- calling the non-deterministic TIME; later versions always replicate
-- effects and keep the call only for compatibility.
if redis.replicate_commands then redis.replicate_commands() end

local key = KEYS[1]
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])

-- A missing (or foreign, unparseable) value is a fresh client.
local tat = tonumber(redis.call('GET', key)) or now
if tat < now then tat = now end

local new_tat = tat + interval
-- The earliest instant this request conforms: burst cells may be early.
local allow_at = new_tat - interval * burst
local diff = now - allow_at

if diff < 0 then
  return {0, 0, -diff, tat - now}
end

local reset_after = new_tat - now
redis.call('SET', key, string.format('%.0f', new_tat),
           'PX', math.max(1, math.ceil(reset_after / 1000)))
return {1, math.floor(diff / interval), 0, reset_after}
"#;

/// GCRA state in Redis, shared by every router process using the same
/// Redis and key prefix.
#[derive(Debug, Clone)]
pub struct RedisLimiter {
    connection: ConnectionManager,
    script: Script,
    prefix: String,
    interval_us: u64,
    burst: u32,
}

impl RedisLimiter {
    /// One cell per `interval` (rounded to whole microseconds, at least
    /// one), `burst` at once; keys are `<prefix>:<client key>`.
    pub fn new(
        connection: ConnectionManager,
        prefix: &str,
        interval: Duration,
        burst: u32,
    ) -> Self {
        Self {
            connection,
            script: Script::new(GCRA),
            prefix: prefix.to_owned(),
            interval_us: u64::try_from(interval.as_micros())
                .unwrap_or(u64::MAX)
                .max(1),
            burst: burst.max(1),
        }
    }

    /// The Redis key holding `key`'s state.
    pub fn storage_key(&self, key: &ClientKey) -> String {
        format!("{}:{key}", self.prefix)
    }

    /// Takes one cell from `key`'s shared bucket if it has one. Sends
    /// `EVALSHA`, loading the script first when the server does not know it
    /// (after a restart or `SCRIPT FLUSH`).
    pub async fn check(&self, key: &ClientKey) -> RedisResult<Decision> {
        let mut connection = self.connection.clone();
        let (allowed, remaining, retry_after_us, reset_after_us): (i64, i64, i64, i64) = self
            .script
            .key(self.storage_key(key))
            .arg(self.interval_us)
            .arg(self.burst)
            .invoke_async(&mut connection)
            .await?;
        Ok(Decision {
            allowed: allowed == 1,
            remaining: u32::try_from(remaining.max(0)).unwrap_or(u32::MAX),
            retry_after: micros(retry_after_us),
            reset_after: micros(reset_after_us),
        })
    }
}

fn micros(value: i64) -> Duration {
    Duration::from_micros(u64::try_from(value).unwrap_or(0))
}
