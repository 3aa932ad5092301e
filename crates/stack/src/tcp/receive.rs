//! The application's receive call with its flags (Linux's tcp_recvmsg): MSG_PEEK from an
//! offset (SO_PEEK_OFF), MSG_TRUNC (bytes consumed, not copied, and counted), MSG_OOB
//! (tcp_recv_urg), and the urgent mark: a read stops at it once it has copied something, and
//! without SO_OOBINLINE skips the urgent byte.

use super::connection::Connection;
use super::error::TcpError;
use super::flags::{RecvFlags, RecvInto};
use super::state::State;
use super::urgent::UrgentByte;

impl Connection {
    /// recv(2) with flags into `into`; returns the bytes delivered (copied, or counted with
    /// MSG_TRUNC), `Ok(0)` at end of stream.
    pub fn recv_with(&mut self, mut into: RecvInto<'_>, flags: RecvFlags) -> Result<usize, TcpError> {
        if flags.oob {
            return self.recv_urgent(into, flags.peek);
        }
        let start = if flags.peek { flags.peek_offset } else { 0 };
        if !into.is_empty() && self.rcv.buf.len() > start {
            let before = self.advertisable_window();
            let n = self.read_stream(&mut into, start, flags.peek);
            if !flags.peek {
                self.info.bytes_delivered += n as u64;
                if self.rcv.buf.limit() != self.rcv.limit {
                    self.settle_recv_limit();
                }
                self.maybe_window_update(before);
            }
            if n > 0 {
                return Ok(n);
            }
            // Only the skipped urgent byte was there.
        }
        if let Some(err) = self.error.take() {
            return Err(err);
        }
        if self.rcv.fin_received || self.rcv.read_shutdown || self.dead {
            return Ok(0);
        }
        match self.state {
            State::SynSent | State::SynReceived => Err(TcpError::WouldBlock),
            State::Closed => Err(TcpError::NotConnected),
            _ if into.is_empty() => Ok(0),
            _ => Err(TcpError::WouldBlock),
        }
    }

    /// Copies (or counts) readable bytes from `start` past the first, stopping at the urgent
    /// mark if anything was delivered and skipping the urgent byte unless SO_OOBINLINE;
    /// consumes what it passed unless `peek`. Returns the bytes delivered.
    fn read_stream(&mut self, into: &mut RecvInto<'_>, start: usize, peek: bool) -> usize {
        let avail = self.rcv.buf.len();
        let want = into.len();
        let copied_seq = self.copied_seq();
        let mark = self.rcv.urg.filter(|m| m.seq >= copied_seq).map(|m| m.seq.since(copied_seq) as usize);
        let inline = self.options.oob_inline;
        let (mut pos, mut done) = (start, 0);
        while done < want && pos < avail {
            if mark == Some(pos) {
                if done > 0 {
                    break;
                }
                if !inline {
                    pos += 1;
                    continue;
                }
            }
            let mut n = (want - done).min(avail - pos);
            if let Some(m) = mark.filter(|&m| m > pos) {
                n = n.min(m - pos);
            }
            if let RecvInto::Buf(out) = into {
                self.rcv.buf.peek_at(pos, &mut out[done..done + n]);
            }
            pos += n;
            done += n;
        }
        if !peek {
            self.rcv.buf.consume(pos);
            if mark.is_some_and(|m| pos > m) {
                // Read past the mark: the urgent data is gone, read with MSG_OOB or not.
                self.rcv.urg = None;
            }
        }
        done
    }

    /// MSG_OOB (Linux's tcp_recv_urg): the urgent byte, once; EINVAL without one, after it
    /// was read, or with SO_OOBINLINE; EAGAIN while it has not arrived (never blocks).
    fn recv_urgent(&mut self, into: RecvInto<'_>, peek: bool) -> Result<usize, TcpError> {
        let Some(mark) = self.rcv.urg.as_mut() else { return Err(TcpError::InvalidArgument) };
        if self.options.oob_inline || mark.byte == UrgentByte::Read {
            return Err(TcpError::InvalidArgument);
        }
        if let UrgentByte::Valid(b) = mark.byte {
            if !peek {
                mark.byte = UrgentByte::Read;
            }
            return Ok(match into {
                RecvInto::Buf(out) if !out.is_empty() => {
                    out[0] = b;
                    1
                }
                RecvInto::Discard(n) if n > 0 => 1,
                _ => 0,
            });
        }
        if self.state == State::Closed || self.rcv.fin_received || self.rcv.read_shutdown {
            return Ok(0);
        }
        Err(TcpError::WouldBlock)
    }
}
