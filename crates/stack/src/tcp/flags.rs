//! The per-call flags of send and recv (MSG_MORE, MSG_OOB, MSG_PEEK with SO_PEEK_OFF,
//! MSG_TRUNC): one small struct per direction, so the POSIX calls map onto one stack call each.

/// Flags of one send call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SendFlags {
    /// MSG_MORE: more data follows; a partial segment of this call's data is held as if
    /// TCP_CORK were set, until a send without it, an arriving ACK, or the probe timer (Linux
    /// uses TCP_NAGLE_CORK for the push that ends this sendmsg only).
    pub more: bool,
    /// MSG_OOB: the last byte of this call is urgent: segments carry URG and an urgent pointer
    /// just past it until it is acknowledged (Linux's tp->snd_up = write_seq).
    pub oob: bool,
}

/// Flags of one receive call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RecvFlags {
    /// MSG_PEEK: copy without consuming.
    pub peek: bool,
    /// With `peek`, start this many readable bytes past the first one (SO_PEEK_OFF; the caller
    /// keeps and advances the offset as Linux's sk_peek_off).
    pub peek_offset: usize,
    /// MSG_OOB: read the urgent byte instead of the stream (Linux's tcp_recv_urg).
    pub oob: bool,
}

/// Where received bytes go.
#[derive(Debug)]
pub enum RecvInto<'a> {
    /// Copied into the buffer.
    Buf(&'a mut [u8]),
    /// MSG_TRUNC on a TCP socket: up to this many bytes are consumed (or, with `peek`,
    /// counted) without being copied; the call returns the count as Linux's tcp_recvmsg does.
    Discard(usize),
}

impl RecvInto<'_> {
    /// How many bytes the call may deliver.
    pub fn len(&self) -> usize {
        match self {
            RecvInto::Buf(b) => b.len(),
            RecvInto::Discard(n) => *n,
        }
    }

    /// Whether the call asks for no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
