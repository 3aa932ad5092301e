//! Gives libexasock_ext.so the soname programs record (libexasock_ext.so.1), as the original.

fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libexasock_ext.so.1");
}
