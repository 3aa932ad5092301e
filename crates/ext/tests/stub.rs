//! A C program built against include/exasock and linked with libexasock_ext, run without
//! exasock: the stub's answers, the pure header helpers (checked with `wire`), and the header's
//! socket helpers against the kernel.

use std::path::PathBuf;
use std::process::Command;

const PROGRAM: &str = r#"
#include <exasock/extensions.h>
#include <exasock/socket.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <netinet/in.h>

int main(void)
{
    char dev[16]; int port; char hdr[64];
    printf("loaded=%d code=%u text=%s\n", exasock_loaded(), exasock_version_code(),
           exasock_version_text() ? "set" : "null");
    errno = 0; int r = exasock_tcp_get_device(0, dev, sizeof dev, &port);
    printf("get_device=%d errno_ok=%d\n", r, errno == EOPNOTSUPP);
    errno = 0; long h = (long)exasock_tcp_build_header(0, hdr, sizeof hdr, 0, 0);
    printf("build_header=%ld errno_ok=%d\n", h, errno == EOPNOTSUPP);
    errno = 0; r = exasock_tcp_send_advance(0, hdr, 0);
    printf("advance=%d errno_ok=%d\n", r, errno == EOPNOTSUPP);
    errno = 0; long s = (long)exasock_tcp_send_frame(0, hdr, 54);
    printf("send_frame=%ld errno_ok=%d\n", s, errno == EOPNOTSUPP);
    /* The header helpers are pure: they work without exasock. A header block as
     * exasock_tcp_build_header makes one (Ethernet, IPv4, TCP with the timestamp option). */
    unsigned char frame[66 + 5] = {
        2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00,
        0x45, 0, 0, 52, 0x12, 0x34, 0x40, 0, 64, 6, 0x14, 0x8e, 10, 0, 0, 1, 10, 0, 0, 2,
        0x1f, 0x90, 0x30, 0x39, 0, 0, 0, 100, 0, 0, 0, 200, 0x80, 0x18, 0x01, 0xf5, 0, 0, 0, 0,
        1, 1, 8, 10, 0, 0, 0, 7, 0, 0, 0, 9 };
    memcpy(frame + 66, "hello", 5);
    printf("set_length=%d ", exasock_tcp_set_length(frame, 66, 5));
    printf("calc=%d\n", exasock_tcp_calc_checksum(frame, 66, frame + 66, 5));
    printf("frame=");
    for (size_t i = 0; i < sizeof frame; i++)
        printf("%02x", frame[i]);
    printf("\n");
    errno = 0; r = exasock_tcp_set_length(frame, 65, 5);
    printf("short_block=%d einval=%d\n", r, errno == EINVAL);
    errno = 0; r = exasock_tcp_calc_checksum(NULL, 66, frame, 5);
    printf("null=%d efault=%d\n", r, errno == EFAULT);
    errno = 0; print_exasock_latencies(); printf("latencies_errno_ok=%d\n", errno == EOPNOTSUPP);
    printf("version_macro=%d\n", EXASOCK_VERSION(2, 7, 6) == 0x020706);
    /* Without exasock the kernel does not know SOL_EXASOCK. */
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    errno = 0; r = exasock_disable_acceleration(fd);
    printf("disable=%d enoprotoopt=%d\n", r, errno == ENOPROTOOPT);
    struct sockaddr_in sa = { .sin_family = AF_INET };
    errno = 0; r = exasock_ate_connect(fd, -1, (struct sockaddr *)&sa, sizeof sa);
    printf("ate_negative=%d einval=%d\n", r, errno == EINVAL);
    return 0;
}
"#;

#[test]
fn a_program_linked_with_the_stub_runs_without_exasock() {
    // Built beside this test binary (the crate is cdylib + rlib, so `cargo test` builds both).
    let target_dir = std::env::current_exe().unwrap().parent().unwrap().to_path_buf();
    let lib = target_dir.join("libexasock_ext.so");
    assert!(lib.exists(), "{} not built", lib.display());
    let include = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../include");
    let work = std::env::temp_dir().join(format!("exasock-ext-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("prog.c"), PROGRAM).unwrap();
    let exe = work.join("prog");
    let out = Command::new("cc")
        .args(["-Wall", "-Werror", "-o"])
        .arg(&exe)
        .arg(work.join("prog.c"))
        .arg(format!("-I{}", include.display()))
        .arg(format!("-L{}", target_dir.display()))
        .arg("-lexasock_ext")
        .output()
        .unwrap();
    assert!(out.status.success(), "cc failed: {}", String::from_utf8_lossy(&out.stderr));
    let readelf = Command::new("readelf").args(["-d"]).arg(&exe).output().unwrap();
    assert!(String::from_utf8_lossy(&readelf.stdout).contains("libexasock_ext.so.1"), "soname not recorded");
    // The program looks for the soname; give it one beside the library.
    let _ = std::fs::remove_file(work.join("libexasock_ext.so.1"));
    std::os::unix::fs::symlink(&lib, work.join("libexasock_ext.so.1")).unwrap();
    let run = Command::new(&exe).env("LD_LIBRARY_PATH", &work).output().unwrap();
    let text = String::from_utf8_lossy(&run.stdout).to_string();
    std::fs::remove_dir_all(&work).ok();
    assert!(run.status.success(), "{text}{}", String::from_utf8_lossy(&run.stderr));
    // The frame the helpers completed: both checksums verify, the IPv4 length counts the payload.
    let hex = text.lines().find_map(|l| l.strip_prefix("frame=")).expect("the frame is printed");
    let frame: Vec<u8> = (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
    let ip = wire::Ipv4Packet::new_checked(&frame[14..]).unwrap();
    assert!(ip.verify_checksum(), "IPv4 checksum after exasock_tcp_set_length");
    assert_eq!(ip.total_len(), 20 + 32 + 5);
    let tcp = wire::TcpSegment::new_checked(ip.payload()).unwrap();
    assert!(tcp.verify_checksum(ip.src_addr(), ip.dst_addr()), "TCP checksum of exasock_tcp_calc_checksum");
    assert_eq!(tcp.payload(), b"hello");
    let rest: String = text.lines().filter(|l| !l.starts_with("frame=")).map(|l| format!("{l}\n")).collect();
    assert_eq!(
        rest,
        "loaded=0 code=0 text=null\nget_device=-1 errno_ok=1\nbuild_header=-1 errno_ok=1\n\
         advance=-1 errno_ok=1\nsend_frame=-1 errno_ok=1\nset_length=0 calc=0\n\
         short_block=-1 einval=1\nnull=-1 efault=1\nlatencies_errno_ok=1\nversion_macro=1\n\
         disable=-1 enoprotoopt=1\nate_negative=-1 einval=1\n"
    );
}
