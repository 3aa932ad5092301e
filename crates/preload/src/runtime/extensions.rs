//! The runtime's side of the extension API (`<exasock/extensions.h>`, intercept/ext.rs): the
//! stack's prebuilt-segment calls on a slot's TCP connection, under the runtime lock.

use super::{lock, Proto};
use stack::tcp::{PrebuiltError, TcpError};

/// Runs `f` with the driver and the slot's stack socket (an accelerated TCP socket).
fn with_driver<R>(
    slot: u32,
    f: impl FnOnce(&mut driver::Driver, stack::SocketHandle) -> Result<R, PrebuiltError>,
) -> Result<R, PrebuiltError> {
    let mut guard = lock();
    let rt = guard.as_mut().ok_or(PrebuiltError::Tcp(TcpError::BadHandle))?;
    let s = rt.slot(slot).filter(|s| s.proto == Proto::Tcp).ok_or(PrebuiltError::Tcp(TcpError::BadHandle))?;
    f(&mut rt.driver, s.handle)
}

/// The interface the runtime's driver serves, copied into `out` (NUL-terminated, truncated to
/// fit); false without a runtime.
pub fn interface_name(out: &mut [u8]) -> bool {
    let guard = lock();
    let Some(rt) = guard.as_ref() else { return false };
    let name = rt.driver.interface_name().as_bytes();
    if let Some(room) = out.len().checked_sub(1) {
        let n = name.len().min(room);
        out[..n].copy_from_slice(&name[..n]);
        out[n] = 0;
    }
    true
}

/// `exasock_tcp_build_header`: the headers of the slot's next segment, after taking what the
/// ring holds (so the ACK and window are current).
pub fn tcp_build_header(slot: u32, buf: &mut [u8]) -> Result<usize, PrebuiltError> {
    with_driver(slot, |driver, h| {
        driver.poll();
        driver.tcp(|stack, now| stack.tcp_build_header(h, buf, now))
    })
}

/// `exasock_tcp_send_frame`: `frame`, checked to be the slot's next segment, out through the
/// ring with one kick.
pub fn tcp_send_frame(slot: u32, frame: &[u8]) -> Result<usize, PrebuiltError> {
    with_driver(slot, |driver, h| driver.send(|stack, tx| stack.tcp_send_prebuilt(h, frame, tx)))
}

/// `exasock_tcp_send_advance`: `data` was sent at the slot's next sequence number.
pub fn tcp_send_advance(slot: u32, data: &[u8]) -> Result<(), PrebuiltError> {
    with_driver(slot, |driver, h| driver.tcp(|stack, now| stack.tcp_send_advance(h, data, now)))
}

/// MSG_EXA_WARM on a TCP socket: the frame a send of `data` would start with is built in a
/// transmit slot and given back; returns `data.len()`.
pub fn tcp_warm(slot: u32, data: &[u8]) -> Result<usize, TcpError> {
    with_driver(slot, |driver, h| {
        let now = driver::clock::now();
        driver.send(|stack, tx| stack.tcp_warm(h, data, now, tx)).map_err(PrebuiltError::Tcp)
    })
    .map_err(|e| match e {
        PrebuiltError::Tcp(e) => e,
        _ => TcpError::InvalidArgument,
    })
}
