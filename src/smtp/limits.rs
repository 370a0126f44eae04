//! Connection limits: over all listeners and per client address. A connection past a
//! limit hears `421 4.7.0` and is closed before any session state exists.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Open connections, by client address.
#[derive(Default)]
pub struct Connections {
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// Holds one connection slot; frees it when dropped.
pub struct Slot {
    owner: Arc<Connections>,
    ip: IpAddr,
}

impl Connections {
    /// Takes a slot for `ip` unless a limit is reached.
    pub fn try_open(
        self: &Arc<Self>,
        ip: IpAddr,
        max_total: usize,
        max_per_ip: usize,
    ) -> Option<Slot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let (total, per_ip) = &mut *open;
        let mine = per_ip.entry(ip).or_insert(0);
        if *total >= max_total || *mine >= max_per_ip {
            if *mine == 0 {
                per_ip.remove(&ip);
            }
            return None;
        }
        *mine += 1;
        *total += 1;
        Some(Slot {
            owner: self.clone(),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.owner.open.lock().unwrap_or_else(|e| e.into_inner());
        let (total, per_ip) = &mut *open;
        *total = total.saturating_sub(1);
        if let Some(n) = per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_ip_and_total_and_frees_on_drop() {
        let c = Arc::new(Connections::default());
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let s1 = c.try_open(a, 3, 2).unwrap();
        let _s2 = c.try_open(a, 3, 2).unwrap();
        assert!(c.try_open(a, 3, 2).is_none(), "per-ip limit");
        let _s3 = c.try_open(b, 3, 2).unwrap();
        assert!(c.try_open(b, 3, 2).is_none(), "total limit");
        drop(s1);
        assert!(c.try_open(a, 3, 2).is_some());
    }
}
