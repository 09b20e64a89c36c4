//! Helpers shared by io-runtime's integration tests.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use rain_proto::torrent::Status;
use rain_runtime::session::Session;
use rain_runtime::storage::{Layout, Storage, StorageError, StorageLayer};

/// How long a test waits for a torrent to reach a status.
pub const WAIT: Duration = Duration::from_secs(60);

/// Polls torrent `id` until it reaches `want`, running `check` at every poll (an invariant
/// that must hold all along); fails after [`WAIT`] with where the torrent got to.
pub async fn wait_status_checking(
    s: &Session,
    id: &str,
    want: Status,
    mut check: impl AsyncFnMut(),
) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let st = s.stats(id).await.unwrap();
        if st.status == want {
            return;
        }
        check().await;
        assert!(
            tokio::time::Instant::now() < deadline,
            "{id}: still {:?} ({}/{} pieces, error {:?}) after {WAIT:?}",
            st.status,
            st.stats.pieces.have,
            st.stats.pieces.total,
            st.error
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// [`wait_status_checking`] with nothing to check.
pub async fn wait_status(s: &Session, id: &str, want: Status) {
    wait_status_checking(s, id, want, async || {}).await;
}

/// A disk that stops taking writes until [`Gate::open`]: a stalled or very slow disk (R55).
#[derive(Debug, Default)]
pub struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
    /// Writes that reached the gate (waiting or let through).
    pub writes_waiting: AtomicU64,
}

impl Gate {
    /// Lets every waiting and later write through.
    pub fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }

    fn wait(&self) {
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.opened.wait(open).unwrap();
        }
    }
}

/// Opens the gate when dropped, so a failing assertion cannot leave blocking threads (and the
/// runtime's shutdown) waiting on it forever.
pub struct OpenOnDrop(pub Arc<Gate>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

/// A storage whose writes wait at `gate`.
#[derive(Debug)]
pub struct GatedStorage {
    pub inner: Arc<dyn Storage>,
    pub gate: Arc<Gate>,
}

impl Storage for GatedStorage {
    fn layout(&self) -> &Layout {
        self.inner.layout()
    }
    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), StorageError> {
        self.inner.read(offset, buf)
    }
    fn write(&self, offset: u64, blocks: &[bytes::Bytes]) -> Result<(), StorageError> {
        self.gate.writes_waiting.fetch_add(1, Ordering::Relaxed);
        self.gate.wait();
        self.inner.write(offset, blocks)
    }
    fn flush(&self) -> Result<(), StorageError> {
        self.inner.flush()
    }
    fn exists(&self, file: usize) -> Result<bool, StorageError> {
        self.inner.exists(file)
    }
    fn allocate(&self) -> Result<(), StorageError> {
        self.inner.allocate()
    }
}

/// A session storage layer that makes every torrent's writes wait at `gate`.
pub fn gated_layer(gate: &Arc<Gate>) -> StorageLayer {
    let gate = gate.clone();
    StorageLayer::new(move |inner| {
        Arc::new(GatedStorage {
            inner,
            gate: gate.clone(),
        })
    })
}
