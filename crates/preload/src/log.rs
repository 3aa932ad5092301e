//! Messages to stderr without allocating: debug lines and warnings.

use std::io::Write;

/// Writes `args` to fd 2 through a stack buffer and the real `write`.
pub fn emit(args: std::fmt::Arguments<'_>) {
    let mut buf = [0u8; 512];
    let mut cursor = std::io::Cursor::new(&mut buf[..]);
    let _ = cursor.write_fmt(args);
    let n = cursor.position() as usize;
    // SAFETY: writing our own stack buffer to stderr.
    unsafe { crate::real::write(2, buf.as_ptr().cast(), n) };
}

/// `exasock warning: ...` unless EXASOCK_NOWARN is set.
macro_rules! warning {
    ($($t:tt)*) => {
        if !$crate::config::nowarn() {
            $crate::log::emit(format_args!("exasock warning: {}\n", format_args!($($t)*)));
        }
    };
}
pub(crate) use warning;
