//! sendfile, sendfile64 and splice with an accelerated TCP connection on one end. The kernel
//! moves pages between a file or pipe and its own socket; ours is in the stack, so the bytes go
//! through a buffer on the caller's stack, with the kernel's semantics kept: a blocking socket
//! takes everything (or what came before a signal), a non-blocking one what fits (EAGAIN when
//! nothing); sendfile leaves the file position alone when given an offset and advances it by
//! what was sent otherwise; no byte read from a pipe or file is lost when the socket takes
//! fewer. copy_file_range and vmsplice have no socket case (the kernel refuses sockets: the
//! placeholder kernel socket gives the same errno) and pass through.

use super::stream;
use crate::fdtable::{self, FdState};
use crate::{errno, real, runtime};
use libc::{c_int, c_uint, loff_t, off_t, size_t, ssize_t};
use stack::tcp::{RecvFlags, RecvInto};

/// Bytes moved per read and send (on the calling thread's stack).
const CHUNK: usize = 32 * 1024;

/// Exported by `intercept::traced` (which traces it under EXASOCK_TRACE).
pub unsafe extern "C" fn sendfile(out_fd: c_int, in_fd: c_int, offset: *mut off_t, count: size_t) -> ssize_t {
    match fdtable::get(out_fd) {
        FdState::Accel(slot) if fdtable::is_tcp_connection(out_fd) => {
            stream::ssize(send_file(out_fd, slot, in_fd, offset, count))
        }
        _ => real::sendfile(out_fd, in_fd, offset, count),
    }
}

/// sendfile64: the same function (off_t is 64 bits on the targets we build for).
#[no_mangle]
pub unsafe extern "C" fn sendfile64(out_fd: c_int, in_fd: c_int, offset: *mut off_t, count: size_t) -> ssize_t {
    super::traced::sendfile(out_fd, in_fd, offset, count)
}

/// Where sendfile's bytes come from: a position in a file that can seek, or a stream (a pipe,
/// a socket) read in order.
enum Source {
    At(off_t),
    Stream,
}

/// sendfile to an accelerated connection: up to `count` bytes of `in_fd` from `*offset` (or
/// its file position), sent as `send` would send them.
unsafe fn send_file(fd: c_int, slot: u32, in_fd: c_int, offset: *mut off_t, count: size_t) -> Result<usize, c_int> {
    let mut source = if offset.is_null() {
        match libc::lseek(in_fd, 0, libc::SEEK_CUR) {
            p if p >= 0 => Source::At(p),
            _ if errno::get() == libc::ESPIPE => Source::Stream,
            _ => return Err(errno::get()),
        }
    } else if *offset < 0 {
        return Err(libc::EINVAL);
    } else {
        Source::At(*offset)
    };
    let count = count.min(0x7fff_f000); // MAX_RW_COUNT, as the kernel caps one call
    let mut buf = [0u8; CHUNK];
    let mut sent = 0usize;
    while sent < count {
        if let Source::At(pos) = &mut source {
            // A file: read straight into the connection's send buffer (no copy in between).
            let want = FILE_CHUNK.min(count - sent);
            let (took, read_err) = send_from_file(fd, slot, in_fd, *pos, want, sent);
            match took {
                Err(e) if sent == 0 => return Err(e),
                Err(_) => break,
                Ok(0) if read_err != 0 && sent == 0 => return Err(read_err),
                Ok(took) => {
                    sent += took;
                    *pos += took as off_t;
                    if took < want {
                        break;
                    }
                }
            }
            continue;
        }
        let mut want = CHUNK.min(count - sent);
        if matches!(source, Source::Stream) {
            // What is read from a stream cannot go back: read no more than the socket takes.
            want = want.min(room_for(fd, slot, sent)?);
        }
        let n = match source {
            Source::At(pos) => libc::pread(in_fd, buf.as_mut_ptr().cast(), want, pos),
            // Through our read: the source may be an accelerated socket too.
            Source::Stream => super::data::read(in_fd, buf.as_mut_ptr().cast(), want),
        };
        if n < 0 {
            if sent > 0 {
                break;
            }
            return Err(errno::get());
        }
        if n == 0 {
            break;
        }
        let n = n as usize;
        let took = match (&source, send_chunk(fd, slot, &buf[..n], sent)) {
            (_, Err(e)) if sent == 0 => return Err(e),
            (_, Err(_)) => 0,
            // A stream's bytes are already out of it: they all go.
            (Source::Stream, Ok(t)) if t < n => t + send_rest(fd, slot, &buf[t..n]),
            (_, Ok(t)) => t,
        };
        sent += took;
        if let Source::At(pos) = &mut source {
            *pos += took as off_t;
        }
        if took < n {
            break;
        }
    }
    if let Source::At(pos) = source {
        if offset.is_null() {
            libc::lseek(in_fd, pos, libc::SEEK_SET);
        } else {
            *offset = pos;
        }
    }
    Ok(sent)
}

