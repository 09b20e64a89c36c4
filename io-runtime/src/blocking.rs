//! Where blocking work runs: disk reads and writes, hashing, the resume database.
//!
//! Normally on tokio's blocking pool, so the torrent and peer tasks never wait on a disk. A
//! simulation runs it inline instead ([`BlockingMode::Inline`]): a pool thread finishes at a
//! real-time moment the simulator does not control, which made the order of events within a
//! simulated instant differ between two runs of one seed.

/// How blocking jobs run (`SessionConfig::blocking`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BlockingMode {
    /// On tokio's blocking thread pool.
    #[default]
    Pool,
    /// On the calling task, stalling it (and, on a single-threaded runtime, every task) until
    /// done: for deterministic simulation only.
    Inline,
}

/// A blocking job did not finish: its thread panicked, or the runtime is shutting down.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("blocking job failed: {0}")]
pub struct JobFailed(String);

impl BlockingMode {
    /// Runs `job` where this mode says.
    pub async fn run<T, F>(self, job: F) -> Result<T, JobFailed>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        match self {
            BlockingMode::Pool => tokio::task::spawn_blocking(job)
                .await
                .map_err(|e| JobFailed(e.to_string())),
            BlockingMode::Inline => Ok(job()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn both_modes_return_the_result_and_inline_runs_on_the_caller() {
        let caller = std::thread::current().id();
        let on = BlockingMode::Inline
            .run(move || std::thread::current().id())
            .await
            .unwrap();
        assert_eq!(on, caller);
        let on = BlockingMode::Pool
            .run(move || std::thread::current().id())
            .await
            .unwrap();
        assert_ne!(on, caller);
        let failed = BlockingMode::Pool.run(|| panic!("boom")).await;
        assert!(matches!(failed, Err(JobFailed(_))));
    }
}
