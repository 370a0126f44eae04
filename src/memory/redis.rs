//! The shared backend (`[memory] url`, SPEC §10): every memory in Redis (or Valkey)
//! under `teamrelay:`, each with Redis's own expiry. Recall is one Lua script and
//! remember is another, so each is one round trip and atomic: "does this member already
//! have this Message-ID?" and its record are one `SADD` inside the script, and two
//! instances accepting the two halves of a split message at the same instant give each
//! member one copy.
//!
//! Keys: `p:ID` (private, `SET EX`), `d:ID` (set of team addresses that have it,
//! `EXPIRE` 7 days), `t:ID` (its thread), `o:THREAD` (owner, `SET NX EX`), `r:THREAD`
//! (list of recent replies as JSON, trimmed to 20, `EXPIRE` the collision window),
//! `away` (hash address → absence JSON).
//!
//! Every call is bounded by [`TIMEOUT`]; the connection manager reconnects by itself, so
//! acceptance resumes as soon as Redis answers again.

use std::collections::HashSet;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{IntoConnectionInfo, Script};
use serde::Serialize;

use super::{failed, succeeded, Backend, BoxFuture, MemoryError, Remembered};
use crate::address::Address;
use crate::config::MemoryConfig;
use crate::route::{Absence, Memory, Query, Remember};

/// The longest a memory call may take before the message gets `451`.
pub const TIMEOUT: Duration = Duration::from_secs(2);

const PREFIX: &str = "teamrelay:";

const RECALL: &str = r#"
local q = cjson.decode(ARGV[1])
local p = 'teamrelay:'
local priv = 0
for _, id in ipairs(q.private_ids) do
  if redis.call('EXISTS', p .. 'p:' .. id) == 1 then priv = 1 end
end
local has = {}
if q.id ~= '' then has = redis.call('SMEMBERS', p .. 'd:' .. q.id) end
local thread = q.fallback
for _, c in ipairs(q.candidates) do
  local t = redis.call('GET', p .. 't:' .. c)
  if t then thread = t break end
end
local owner = ''
local recent = {}
if thread ~= '' then
  owner = redis.call('GET', p .. 'o:' .. thread) or ''
  recent = redis.call('LRANGE', p .. 'r:' .. thread, 0, -1)
end
local away = redis.call('HGETALL', p .. 'away')
return {priv, has, thread, owner, recent, away}
"#;

const REMEMBER: &str = r#"
local w = cjson.decode(ARGV[1])
local p = 'teamrelay:'
local lost = {}
if w.id ~= '' then
  local d = p .. 'd:' .. w.id
  for _, a in ipairs(w.delivered) do redis.call('SADD', d, a) end
  for _, a in ipairs(w.claims) do
    if redis.call('SADD', d, a) == 0 then lost[#lost + 1] = a end
  end
  if #w.delivered + #w.claims > 0 then redis.call('EXPIRE', d, w.delivered_ttl) end
  if w.private then redis.call('SET', p .. 'p:' .. w.id, '1', 'EX', w.private_ttl) end
  if w.thread ~= '' then redis.call('SET', p .. 't:' .. w.id, w.thread, 'EX', w.owner_ttl) end
end
if w.thread ~= '' and w.owner ~= '' then
  redis.call('SET', p .. 'o:' .. w.thread, w.owner, 'NX', 'EX', w.owner_ttl)
end
if w.thread ~= '' and ARGV[2] ~= '' then
  local k = p .. 'r:' .. w.thread
  redis.call('RPUSH', k, ARGV[2])
  redis.call('LTRIM', k, -20, -1)
  redis.call('EXPIRE', k, w.reply_ttl)
end
if ARGV[3] ~= '' then redis.call('HSET', p .. 'away', w.away_addr, ARGV[3]) end
return lost
"#;

/// The recall question as the script reads it.
#[derive(Serialize)]
struct RecallArg<'a> {
    id: &'a str,
    private_ids: &'a [String],
    candidates: &'a [String],
    fallback: &'a str,
}

/// The writes as the script reads them (no nulls: Lua's cjson turns them into a truthy
/// value).
#[derive(Serialize)]
struct RememberArg<'a> {
    id: &'a str,
    private: bool,
    delivered: &'a [String],
    claims: &'a [String],
    thread: &'a str,
    owner: &'a str,
    away_addr: &'a str,
    private_ttl: u64,
    delivered_ttl: u64,
    owner_ttl: u64,
    reply_ttl: u64,
}

