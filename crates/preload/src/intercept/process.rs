//! The exec family: flows go back to the kernel before the program is replaced (fork.rs says
//! why), and are claimed again if exec fails. glibc's execl* call its internal execve, so they
//! are interposed too: on x86-64 by small naked functions that gather the variadic arguments
//! (stable Rust cannot define C-variadic functions).

use crate::{errno, real, runtime};
use libc::{c_char, c_int};

/// Runs an exec call with the flows handed back to the kernel around it.
fn around_exec(exec: impl FnOnce() -> c_int) -> c_int {
    if crate::init::ready() {
        crate::inherit::claim_for_exec();
    }
    let released = crate::init::ready() && runtime::release_for_exec();
    let r = exec();
    if released {
        let e = errno::get();
        runtime::reclaim_after_exec();
        return errno::fail(e);
    }
    r
}

#[no_mangle]
pub unsafe extern "C" fn execve(path: *const c_char, argv: *const *const c_char, envp: *const *const c_char) -> c_int {
    around_exec(|| real::execve(path, argv, envp))
}

#[no_mangle]
pub unsafe extern "C" fn execv(path: *const c_char, argv: *const *const c_char) -> c_int {
    around_exec(|| real::execv(path, argv))
}

#[no_mangle]
pub unsafe extern "C" fn execvp(file: *const c_char, argv: *const *const c_char) -> c_int {
    around_exec(|| real::execvp(file, argv))
}

#[no_mangle]
pub unsafe extern "C" fn execvpe(file: *const c_char, argv: *const *const c_char, envp: *const *const c_char) -> c_int {
    around_exec(|| real::execvpe(file, argv, envp))
}

#[no_mangle]
pub unsafe extern "C" fn fexecve(fd: c_int, argv: *const *const c_char, envp: *const *const c_char) -> c_int {
    around_exec(|| real::fexecve(fd, argv, envp))
}

/// Which execl* gathered its arguments.
#[cfg(target_arch = "x86_64")]
mod variadic {
    use super::*;

    const EXECL: usize = 0;
    const EXECLP: usize = 1;
    const EXECLE: usize = 2;
    /// Arguments after `path` that arrive in registers (rsi, rdx, rcx, r8, r9).
    const IN_REGISTERS: usize = 5;
    /// The most arguments gathered (as many as fit a modest stack array).
    const MAX_ARGS: usize = 4096;

    /// Gathers the NULL-terminated argument list (and execle's envp after it), then execs.
    ///
    /// # Safety
    /// `regs` holds the 5 register arguments after `path`, `stack` points at the caller's
    /// stack arguments: together the variadic list of an execl* call.
    unsafe extern "C" fn gathered(path: *const c_char, regs: *const usize, stack: *const usize, kind: usize) -> c_int {
        let arg = |k: usize| if k < IN_REGISTERS { *regs.add(k) } else { *stack.add(k - IN_REGISTERS) };
        let mut argv = [std::ptr::null::<c_char>(); MAX_ARGS + 1];
        let mut n = 0;
        loop {
            let a = arg(n) as *const c_char;
            if a.is_null() {
                break;
            }
            if n == MAX_ARGS {
                return errno::fail(libc::E2BIG);
            }
            argv[n] = a;
            n += 1;
        }
        match kind {
            EXECLP => execvp(path, argv.as_ptr()),
            EXECLE => execve(path, argv.as_ptr(), arg(n + 1) as *const *const c_char),
            _ => execv(path, argv.as_ptr()),
        }
    }

    macro_rules! execl_like {
        ($name:ident, $kind:expr) => {
            /// Saves the register arguments beside the stack ones and calls `gathered`.
            #[unsafe(naked)]
            #[no_mangle]
            pub unsafe extern "C" fn $name(path: *const c_char, arg: *const c_char) -> c_int {
                core::arch::naked_asm!(
                    "push rbp",
                    "mov rbp, rsp",
                    "sub rsp, 48",
                    "mov [rsp], rsi",
                    "mov [rsp + 8], rdx",
                    "mov [rsp + 16], rcx",
                    "mov [rsp + 24], r8",
                    "mov [rsp + 32], r9",
                    "mov rsi, rsp",
                    "lea rdx, [rbp + 16]",
                    "mov rcx, {kind}",
                    "call {gathered}",
                    "leave",
                    "ret",
                    kind = const $kind,
                    gathered = sym gathered,
                )
            }
        };
    }

    execl_like!(execl, EXECL);
    execl_like!(execlp, EXECLP);
    execl_like!(execle, EXECLE);
}

/// _exit and _Exit end the process without atexit handlers or destructors; the kernel would
/// still deliver what its TCP sockets hold, so accelerated connections get the same linger as
/// exit (runtime::release_all, a no-op for a process that accelerated nothing, a fork or vfork
/// child, or a thread that holds exasock's lock).
#[no_mangle]
pub unsafe extern "C" fn _exit(status: c_int) -> ! {
    if crate::init::ready() {
        runtime::release_all();
    }
    libc::syscall(libc::SYS_exit_group, status);
    unreachable_exit()
}

#[no_mangle]
pub unsafe extern "C" fn _Exit(status: c_int) -> ! {
    _exit(status)
}

/// exit_group never returns; should it, end the thread the way the kernel ends it.
fn unreachable_exit() -> ! {
    loop {
        // SAFETY: SYS_exit ends the calling thread.
        unsafe { libc::syscall(libc::SYS_exit, 127) };
    }
}
