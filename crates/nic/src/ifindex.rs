//! Interface names to indexes, for every layer that turns one into the other.

/// The index of the interface called `name` in the calling thread's network namespace.
pub fn if_index(name: &str) -> Option<u32> {
    let name = std::ffi::CString::new(name).ok()?;
    // SAFETY: a valid NUL-terminated string.
    match unsafe { libc::if_nametoindex(name.as_ptr()) } {
        0 => None,
        i => Some(i),
    }
}