/// Bytes of a file sent per step (read straight into the send buffer: no stack buffer).
const FILE_CHUNK: usize = 256 * 1024;

/// Sends up to `want` bytes of `in_fd` from `pos` as send(2) would send them (after the first
/// bytes of the call, without waiting), each pread going straight into the connection's send
/// buffer. Returns what was taken (less at the end of the file or at a read error, whose errno
/// comes second) or the send's errno.
fn send_from_file(
    fd: c_int,
    slot: u32,
    in_fd: c_int,
    pos: off_t,
    want: usize,
    sent_before: usize,
) -> (Result<usize, c_int>, c_int) {
    let flags = if sent_before > 0 && runtime::nonblocking(fd) { libc::MSG_DONTWAIT } else { 0 };
    let (mut at, mut read_err) = (pos, 0);
    let took = stream::send_loop(fd, slot, flags, want, &mut |stack, h| {
        let left = want - (at - pos) as usize;
        stack.tcp_send_fill(h, left, &mut |dst| {
            // SAFETY: a read into the send buffer's free space, `dst.len()` bytes we may write.
            let n = unsafe { libc::pread(in_fd, dst.as_mut_ptr().cast(), dst.len(), at) };
            if n < 0 {
                read_err = errno::get();
                return 0;
            }
            at += n as off_t;
            n as usize
        })
    });
    (took, read_err)
}

/// How many bytes the connection takes now without waiting: its free send space, or for a
/// blocking socket that has sent nothing yet, a chunk (the send will wait for room). EAGAIN for
/// a non-blocking socket with no room and nothing sent.
fn room_for(fd: c_int, slot: u32, sent: usize) -> Result<usize, c_int> {
    let room = runtime::with_tcp(slot, |stack, h, _| {
        Ok(stack.tcp_options(h)?.sndbuf.saturating_sub(stack.tcp_send_queued(h)?))
    })
    .unwrap_or(CHUNK);
    if room > 0 {
        return Ok(room);
    }
    if runtime::nonblocking(fd) || sent > 0 {
        return if sent > 0 { Ok(0) } else { Err(libc::EAGAIN) };
    }
    Ok(CHUNK)
}

/// Sends one chunk as send(2) would: after the first bytes of the call, without waiting.
fn send_chunk(fd: c_int, slot: u32, data: &[u8], sent_before: usize) -> Result<usize, c_int> {
    let flags = if sent_before > 0 && runtime::nonblocking(fd) { libc::MSG_DONTWAIT } else { 0 };
    stream::send(fd, slot, &[data], flags)
}

/// Sends the rest of bytes already taken out of a pipe or stream, waiting for room even on a
/// non-blocking socket and through signals (they cannot be put back). What is sent; less only
/// when the connection fails.
fn send_rest(fd: c_int, slot: u32, mut data: &[u8]) -> usize {
    let mut sent = 0;
    while !data.is_empty() {
        match stream::send(fd, slot, &[data], 0) {
            Ok(n) => {
                sent += n;
                data = &data[n..];
            }
            Err(libc::EINTR | libc::EAGAIN) => runtime::poll_once(),
            Err(_) => break,
        }
    }
    sent
}

