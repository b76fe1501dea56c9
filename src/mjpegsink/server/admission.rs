// SPDX-License-Identifier: MPL-2.0

//! Connection admission, the first layer of the server's checks: every TCP
//! connection holds a [`Ticket`] while it is open, and at most `limit` are
//! held at once. At the limit a new connection evicts the oldest one that
//! is not answering a request (still sending its head, in its TLS
//! handshake, or idle between keep-alive requests), so idle sockets can
//! never lock a viewer out; a streaming connection is answering its request
//! for as long as it streams, so streams are never evicted. When every
//! connection is busy, the new one is refused.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use super::stats::Counters;
use crate::runtime::lock;

/// [`Slot::active`] of a connection that was chosen for eviction.
const EVICTED: usize = usize::MAX;

/// One connection's state as admission sees it.
#[derive(Default)]
pub(crate) struct Slot {
    /// Requests being answered (a stream counts until it ends), or
    /// [`EVICTED`].
    active: AtomicUsize,
    evict: Notify,
}

impl Slot {
    /// A request starts being answered: the connection cannot be evicted
    /// until the returned guard is dropped (when hyper is done with the
    /// response body).
    pub(crate) fn busy(self: &Arc<Self>) -> Busy {
        let _ = self
            .active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n != EVICTED).then_some(n + 1)
            });
        Busy(self.clone())
    }

    /// Resolves once the connection was evicted: it must close at once.
    pub(crate) async fn evicted(&self) {
        self.evict.notified().await
    }
}

/// Keeps a connection busy (not evictable) while held.
pub(crate) struct Busy(Arc<Slot>);

impl Drop for Busy {
    fn drop(&mut self) {
        let _ = self
            .0
            .active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n != EVICTED && n > 0).then_some(n - 1)
            });
    }
}

/// The connections of one server, oldest first.
pub(crate) struct Admission {
    limit: usize,
    conns: Mutex<BTreeMap<u64, Arc<Slot>>>,
    next_id: AtomicU64,
}

/// A connection's place among the admitted ones, released on drop.
pub(crate) struct Ticket {
    admission: Arc<Admission>,
    counters: Arc<Counters>,
    id: u64,
    slot: Arc<Slot>,
}

impl Ticket {
    pub(crate) fn slot(&self) -> &Arc<Slot> {
        &self.slot
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        // An evicted connection was taken out (and counted out) already.
        if lock(&self.admission.conns).remove(&self.id).is_some() {
            self.counters.connections.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Admission {
    pub(crate) fn new(limit: usize) -> Self {
        Admission {
            limit: limit.max(1),
            conns: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(0),
        }
    }

    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// Admit a new connection, evicting the oldest idle one at the limit;
    /// `None` (counted) when every admitted connection is busy.
    pub(crate) fn admit(self: &Arc<Self>, counters: &Arc<Counters>) -> Option<Ticket> {
        let mut conns = lock(&self.conns);
        if conns.len() >= self.limit && !Self::evict_oldest_idle(&mut conns, counters) {
            counters.connections_refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let slot = Arc::new(Slot::default());
        conns.insert(id, slot.clone());
        drop(conns);
        counters.connections.fetch_add(1, Ordering::Relaxed);
        counters.connections_total.fetch_add(1, Ordering::Relaxed);
        Some(Ticket {
            admission: self.clone(),
            counters: counters.clone(),
            id,
            slot,
        })
    }

    /// Evict the oldest idle connection, if any (to free a descriptor when
    /// `accept()` ran out of them).
    pub(crate) fn evict_idle(&self, counters: &Counters) -> bool {
        Self::evict_oldest_idle(&mut lock(&self.conns), counters)
    }

    fn evict_oldest_idle(conns: &mut BTreeMap<u64, Arc<Slot>>, counters: &Counters) -> bool {
        let victim = conns.iter().find_map(|(&id, slot)| {
            slot.active
                .compare_exchange(0, EVICTED, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
                .then_some(id)
        });
        let Some(slot) = victim.and_then(|id| conns.remove(&id)) else {
            return false;
        };
        // A stored permit: the connection sees it even if it is not
        // waiting yet.
        slot.evict.notify_one();
        counters.connections.fetch_sub(1, Ordering::Relaxed);
        counters.connections_evicted.fetch_add(1, Ordering::Relaxed);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_oldest_idle_never_busy() {
        let counters = Arc::new(Counters::default());
        let a = Arc::new(Admission::new(3));
        let t0 = a.admit(&counters).expect("0");
        let t1 = a.admit(&counters).expect("1");
        let t2 = a.admit(&counters).expect("2");
        let _b0 = t0.slot().busy();
        // t0 is busy: t1 is the oldest idle one.
        let t3 = a.admit(&counters).expect("3 evicts 1");
        assert_eq!(t1.slot().active.load(Ordering::Relaxed), EVICTED);
        assert_eq!(counters.connections.load(Ordering::Relaxed), 3);
        drop(t1);
        assert_eq!(counters.connections.load(Ordering::Relaxed), 3);
        let _b2 = t2.slot().busy();
        let _b3 = t3.slot().busy();
        assert!(a.admit(&counters).is_none(), "all busy: refused");
        assert_eq!(counters.connections_refused.load(Ordering::Relaxed), 1);
        assert_eq!(counters.connections_evicted.load(Ordering::Relaxed), 1);
        drop(_b3);
        let _t4 = a.admit(&counters).expect("3 idle again: evicted");
        assert_eq!(t3.slot().active.load(Ordering::Relaxed), EVICTED);
        assert_eq!(counters.connections_total.load(Ordering::Relaxed), 5);
    }
}