/// Memories in Redis.
pub struct RedisMemory {
    manager: Result<ConnectionManager, MemoryError>,
    recall: Script,
    remember: Script,
}

/// A client for the URL, with the password from `password_file` and the CA of `ca_file`
/// when there are.
fn client(m: &MemoryConfig) -> Result<redis::Client, String> {
    let mut info = m
        .url
        .as_str()
        .into_connection_info()
        .map_err(|e| format!("bad memory.url: {e}"))?;
    if let Some(file) = &m.password_file {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let password = text.trim_end_matches(['\r', '\n']);
        let settings = info.redis_settings().clone().set_password(password);
        info = info.set_redis_settings(settings);
    }
    match &m.ca_file {
        None => redis::Client::open(info).map_err(|e| format!("bad memory.url: {e}")),
        Some(ca) => {
            let pem =
                std::fs::read(ca).map_err(|e| format!("cannot read {}: {e}", ca.display()))?;
            let certs = redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem),
            };
            redis::Client::build_with_tls(info, certs).map_err(|e| format!("bad memory.url: {e}"))
        }
    }
}

impl RedisMemory {
    /// A backend for `[memory]`. It connects lazily and reconnects by itself; a URL it
    /// cannot use makes every call fail, so the relay answers `451` rather than accept
    /// mail without its memories.
    pub fn open(m: &MemoryConfig) -> RedisMemory {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let manager = client(m)
            .and_then(|c| {
                ConnectionManager::new_lazy_with_config(c, config).map_err(|e| e.to_string())
            })
            .map_err(MemoryError);
        RedisMemory {
            manager,
            recall: Script::new(RECALL),
            remember: Script::new(REMEMBER),
        }
    }

    /// A task that pings Redis every few seconds, so `teamrelay_memory_up` is current
    /// between messages too. It ends with the runtime.
    pub fn watch(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let manager = self.manager.clone();
        async move {
            let Ok(manager) = manager else {
                failed("redis", &MemoryError("unusable memory.url".into()));
                return;
            };
            let mut was_up = None;
            loop {
                let mut con = manager.clone();
                let cmd = redis::cmd("PING");
                let ping = cmd.query_async::<String>(&mut con);
                let up = matches!(tokio::time::timeout(TIMEOUT, ping).await, Ok(Ok(_)));
                if up {
                    succeeded("redis");
                } else {
                    metrics::gauge!("teamrelay_memory_up", "backend" => "redis").set(0.0);
                }
                if was_up != Some(up) {
                    tracing::info!(backend = "redis", up, "routing memory state");
                    was_up = Some(up);
                }
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    }

    /// Runs one call with the bounded wait, and keeps `/metrics` told.
    async fn call<T, F>(&self, f: impl FnOnce(ConnectionManager) -> F) -> Result<T, MemoryError>
    where
        F: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let manager = self.manager.clone()?;
        let result = match tokio::time::timeout(TIMEOUT, f(manager)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(MemoryError(format!("redis: {e}"))),
            Err(_) => Err(MemoryError(format!(
                "redis: no answer within {}s",
                TIMEOUT.as_secs()
            ))),
        };
        match &result {
            Ok(_) => succeeded("redis"),
            Err(e) => failed("redis", e),
        }
        result
    }
}

/// Absences from `HGETALL`'s flat field/value list, ended ones left out.
fn absences_of(flat: &[String], now: u64) -> Vec<Absence> {
    flat.chunks(2)
        .filter_map(|kv| serde_json::from_str::<Absence>(kv.get(1)?).ok())
        .filter(|a| a.until > now)
        .collect()
}

type RecallReply = (i64, Vec<String>, String, String, Vec<String>, Vec<String>);

impl Backend for RedisMemory {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn recall<'a>(&'a self, q: &'a Query) -> BoxFuture<'a, Result<Memory, MemoryError>> {
        Box::pin(async move {
            let arg = serde_json::to_string(&RecallArg {
                id: q.message_id.as_deref().unwrap_or(""),
                private_ids: &q.private_ids,
                candidates: &q.candidates,
                fallback: &q.fallback,
            })
            .map_err(|e| MemoryError(e.to_string()))?;
            let (private, has, thread, owner, recent, away): RecallReply = self
                .call(|mut con| async move { self.recall.arg(arg).invoke_async(&mut con).await })
                .await?;
            let now = crate::spool::now();
            Ok(Memory {
                thread_private: private == 1,
                already_has: has.iter().filter_map(|a| Address::parse(a).ok()).collect(),
                thread,
                owner: Address::parse(&owner).ok(),
                recent: recent
                    .iter()
                    .filter_map(|r| serde_json::from_str(r).ok())
                    .collect(),
                absences: absences_of(&away, now),
                now,
            })
        })
    }

