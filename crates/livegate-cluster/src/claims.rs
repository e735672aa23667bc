//! Origin claims: which node publishes a stream, decided by Redis alone.
//!
//! A claim is the hash `livegate:origin:{stream}` (see the crate docs). Each held claim has a
//! random `token`; every change to the key is one Lua script, so checking who holds it and
//! changing it cannot interleave with another node's scripts:
//!
//! - [`CLAIM`]: take the key unless another node holds it with a live publisher (`idle` is
//!   not `1`), or always with `replace`; a node re-claiming its own key succeeds.
//! - [`RENEW`]: extend the key if it still carries our token; re-create it if it expired
//!   (Redis restarted or was away longer than the TTL); report it lost if another token
//!   holds it.
//! - [`RELEASE`]: delete the key only if it still carries our token.
//!
//! On this node one [`ClaimSlot`] per key is shared by everyone holding it (the WHIP stream
//! slot; a republish on this node claims again and gets the same token), and the last
//! [`ClaimHandle`] dropped releases it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use livegate_media::StreamKey;
use livegate_whip::{ClaimError, ClaimFuture, ClaimGuard, OriginClaim, OriginClaims};
use redis::Script;
use tokio_util::sync::CancellationToken;

use crate::{bounded, keys, ClusterError, Shared};

/// KEYS[1] the claim; ARGV: node id, node URL, token, TTL in ms, replace (`1`/`0`).
/// Returns `{1, ""}` when taken, `{0, url of the holder}` when another node holds it.
const CLAIM: &str = r#"
local node = redis.call('HGET', KEYS[1], 'node')
if node and node ~= ARGV[1] and ARGV[5] ~= '1' and redis.call('HGET', KEYS[1], 'idle') ~= '1' then
  return {0, redis.call('HGET', KEYS[1], 'url') or node}
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'node', ARGV[1], 'url', ARGV[2], 'token', ARGV[3], 'idle', '0')
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {1, ''}
"#;

/// KEYS[1] the claim; ARGV: token, TTL in ms, idle (`1`/`0`), node id, node URL.
/// Returns 1 while ours (extended, or re-created after it expired), 0 when lost.
const RENEW: &str = r#"
local token = redis.call('HGET', KEYS[1], 'token')
if not token then
  redis.call('HSET', KEYS[1], 'node', ARGV[4], 'url', ARGV[5], 'token', ARGV[1], 'idle', ARGV[3])
elseif token ~= ARGV[1] then
  return 0
else
  redis.call('HSET', KEYS[1], 'idle', ARGV[3])
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"#;

/// KEYS[1] the claim; ARGV[1] the token. Compare-and-delete: 1 when deleted.
const RELEASE: &str = r#"
if redis.call('HGET', KEYS[1], 'token') == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#;

/// The Lua scripts, hashed once (EVALSHA; reloaded by redis-rs after a Redis restart).
pub(crate) struct Scripts {
    claim: Script,
    renew: Script,
    release: Script,
}

impl Scripts {
    pub(crate) fn new() -> Scripts {
        Scripts {
            claim: Script::new(CLAIM),
            renew: Script::new(RENEW),
            release: Script::new(RELEASE),
        }
    }
}

/// One claim this node holds.
pub(crate) struct HeldClaim {
    key: StreamKey,
    token: String,
    /// The publisher is away (republish grace): another node may take the stream.
    idle: AtomicBool,
    /// Set before the release is sent, so a renewal racing it does not re-create the key.
    released: AtomicBool,
    lost: CancellationToken,
}

/// A held claim and how many [`ClaimHandle`]s share it.
pub(crate) struct ClaimSlot {
    claim: Arc<HeldClaim>,
    holders: usize,
}

/// [`OriginClaims`] over Redis.
pub(crate) struct Origins(pub(crate) Arc<Shared>);

impl std::fmt::Debug for Origins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Origins")
            .field("node", &self.0.node_id)
            .finish()
    }
}

impl OriginClaims for Origins {
    fn claim<'a>(&'a self, stream: &'a StreamKey, replace: bool) -> ClaimFuture<'a> {
        Box::pin(claim(&self.0, stream, replace))
    }
}

async fn claim(
    shared: &Arc<Shared>,
    stream: &StreamKey,
    replace: bool,
) -> Result<OriginClaim, ClaimError> {
    let handle = ClaimHandle::take(shared, stream);
    let claim = handle.claim.clone();
    let ttl_ms = shared.config.ttl.as_millis() as u64;
    let mut redis = shared.redis.clone();
    let result: Result<(i64, String), _> = bounded(
        shared
            .scripts
            .claim
            .key(keys::origin(stream))
            .arg(&shared.node_id)
            .arg(&shared.config.node_url)
            .arg(&claim.token)
            .arg(ttl_ms)
            .arg(if replace { "1" } else { "0" })
            .invoke_async(&mut redis),
    )
    .await;
    match result {
        Ok((1, _)) => {
            claim.idle.store(false, Ordering::Release);
            shared
                .metrics
                .origin_claims
                .set(shared.claims.lock().len() as i64);
            let origin_claim = OriginClaim::new(Box::new(handle), claim.lost.clone());
            // A stream this node was pulling as an edge is published here now.
            Ok(match crate::edge::hand_over(shared, stream) {
                Some(pulled) => origin_claim.continuing(pulled),
                None => origin_claim,
            })
        }
        Ok((_, holder)) => Err(ClaimError::Taken {
            stream: stream.clone(),
            node: holder,
        }),
        Err(e) => Err(ClaimError::Unavailable(e.to_string())),
    }
}

