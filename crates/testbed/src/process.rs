//! Processes started inside a namespace, each with a hard timeout.

use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
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
    /// Lines of stdout, once `wait_for_line` has started reading it.
    lines: Option<mpsc::Receiver<String>>,
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
            .map_err(|e| io::Error::new(e.kind(), format!("cannot start {argv:?} in {netns}: {e}")))?;
        Ok(NsChild { child, argv: argv.iter().map(|s| s.to_string()).collect(), lines: None })
    }

    /// The pid of the `timeout` wrapper (the program is its child, in the same namespace).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process's stdin, to feed it.
    pub fn stdin(&mut self) -> Option<&mut std::process::ChildStdin> {
        self.child.stdin.as_mut()
    }

    /// Waits for a line of stdout starting with `prefix` (readiness announced by the program);
    /// lines before it are dropped. Fails on timeout or when the program exits first.
    pub fn wait_for_line(&mut self, prefix: &str, timeout: Duration) -> io::Result<String> {
        if self.lines.is_none() {
            let stdout = self.child.stdout.take().ok_or_else(|| io::Error::other("stdout already taken"))?;
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            self.lines = Some(rx);
        }
        let rx = self.lines.as_ref().expect("set above");
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return Ok(line),
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("{:?} printed no line starting with {prefix:?} within {timeout:?}", self.argv),
                    ))
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let mut err = String::new();
                    if let Some(mut e) = self.child.stderr.take() {
                        let _ = e.read_to_string(&mut err);
                    }
                    return Err(io::Error::other(format!(
                        "{:?} closed stdout before printing {prefix:?}; stderr: {err}",
                        self.argv
                    )));
                }
            }
        }
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
        let lines = self.lines.take();
        let out = std::thread::spawn(move || match lines {
            // Stdout is being read line by line already: the rest of the lines.
            Some(rx) => rx.iter().flat_map(|l| (l + "\n").into_bytes()).collect(),
            None => read_all(stdout.as_mut()),
        });
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
            Some(status) => Ok(Output { status, stdout, stderr }),
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

    /// Sends `signal` to the process group (the wrapper and the program it runs), so the program
    /// can finish on its own; `finish` then collects it.
    pub fn kill_with(&mut self, signal: i32) {
        if let Ok(pgid) = i32::try_from(self.child.id()) {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(-pgid, signal) };
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