    fn remember<'a>(&'a self, r: &'a Remember) -> BoxFuture<'a, Result<Remembered, MemoryError>> {
        Box::pin(async move {
            if r.is_empty() {
                return Ok(Remembered::default());
            }
            let arg = serde_json::to_string(&RememberArg {
                id: r.message_id.as_deref().unwrap_or(""),
                private: r.private,
                delivered: &r.delivered,
                claims: &r.claims,
                thread: r.thread.as_deref().unwrap_or(""),
                owner: r.owner.as_deref().unwrap_or(""),
                away_addr: r.away.as_ref().map_or("", |a| a.address.as_str()),
                private_ttl: r.private_ttl.max(1),
                delivered_ttl: r.delivered_ttl.max(1),
                owner_ttl: r.owner_ttl.max(1),
                reply_ttl: r.reply_ttl.max(1),
            })
            .map_err(|e| MemoryError(e.to_string()))?;
            let json = |v: Option<String>| v.unwrap_or_default();
            let reply = json(r.reply.as_ref().and_then(|x| serde_json::to_string(x).ok()));
            let away = json(r.away.as_ref().and_then(|x| serde_json::to_string(x).ok()));
            let lost: Vec<String> = self
                .call(|mut con| async move {
                    self.remember
                        .arg(arg)
                        .arg(reply)
                        .arg(away)
                        .invoke_async(&mut con)
                        .await
                })
                .await?;
            Ok(Remembered {
                lost: lost
                    .iter()
                    .filter_map(|a| Address::parse(a).ok())
                    .collect::<HashSet<_>>(),
                ops: Vec::new(),
            })
        })
    }

    fn release<'a>(&'a self, r: &'a Remember) -> BoxFuture<'a, Result<(), MemoryError>> {
        Box::pin(async move {
            let (Some(id), false) = (&r.message_id, r.claims.is_empty()) else {
                return Ok(());
            };
            // `Plan::drop_copies` took the claims lost to another instance out of
            // `r.claims`: what is left is ours to give back.
            let key = format!("{PREFIX}d:{id}");
            let _: i64 = self
                .call(|mut con| async move {
                    redis::cmd("SREM")
                        .arg(key)
                        .arg(&r.claims)
                        .query_async(&mut con)
                        .await
                })
                .await?;
            Ok(())
        })
    }

    fn absences(&self) -> BoxFuture<'_, Result<Vec<Absence>, MemoryError>> {
        Box::pin(async move {
            let key = format!("{PREFIX}away");
            let flat: Vec<String> = self
                .call(|mut con| async move {
                    redis::cmd("HGETALL").arg(key).query_async(&mut con).await
                })
                .await?;
            Ok(absences_of(&flat, crate::spool::now()))
        })
    }

    fn set_absence(&self, a: Absence) -> BoxFuture<'_, Result<(), MemoryError>> {
        Box::pin(async move {
            let key = format!("{PREFIX}away");
            let json = serde_json::to_string(&a).map_err(|e| MemoryError(e.to_string()))?;
            let _: i64 = self
                .call(|mut con| async move {
                    redis::cmd("HSET")
                        .arg(key)
                        .arg(&a.address)
                        .arg(json)
                        .query_async(&mut con)
                        .await
                })
                .await?;
            Ok(())
        })
    }

    fn end_absence<'a>(&'a self, address: &'a str) -> BoxFuture<'a, Result<bool, MemoryError>> {
        Box::pin(async move {
            let key = format!("{PREFIX}away");
            let n: i64 = self
                .call(|mut con| async move {
                    redis::cmd("HDEL")
                        .arg(key)
                        .arg(address)
                        .query_async(&mut con)
                        .await
                })
                .await?;
            Ok(n > 0)
        })
    }
}