/// A share of a held claim; the last one dropped releases it.
pub(crate) struct ClaimHandle {
    shared: Arc<Shared>,
    claim: Arc<HeldClaim>,
}

impl ClaimHandle {
    /// Joins this node's claim of `key`, or makes a new one (not yet sent to Redis).
    fn take(shared: &Arc<Shared>, key: &StreamKey) -> ClaimHandle {
        let mut claims = shared.claims.lock();
        let slot = claims.entry(key.clone()).or_insert_with(|| ClaimSlot {
            claim: Arc::new(HeldClaim {
                key: key.clone(),
                token: format!(
                    "{:016x}{:016x}",
                    rand::random::<u64>(),
                    rand::random::<u64>()
                ),
                idle: AtomicBool::new(false),
                released: AtomicBool::new(false),
                lost: CancellationToken::new(),
            }),
            holders: 0,
        });
        slot.holders += 1;
        ClaimHandle {
            shared: shared.clone(),
            claim: slot.claim.clone(),
        }
    }
}

impl ClaimGuard for ClaimHandle {
    fn set_idle(&self, idle: bool) {
        if self.claim.idle.swap(idle, Ordering::AcqRel) == idle {
            return;
        }
        // Told at once rather than at the next heartbeat: a publisher reconnecting to
        // another node right away must find the stream free to take.
        let (shared, claim) = (self.shared.clone(), self.claim.clone());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = renew(&shared, &claim).await {
                    tracing::warn!(stream = %claim.key, error = %e, "could not mark the origin claim idle");
                }
            });
        }
    }
}

impl Drop for ClaimHandle {
    fn drop(&mut self) {
        let last = {
            let mut claims = self.shared.claims.lock();
            let last = match claims.get_mut(&self.claim.key) {
                Some(slot) if Arc::ptr_eq(&slot.claim, &self.claim) => {
                    slot.holders -= 1;
                    slot.holders == 0
                }
                // Lost: the slot is gone (or a newer claim has it) and nothing is ours.
                _ => false,
            };
            if last {
                claims.remove(&self.claim.key);
            }
            self.shared.metrics.origin_claims.set(claims.len() as i64);
            last
        };
        if !last {
            return;
        }
        self.claim.released.store(true, Ordering::Release);
        let (shared, claim) = (self.shared.clone(), self.claim.clone());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = release(&shared, &claim).await {
                    // The TTL ends it instead.
                    tracing::warn!(stream = %claim.key, error = %e, "could not release the origin claim");
                }
            });
        }
    }
}

/// Extends (or re-creates) one claim; cancels its `lost` token when another node has it.
async fn renew(shared: &Shared, claim: &Arc<HeldClaim>) -> Result<(), ClusterError> {
    if claim.released.load(Ordering::Acquire) || claim.lost.is_cancelled() {
        return Ok(());
    }
    let mut redis = shared.redis.clone();
    let ours: i64 = bounded(
        shared
            .scripts
            .renew
            .key(keys::origin(&claim.key))
            .arg(&claim.token)
            .arg(shared.config.ttl.as_millis() as u64)
            .arg(if claim.idle.load(Ordering::Acquire) {
                "1"
            } else {
                "0"
            })
            .arg(&shared.node_id)
            .arg(&shared.config.node_url)
            .invoke_async(&mut redis),
    )
    .await?;
    if ours == 0 {
        tracing::warn!(stream = %claim.key, "origin claim lost: another gateway took the stream");
        shared.metrics.claims_lost.inc();
        {
            let mut claims = shared.claims.lock();
            if claims
                .get(&claim.key)
                .is_some_and(|slot| Arc::ptr_eq(&slot.claim, claim))
            {
                claims.remove(&claim.key);
            }
            shared.metrics.origin_claims.set(claims.len() as i64);
        }
        claim.lost.cancel();
    }
    Ok(())
}

async fn release(shared: &Shared, claim: &HeldClaim) -> Result<(), ClusterError> {
    let mut redis = shared.redis.clone();
    let _: i64 = bounded(
        shared
            .scripts
            .release
            .key(keys::origin(&claim.key))
            .arg(&claim.token)
            .invoke_async(&mut redis),
    )
    .await?;
    Ok(())
}

/// Renews every claim this node holds (the heartbeat's second half). Stops at the first
/// Redis error: the next heartbeat tries again.
pub(crate) async fn renew_all(shared: &Shared) -> Result<(), ClusterError> {
    for claim in held(shared) {
        renew(shared, &claim).await?;
    }
    Ok(())
}

/// Releases every claim (shutdown).
pub(crate) async fn release_all(shared: &Shared) {
    for claim in held(shared) {
        claim.released.store(true, Ordering::Release);
        if let Err(e) = release(shared, &claim).await {
            tracing::warn!(stream = %claim.key, error = %e, "could not release the origin claim");
        }
    }
}

/// The streams this node originates, for its heartbeat.
pub(crate) fn held_keys(shared: &Shared) -> Vec<StreamKey> {
    let mut keys: Vec<_> = shared.claims.lock().keys().cloned().collect();
    keys.sort_unstable();
    keys
}

fn held(shared: &Shared) -> Vec<Arc<HeldClaim>> {
    let claims = shared.claims.lock();
    claims.values().map(|slot| slot.claim.clone()).collect()
}