#[no_mangle]
pub unsafe extern "C" fn splice(
    fd_in: c_int,
    off_in: *mut loff_t,
    fd_out: c_int,
    off_out: *mut loff_t,
    len: size_t,
    flags: c_uint,
) -> ssize_t {
    let into_socket = fdtable::is_tcp_connection(fd_out);
    let from_socket = fdtable::is_tcp_connection(fd_in);
    if !into_socket && !from_socket {
        return real::splice(fd_in, off_in, fd_out, off_out, len, flags);
    }
    // As the kernel: a socket takes no offset (EINVAL), and one end must be a pipe.
    if (into_socket && !off_out.is_null()) || (from_socket && !off_in.is_null()) {
        return errno::fail(libc::EINVAL);
    }
    let nonblock = flags & libc::SPLICE_F_NONBLOCK != 0;
    let result = match (fdtable::get(fd_in), fdtable::get(fd_out)) {
        (_, FdState::Accel(slot)) if into_socket && is_pipe(fd_in) && off_in.is_null() => {
            pipe_to_socket(fd_in, fd_out, slot, len, nonblock)
        }
        (FdState::Accel(slot), _) if from_socket && is_pipe(fd_out) && off_out.is_null() => {
            socket_to_pipe(fd_in, slot, fd_out, len)
        }
        (_, _) if into_socket && is_pipe(fd_in) => Err(libc::ESPIPE),
        _ => Err(libc::EINVAL),
    };
    stream::ssize(result)
}

fn is_pipe(fd: c_int) -> bool {
    // SAFETY: fstat into a zeroed struct we own.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        libc::fstat(fd, &mut st) == 0 && st.st_mode & libc::S_IFMT == libc::S_IFIFO
    }
}

/// splice from a pipe into an accelerated connection: what the pipe holds (waiting for it
/// unless SPLICE_F_NONBLOCK or the pipe is non-blocking), no more than the socket takes.
fn pipe_to_socket(pipe: c_int, fd: c_int, slot: u32, len: size_t, nonblock: bool) -> Result<usize, c_int> {
    if len == 0 {
        return Ok(0);
    }
    let want = len.min(CHUNK).min(room_for(fd, slot, 0)?);
    let mut buf = [0u8; CHUNK];
    // SAFETY: reading into our own buffer; the real function, not our export.
    let n = unsafe {
        if nonblock {
            let mut p = libc::pollfd { fd: pipe, events: libc::POLLIN, revents: 0 };
            if real::poll(&mut p, 1, 0) == 0 {
                return Err(libc::EAGAIN);
            }
        }
        real::read(pipe, buf.as_mut_ptr().cast(), want)
    };
    if n < 0 {
        return Err(errno::get());
    }
    let n = n as usize;
    if n == 0 {
        return Ok(0);
    }
    Ok(match send_chunk(fd, slot, &buf[..n], 0) {
        Ok(t) if t < n => t + send_rest(fd, slot, &buf[t..n]),
        Ok(t) => t,
        Err(e) => return Err(e),
    })
}

/// splice from an accelerated connection into a pipe: the bytes waiting (waiting for some as
/// recv does), as many as the pipe takes; those the pipe does not take stay in the stream.
fn socket_to_pipe(fd: c_int, slot: u32, pipe: c_int, len: size_t) -> Result<usize, c_int> {
    if len == 0 {
        return Ok(0);
    }
    let mut buf = [0u8; CHUNK];
    let want = len.min(CHUNK);
    // SPLICE_F_NONBLOCK is for the pipe: the socket waits as its O_NONBLOCK says (as Linux's
    // tcp_splice_read).
    let n = stream::receive_with(fd, slot, RecvInto::Buf(&mut buf[..want]), libc::MSG_PEEK, false)?;
    if n == 0 {
        return Ok(0);
    }
    // SAFETY: writing our own buffer; the real function, not our export.
    let w = unsafe { real::write(pipe, buf.as_ptr().cast(), n) };
    if w < 0 {
        return Err(errno::get());
    }
    // The bytes the pipe took leave the stream.
    let (taken, _) =
        runtime::tcp_read(slot, RecvInto::Discard(w as usize), RecvFlags::default(), false).map_err(|e| e.errno())?;
    Ok(taken)
}
