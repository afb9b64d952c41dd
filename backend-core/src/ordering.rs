//! Per-client ordering of the connect and disconnect hooks' writes.
//!
//! A broker must not wait for the database in its disconnect hook: an
//! MQTT client that reconnects at once with the same client id takes over
//! the old session, and a session still busy in a hook can make that
//! takeover fail (rmqtt answers CONNACK "server unavailable"). So the
//! disconnect's writes run detached
//! ([`crate::Engine::detach_client_disconnected`]); this lock keeps them in
//! order with the next connect of the same client, so a quick reconnect
//! never ends with the client recorded offline.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// One async lock per client id, created on demand and forgotten when no
/// one holds or waits for it.
#[derive(Default)]
pub(crate) struct ClientLocks {
    locks: Mutex<HashMap<String, Arc<AsyncMutex<()>>>>,
}

/// A held client lock (movable into a spawned task).
pub(crate) struct ClientGuard {
    owner: Arc<ClientLocks>,
    client: String,
    _guard: OwnedMutexGuard<()>,
}

impl ClientLocks {
    /// Waits for, then holds, `client`'s lock.
    pub(crate) async fn lock(self: &Arc<Self>, client: &str) -> ClientGuard {
        let lock = {
            let mut map = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(map.entry(client.to_owned()).or_default())
        };
        ClientGuard {
            owner: Arc::clone(self),
            client: client.to_owned(),
            _guard: lock.lock_owned().await,
        }
    }

    /// Clients whose lock is held or awaited.
    pub(crate) fn len(&self) -> usize {
        self.locks.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl Drop for ClientGuard {
    fn drop(&mut self) {
        let mut map = self.owner.locks.lock().unwrap_or_else(|p| p.into_inner());
        // The map's and this guard's: no one else holds or waits for it.
        if map
            .get(&self.client)
            .is_some_and(|l| Arc::strong_count(l) == 2)
        {
            map.remove(&self.client);
        }
    }
}
