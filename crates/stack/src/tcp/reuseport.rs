//! SO_REUSEPORT groups: the listeners bound to one (address, port). A plain listener is a
//! group of one; listeners that all set SO_REUSEPORT share a group, and each SYN picks one of
//! them by a keyed hash of its 4-tuple (Linux's reuseport_select_sock: reciprocal_scale of the
//! flow hash over the group's sockets in bind order), so one flow always lands on the same
//! listener while the group is unchanged. Lookups stay O(1); the group is changed only by
//! listen and close.

use crate::socket::SocketHandle;

/// The listeners bound to one (address, port).
#[derive(Debug)]
pub(crate) struct ListenGroup {
    /// Every member set SO_REUSEPORT (a group of one without it takes no other member).
    pub(crate) reuse_port: bool,
    /// Members in the order they started listening.
    pub(crate) members: Vec<SocketHandle>,
}

impl ListenGroup {
    /// A group with its first listener.
    pub(crate) fn new(h: SocketHandle, reuse_port: bool) -> ListenGroup {
        ListenGroup { reuse_port, members: vec![h] }
    }

    /// The member a flow with this hash goes to (Linux's reciprocal_scale).
    pub(crate) fn pick(&self, hash: u64) -> Option<SocketHandle> {
        let n = self.members.len() as u64;
        let i = ((hash & 0xffff_ffff) * n) >> 32;
        self.members.get(i as usize).copied()
    }

    /// Takes a listener out; returns whether the group is now empty.
    pub(crate) fn remove(&mut self, h: SocketHandle) -> bool {
        self.members.retain(|m| *m != h);
        self.members.is_empty()
    }
}
