//! The process's file-descriptor budget: raised to the hard limit at start, and checked against
//! what a plan needs before any load is sent. A run that runs out anyway counts the requests it
//! could not send as `client_resources` (drover's side, never the endpoint's).

use crate::scenario::{Endpoint, HttpVersion, RunPlan};

/// Descriptors kept for everything but connections: the runtime, files written, the tokenizer,
/// stdio, the mock's listener.
pub const RESERVED_FDS: u64 = 64;

/// The soft and hard limits on open files, where the OS has them.
pub fn fd_limits() -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the struct it is given and reads nothing else.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
            return None;
        }
        // rlim_t is u64 on Linux, but not on every unix.
        #[allow(clippy::unnecessary_cast)]
        Some((limit.rlim_cur as u64, limit.rlim_max as u64))
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Raises the soft limit on open files to the hard limit; returns the limits now in force.
pub fn raise_fd_limit() -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        let (soft, hard) = fd_limits()?;
        if soft < hard {
            let raised = libc::rlimit {
                rlim_cur: hard as libc::rlim_t,
                rlim_max: hard as libc::rlim_t,
            };
            // SAFETY: setrlimit reads the struct it is given; a refusal leaves the limit as it was.
            unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) };
        }
        fd_limits()
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// The connections the whole process may hold open at once: the soft limit on open files less
/// [`RESERVED_FDS`], so that results, exports and checkpoints can always be written. A
/// connection to an embedded mock takes two slots (the mock's end is in this process too).
pub fn connection_slots() -> &'static std::sync::Arc<tokio::sync::Semaphore> {
    static SLOTS: std::sync::OnceLock<std::sync::Arc<tokio::sync::Semaphore>> =
        std::sync::OnceLock::new();
    SLOTS.get_or_init(|| {
        let soft = fd_limits().map_or(1024, |(soft, _)| soft);
        let slots = soft.saturating_sub(RESERVED_FDS).max(16);
        let slots = usize::try_from(slots)
            .unwrap_or(usize::MAX)
            .min(tokio::sync::Semaphore::MAX_PERMITS);
        std::sync::Arc::new(tokio::sync::Semaphore::new(slots))
    })
}

/// Whether an I/O error is the process (or the system) running out of file descriptors.
pub fn out_of_descriptors(error: &std::io::Error) -> bool {
    #[cfg(unix)]
    {
        matches!(error.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
    }
    #[cfg(not(unix))]
    {
        let _ = error;
        false
    }
}

/// What a plan needs at most: each target's concurrent connections (its users or in-flight cap;
/// its pool's `http2.connections` for HTTP/2, when fewer), twice over for an embedded mock, which holds the other end in the
/// same process. `None` when some target's concurrency has no bound (an open loop without
/// `max_in_flight`): its need depends on the server's speed.
pub fn fds_needed(plan: &RunPlan) -> Option<u64> {
    let concurrency = plan.load.shape.concurrency()?;
    let mut needed = RESERVED_FDS;
    for target in &plan.targets {
        let connections = if target.http == HttpVersion::Http2 {
            u64::from(target.http2.connections).min(concurrency)
        } else {
            concurrency
        };
        let ends = match target.endpoint {
            Endpoint::Mock(_) => 2,
            Endpoint::Url(_) => 1,
        };
        // A shadow pair sends to both sides at once; every target may be busy together.
        needed += connections * ends;
    }
    Some(needed)
}

/// Refuses a plan whose connections cannot fit the soft limit (after raising it): the message
/// says the numbers and how to raise the limit.
pub fn check_fds(plan: &RunPlan) -> Result<(), String> {
    let (Some(needed), Some((soft, hard))) = (fds_needed(plan), fd_limits()) else {
        return Ok(());
    };
    if needed <= soft {
        return Ok(());
    }
    let mock = plan
        .targets
        .iter()
        .any(|t| matches!(t.endpoint, Endpoint::Mock(_)));
    Err(format!(
        "this plan needs about {needed} file descriptors (up to {} concurrent connections to {} target(s){}, plus {RESERVED_FDS} for the rest) but the limit is {soft} (hard limit {hard}); {}",
        plan.load.shape.concurrency().unwrap_or(0),
        plan.targets.len(),
        if mock {
            ", counted twice for an embedded mock, which holds the server's end in this process"
        } else {
            ""
        },
        if hard > soft {
            format!("raise it with `ulimit -n {hard}` (or higher, as root)")
        } else {
            format!(
                "raise the hard limit (as root: `ulimit -Hn {needed}`, or LimitNOFILE= for a service), lower users or max_in_flight{}",
                if mock { ", or run the mock as its own process (`drover mock`)" } else { "" }
            )
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limits_are_read_and_raising_never_lowers_them() {
        let Some((soft, hard)) = fd_limits() else {
            return;
        };
        assert!(soft <= hard);
        let (raised, hard_after) = raise_fd_limit().unwrap();
        assert!(raised >= soft);
        assert_eq!(hard_after, hard);
    }

    #[test]
    fn emfile_and_enfile_are_running_out() {
        assert!(out_of_descriptors(&std::io::Error::from_raw_os_error(
            libc::EMFILE
        )));
        assert!(out_of_descriptors(&std::io::Error::from_raw_os_error(
            libc::ENFILE
        )));
        assert!(!out_of_descriptors(&std::io::Error::from_raw_os_error(
            libc::ECONNREFUSED
        )));
    }
}
