//! Processes started inside a namespace, each with a hard timeout.

use std::io::{self, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// Sends SIGKILL to `pid` (errors ignored: it may be gone already).
pub(crate) fn kill_pid(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// A process running in a namespace under `timeout -s KILL`; killed when dropped.
#[derive(Debug)]
pub struct NsChild {
    child: Child,
    argv: Vec<String>,
}

impl NsChild {
    pub(crate) fn spawn(netns: &str, argv: &[&str], timeout: Duration) -> io::Result<NsChild> {
        let secs = format!("{}", timeout.as_secs().max(1));
        let child = Command::new("ip")
            .args(["netns", "exec", netns, "timeout", "-s", "KILL", &secs])
            .args(argv)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so that a kill reaches the program behind `timeout` too.
            .process_group(0)
            .spawn()
            .map_err(|e| {
                io::Error::new(e.kind(), format!("cannot start {argv:?} in {netns}: {e}"))
            })?;
        Ok(NsChild {
            child,
            argv: argv.iter().map(|s| s.to_string()).collect(),
        })
    }

    /// The pid of the `timeout` wrapper (the program is its child, in the same namespace).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process's stdin, to feed it.
    pub fn stdin(&mut self) -> Option<&mut std::process::ChildStdin> {
        self.child.stdin.as_mut()
    }

    /// Whether it has exited, without waiting.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.child.try_wait()
    }

    /// Closes stdin, waits up to `timeout` for the exit and collects the output; on timeout the
    /// process is killed and the error carries what it printed.
    pub fn finish(mut self, timeout: Duration) -> io::Result<Output> {
        drop(self.child.stdin.take());
        let mut stdout = self.child.stdout.take();
        let mut stderr = self.child.stderr.take();
        let out = std::thread::spawn(move || read_all(stdout.as_mut()));
        let err = std::thread::spawn(move || read_all(stderr.as_mut()));
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait()? {
                break Some(status);
            }
            if Instant::now() >= deadline {
                self.kill();
                break None;
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let stdout = out.join().unwrap_or_default();
        let stderr = err.join().unwrap_or_default();
        match status {
            Some(status) => Ok(Output {
                status,
                stdout,
                stderr,
            }),
            None => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "{:?} still running after {timeout:?}; killed. stdout: {} stderr: {}",
                    self.argv,
                    String::from_utf8_lossy(&stdout),
                    String::from_utf8_lossy(&stderr)
                ),
            )),
        }
    }

    /// Kills the process and the program it runs (SIGKILL to the group) and reaps it.
    pub fn kill(&mut self) {
        if let Ok(pgid) = i32::try_from(self.child.id()) {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
        }
        let _ = self.child.wait();
    }
}

fn read_all(pipe: Option<&mut impl Read>) -> Vec<u8> {
    let mut buf = Vec::new();
    if let Some(p) = pipe {
        let _ = p.read_to_end(&mut buf);
    }
    buf
}

impl Drop for NsChild {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
        }
    }
}
