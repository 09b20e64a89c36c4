//! `max-open-files` as the process's open-file limit (RLIMIT_NOFILE): every torrent keeps
//! files and sockets open, and the usual soft limit of 1024 is far below what hundreds of
//! torrents need. rain sets soft and hard limit to the value and refuses to start when it
//! cannot; we only raise the soft limit (never lower the hard one) and, when the hard limit is
//! below the setting and cannot be raised, use the hard limit and say so.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Raises the soft open-file limit to `max` (0 leaves it alone). Returns the limit in force.
pub fn apply_max_open_files(max: u64) -> u64 {
    let now = getrlimit(Resource::Nofile);
    let soft = now.current.unwrap_or(u64::MAX);
    if max == 0 || soft >= max {
        return soft;
    }
    let hard = now.maximum.unwrap_or(u64::MAX);
    let wanted = Rlimit {
        current: Some(max),
        maximum: now.maximum.map(|h| h.max(max)),
    };
    if setrlimit(Resource::Nofile, wanted).is_ok() {
        return max;
    }
    let capped = max.min(hard);
    let fallback = Rlimit {
        current: Some(capped),
        maximum: now.maximum,
    };
    match setrlimit(Resource::Nofile, fallback) {
        Ok(()) => {
            tracing::warn!(
                "max-open-files is {max} but the hard open-file limit is {hard}; using {capped}"
            );
            capped
        }
        Err(e) => {
            tracing::warn!("cannot raise the open-file limit to {max}: {e}");
            soft
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raises_the_soft_limit_up_to_the_hard_one() {
        let before = getrlimit(Resource::Nofile);
        let soft = before.current.expect("a finite soft limit");
        let hard = before.maximum.unwrap_or(u64::MAX);
        assert_eq!(apply_max_open_files(0), soft, "0 leaves the limit alone");
        assert_eq!(apply_max_open_files(soft), soft, "never lowered");
        if soft < hard {
            assert_eq!(apply_max_open_files(soft + 1), soft + 1);
            assert_eq!(getrlimit(Resource::Nofile).current, Some(soft + 1));
        }
        if hard != u64::MAX && hard < u64::MAX - 1 {
            // Above the hard limit (not root): capped at it, hard limit untouched.
            let got = apply_max_open_files(hard + 1);
            assert!(got == hard || got == hard + 1, "{got}");
            assert!(getrlimit(Resource::Nofile).maximum >= Some(hard));
        }
    }
}
