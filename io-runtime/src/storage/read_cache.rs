//! The session-wide cache of data read from disk to serve uploads (rain's "piececache",
//! reference §6.8).
//!
//! Peers request 16 KiB blocks, usually the blocks of one piece in order, and often several
//! peers want the same piece. Reading each request from disk costs a system call per 16 KiB
//! and re-reads hot pieces; instead the cache loads `read-cache-block-size` (128 KiB) units
//! once and answers each request with a zero-copy [`Bytes::slice`] of the unit.
//!
//! - Key: the torrent (a [`TorrentKey`] handed out per torrent task), the piece index and
//!   the cache block number (`begin ÷ block_size`). A value is up to one block, clipped to the
//!   piece's end: the last block of a piece, and the blocks of a short last piece, are shorter.
//! - Capacity in bytes (`read-cache-size`); the least recently accessed block is evicted to make
//!   room, and at most [`MAX_OBJECTS`] blocks are kept whatever their size. A block larger
//!   than the whole capacity is returned but not kept.
//! - Each block expires `read-cache-ttl` after its last access. Expired blocks are never
//!   served; a background sweeper frees them even when no request comes.
//! - Concurrent requests for one block load it once (single flight), and at most
//!   `parallel-reads` loads run at a time, session-wide.
//! - A torrent's blocks are dropped when its data may have changed (re-verification) and when
//!   its task ends (the torrent was removed); a load still in flight then is answered but not
//!   kept, so stale data is never served to a later request.
//!
//! Time is tokio's clock ([`tokio::time::Instant`]), which the simulator controls.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rain_proto::speed::Meter;
use rain_proto::torrent::DiskError;
use tokio::sync::{Notify, OnceCell, Semaphore};
use tokio::time::Instant;

/// Smallest cache block: one 16 KiB request then never spans more than two blocks.
pub const MIN_BLOCK_SIZE: u32 = 16 * 1024;
/// Largest cache block, so one load stays a bounded amount of memory and disk time.
pub const MAX_BLOCK_SIZE: u32 = 16 * 1024 * 1024;
/// Most blocks kept at once, whatever their size: tiny pieces must not make the index grow
/// without bound inside the byte capacity.
pub const MAX_OBJECTS: usize = 65_536;
/// Most loads running at once, whatever `parallel-reads` says.
pub const MAX_PARALLEL_READS: usize = 1024;
/// The sweeper wakes this long after the oldest block expires, to free a batch per wake-up.
const SWEEP_SLACK: Duration = Duration::from_secs(1);

/// The cache's settings (rain's `read-cache-*` keys and `parallel-reads`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadCacheConfig {
    /// `read-cache-size`: bytes kept at most; 0 keeps nothing (every read loads).
    pub capacity: u64,
    /// `read-cache-block-size`: the unit loaded from disk, clamped to
    /// [`MIN_BLOCK_SIZE`]..=[`MAX_BLOCK_SIZE`].
    pub block_size: u32,
    /// `read-cache-ttl`: a block not accessed for this long is dropped.
    pub ttl: Duration,
    /// `parallel-reads`: loads running at once, session-wide (at least 1, at most
    /// [`MAX_PARALLEL_READS`]).
    pub parallel_reads: usize,
}

impl Default for ReadCacheConfig {
    /// rain's defaults: 256 MiB of 128 KiB blocks, one minute, one load at a time.
    fn default() -> Self {
        ReadCacheConfig {
            capacity: 256 * 1024 * 1024,
            block_size: 128 * 1024,
            ttl: Duration::from_secs(60),
            parallel_reads: 1,
        }
    }
}

/// Identifies one torrent's blocks in the cache. Each torrent task registers afresh, so a
/// removed torrent's blocks can never be confused with those of a later torrent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TorrentKey(u64);

/// One cached unit. Ordered torrent-first so a torrent's blocks are one range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct BlockKey {
    torrent: TorrentKey,
    piece: u32,
    block: u32,
}

/// What the session reports about the cache (rain's `ReadCache*`, `Reads*`, `*Read` stats).
/// Rates are 1-minute EWMAs like every rain rate ([`rain_proto::speed::Meter`]); they move
/// every 5 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReadCacheStats {
    /// Blocks held.
    pub objects: usize,
    /// Bytes held.
    pub bytes: u64,
    /// Hit ratio in percent (0–100): the 1-minute rate of requests answered from memory over
    /// the rate of all requests (rain's `ReadCacheUtilization`). 0 when there were none.
    pub utilization: u32,
    /// Disk loads per second.
    pub loads_per_second: u64,
    /// Bytes loaded from disk per second.
    pub load_speed: u64,
    /// Bytes loaded from disk since the session started.
    pub bytes_loaded: u64,
    /// Loads running now.
    pub loads_active: usize,
    /// Loads waiting for a `parallel-reads` permit.
    pub loads_pending: usize,
}

/// A block being loaded: every request for it waits on the same cell. `id` tells the load
/// that registered it from a later one for the same key (after a purge).
#[derive(Debug)]
struct Flight {
    id: u64,
    cell: Arc<OnceCell<Result<Bytes, DiskError>>>,
}

#[derive(Debug)]
struct Entry {
    data: Bytes,
    /// Last access; the block expires `ttl` later.
    used: Instant,
    /// Position in `lru`.
    tick: u64,
}

#[derive(Debug)]
struct Meters {
    hits: Meter,
    misses: Meter,
    loads: Meter,
    loaded: Meter,
}

#[derive(Debug)]
struct Inner {
    entries: BTreeMap<BlockKey, Entry>,
    /// Access tick → key, least recently used first. Access times grow with the tick and
    /// every block has the same TTL, so this is also expiry order.
    lru: BTreeMap<u64, BlockKey>,
    tick: u64,
    bytes: u64,
    flights: BTreeMap<BlockKey, Flight>,
    next_flight: u64,
    /// Torrents whose loads may be kept (registered and not yet unregistered).
    live: BTreeSet<TorrentKey>,
    meters: Meters,
}

impl Inner {
    fn remove(&mut self, key: &BlockKey) {
        if let Some(e) = self.entries.remove(key) {
            self.lru.remove(&e.tick);
            self.bytes -= e.data.len() as u64;
        }
    }

    /// Drops the least recently used block; false if there was none.
    fn evict_oldest(&mut self) -> bool {
        let Some((_, key)) = self.lru.pop_first() else {
            return false;
        };
        if let Some(e) = self.entries.remove(&key) {
            self.bytes -= e.data.len() as u64;
        }
        true
    }

    /// Drops the blocks idle for `ttl` or longer at `now`.
    fn expire(&mut self, now: Instant, ttl: Duration) {
        while let Some((_, key)) = self.lru.first_key_value() {
            let expired = self
                .entries
                .get(key)
                .is_none_or(|e| now.saturating_duration_since(e.used) >= ttl);
            if !expired || !self.evict_oldest() {
                return;
            }
        }
    }

    /// When the least recently used block expires.
    fn next_expiry(&self, ttl: Duration) -> Option<Instant> {
        let (_, key) = self.lru.first_key_value()?;
        self.entries.get(key).map(|e| e.used + ttl)
    }

    /// The block under `key`, marked as used at `now`.
    fn touch(&mut self, key: &BlockKey, now: Instant) -> Option<Bytes> {
        self.tick += 1;
        let tick = self.tick;
        let e = self.entries.get_mut(key)?;
        let old = std::mem::replace(&mut e.tick, tick);
        e.used = now;
        let data = e.data.clone();
        self.lru.remove(&old);
        self.lru.insert(tick, *key);
        Some(data)
    }

    /// Keeps `data` under `key`, evicting the least recently used blocks to make room. True
    /// if the cache was empty before (the sweeper sleeps then).
    fn insert(&mut self, key: BlockKey, data: Bytes, now: Instant, capacity: u64) -> bool {
        let len = data.len() as u64;
        if len > capacity {
            return false;
        }
        self.remove(&key);
        while (self.bytes + len > capacity || self.entries.len() >= MAX_OBJECTS)
            && self.evict_oldest()
        {}
        let was_empty = self.entries.is_empty();
        self.tick += 1;
        self.lru.insert(self.tick, key);
        self.entries.insert(
            key,
            Entry {
                data,
                used: now,
                tick: self.tick,
            },
        );
        self.bytes += len;
        was_empty
    }

    fn purge(&mut self, torrent: TorrentKey) {
        let range = BlockKey {
            torrent,
            piece: 0,
            block: 0,
        }..=BlockKey {
            torrent,
            piece: u32::MAX,
            block: u32::MAX,
        };
        let doomed: Vec<BlockKey> = self.entries.range(range.clone()).map(|(k, _)| *k).collect();
        for k in &doomed {
            self.remove(k);
        }
        // Loads in flight still answer their waiters but are no longer kept: their data may
        // predate the change that caused the purge.
        let flights: Vec<BlockKey> = self.flights.range(range).map(|(k, _)| *k).collect();
        for k in &flights {
            self.flights.remove(k);
        }
    }
}

/// Counts itself in a gauge while alive, so a cancelled load cannot leave the count wrong.
struct Gauge<'a>(&'a AtomicUsize);

impl<'a> Gauge<'a> {
    fn new(g: &'a AtomicUsize) -> Self {
        g.fetch_add(1, Ordering::Relaxed);
        Gauge(g)
    }
}

impl Drop for Gauge<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The session-wide upload read cache. Create it with [`ReadCache::new`]; each torrent takes
/// a [`ReadCacheHandle`] with [`ReadCache::register`].
#[derive(Debug)]
pub struct ReadCache {
    capacity: u64,
    block_size: u32,
    ttl: Duration,
    inner: Mutex<Inner>,
    /// `parallel-reads` permits.
    reads: Semaphore,
    active: AtomicUsize,
    pending: AtomicUsize,
    next_torrent: AtomicU64,
    /// Origin of the meters' clock.
    epoch: Instant,
    /// Wakes the sweeper when the first block arrives in an empty cache.
    wake: Arc<Notify>,
    sweeper: std::sync::OnceLock<tokio::task::AbortHandle>,
}

impl Drop for ReadCache {
    fn drop(&mut self) {
        if let Some(s) = self.sweeper.get() {
            s.abort();
        }
    }
}

impl ReadCache {
    /// A cache with `config`. Inside a tokio runtime it also starts the sweeper that frees
    /// expired blocks; outside one, expired blocks are freed on the next access instead.
    pub fn new(config: ReadCacheConfig) -> Arc<Self> {
        let epoch = Instant::now();
        let zero = rain_proto::time::Instant::ZERO;
        let wake = Arc::new(Notify::new());
        let cache = Arc::new(ReadCache {
            capacity: config.capacity,
            block_size: config.block_size.clamp(MIN_BLOCK_SIZE, MAX_BLOCK_SIZE),
            ttl: config.ttl,
            inner: Mutex::new(Inner {
                entries: BTreeMap::new(),
                lru: BTreeMap::new(),
                tick: 0,
                bytes: 0,
                flights: BTreeMap::new(),
                next_flight: 0,
                live: BTreeSet::new(),
                meters: Meters {
                    hits: Meter::new(zero),
                    misses: Meter::new(zero),
                    loads: Meter::new(zero),
                    loaded: Meter::new(zero),
                },
            }),
            reads: Semaphore::new(config.parallel_reads.clamp(1, MAX_PARALLEL_READS)),
            active: AtomicUsize::new(0),
            pending: AtomicUsize::new(0),
            next_torrent: AtomicU64::new(0),
            epoch,
            wake,
            sweeper: std::sync::OnceLock::new(),
        });
        // Spawned once the cache exists: the sweeper holds only a weak reference to it.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let task = rt.spawn(sweep(Arc::downgrade(&cache), cache.wake.clone()));
            let _ = cache.sweeper.set(task.abort_handle());
        }
        cache
    }

    /// The unit loaded from disk (the configured block size after clamping).
    pub fn block_size(&self) -> u32 {
        self.block_size
    }

    /// A new torrent's handle. Dropping it drops the torrent's blocks.
    pub fn register(self: &Arc<Self>) -> ReadCacheHandle {
        let key = TorrentKey(self.next_torrent.fetch_add(1, Ordering::Relaxed));
        self.lock().live.insert(key);
        ReadCacheHandle {
            cache: self.clone(),
            key,
        }
    }

    /// Drops every block of `torrent` and stops keeping its loads in flight.
    pub fn purge(&self, torrent: TorrentKey) {
        self.lock().purge(torrent);
    }

    fn unregister(&self, torrent: TorrentKey) {
        let mut inner = self.lock();
        inner.live.remove(&torrent);
        inner.purge(torrent);
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every mutation is complete before the guard drops, so a panicked holder leaves the
        // cache consistent.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn meter_now(&self, now: Instant) -> rain_proto::time::Instant {
        rain_proto::time::Instant::from_nanos(
            now.saturating_duration_since(self.epoch).as_nanos() as u64
        )
    }

    /// The `len` bytes at `begin` in piece `piece` (of `piece_len` bytes) of `torrent`. Each
    /// cache block the range touches is taken from memory or loaded with
    /// `load(block_begin, block_len)` (offsets within the piece); a range inside one block (the
    /// usual case) is a slice of it, one spanning blocks is copied together.
    pub async fn read<F, Fut>(
        &self,
        torrent: TorrentKey,
        piece: u32,
        piece_len: u32,
        begin: u32,
        len: u32,
        load: F,
    ) -> Result<Bytes, DiskError>
    where
        F: Fn(u32, u32) -> Fut,
        Fut: Future<Output = Result<Bytes, DiskError>>,
    {
        let end = begin
            .checked_add(len)
            .filter(|&e| e <= piece_len)
            .ok_or(DiskError(std::io::ErrorKind::InvalidInput))?;
        if len == 0 {
            return Ok(Bytes::new());
        }
        let bs = self.block_size;
        let (first, last) = (begin / bs, (end - 1) / bs);
        let mut parts = Vec::with_capacity((last - first + 1) as usize);
        for block in first..=last {
            let block_begin = block * bs;
            let block_len = (piece_len - block_begin).min(bs);
            let key = BlockKey {
                torrent,
                piece,
                block,
            };
            let data = self
                .get(key, block_len, || load(block_begin, block_len))
                .await?;
            let from = begin.max(block_begin) - block_begin;
            let to = end.min(block_begin + block_len) - block_begin;
            parts.push(data.slice(from as usize..to as usize));
        }
        if parts.len() == 1 {
            return Ok(parts.swap_remove(0));
        }
        let mut out = BytesMut::with_capacity(len as usize);
        for p in &parts {
            out.extend_from_slice(p);
        }
        Ok(out.freeze())
    }

    /// The block under `key`, `len` bytes long, from memory or loaded once by `load` however
    /// many requests wait for it.
    async fn get<F, Fut>(&self, key: BlockKey, len: u32, load: F) -> Result<Bytes, DiskError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Bytes, DiskError>>,
    {
        let (id, cell) = {
            let mut inner = self.lock();
            let now = Instant::now();
            let at = self.meter_now(now);
            inner.expire(now, self.ttl);
            if let Some(data) = inner.touch(&key, now) {
                inner.meters.hits.add(at, 1);
                return Ok(data);
            }
            inner.meters.misses.add(at, 1);
            if let Some(f) = inner.flights.get(&key) {
                (f.id, f.cell.clone())
            } else {
                inner.next_flight += 1;
                let id = inner.next_flight;
                let cell = Arc::new(OnceCell::new());
                inner.flights.insert(
                    key,
                    Flight {
                        id,
                        cell: cell.clone(),
                    },
                );
                (id, cell)
            }
        };
        // If the waiter running the load is cancelled, the next waiter runs its own `load`.
        let result = cell.get_or_init(|| self.load(len, load)).await.clone();
        // The first waiter to get here retires the flight and keeps the block, unless the
        // torrent was purged meanwhile (then the flight is gone or is a newer one).
        let mut inner = self.lock();
        if inner.flights.get(&key).is_some_and(|f| f.id == id) {
            inner.flights.remove(&key);
            if let Ok(data) = &result
                && inner.live.contains(&key.torrent)
                && inner.insert(key, data.clone(), Instant::now(), self.capacity)
            {
                self.wake.notify_one();
            }
        }
        result
    }

    /// Runs one load under a `parallel-reads` permit.
    async fn load<F, Fut>(&self, len: u32, load: F) -> Result<Bytes, DiskError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Bytes, DiskError>>,
    {
        let permit = {
            let _pending = Gauge::new(&self.pending);
            self.reads.acquire().await
        };
        let Ok(_permit) = permit else {
            return Err(DiskError(std::io::ErrorKind::Interrupted));
        };
        let data = {
            let _active = Gauge::new(&self.active);
            load().await?
        };
        if data.len() != len as usize {
            return Err(DiskError(std::io::ErrorKind::UnexpectedEof));
        }
        let mut inner = self.lock();
        let at = self.meter_now(Instant::now());
        inner.meters.loads.add(at, 1);
        inner.meters.loaded.add(at, u64::from(len));
        Ok(data)
    }

    /// Drops expired blocks; returns when the next one expires.
    fn sweep(&self) -> Option<Instant> {
        let mut inner = self.lock();
        inner.expire(Instant::now(), self.ttl);
        inner.next_expiry(self.ttl)
    }

    /// The current statistics (expired blocks are dropped first, so they do not count).
    pub fn stats(&self) -> ReadCacheStats {
        let mut inner = self.lock();
        let now = Instant::now();
        inner.expire(now, self.ttl);
        let at = self.meter_now(now);
        let m = &mut inner.meters;
        for meter in [&mut m.hits, &mut m.misses, &mut m.loads, &mut m.loaded] {
            meter.handle_timeout(at);
        }
        let (hits, misses) = (m.hits.rate(), m.misses.rate());
        let utilization = if hits + misses > 0.0 {
            (100.0 * hits / (hits + misses)).round().clamp(0.0, 100.0) as u32
        } else {
            0
        };
        ReadCacheStats {
            objects: inner.entries.len(),
            bytes: inner.bytes,
            utilization,
            loads_per_second: inner.meters.loads.rate_u64(),
            load_speed: inner.meters.loaded.rate_u64(),
            bytes_loaded: inner.meters.loaded.total(),
            loads_active: self.active.load(Ordering::Relaxed),
            loads_pending: self.pending.load(Ordering::Relaxed),
        }
    }
}

/// Frees expired blocks while the cache lives: sleeps until the oldest block expires, or
/// until a block arrives in an empty cache.
async fn sweep(cache: Weak<ReadCache>, wake: Arc<Notify>) {
    loop {
        let next = match cache.upgrade() {
            Some(c) => c.sweep(),
            None => return,
        };
        match next {
            Some(at) => tokio::time::sleep_until(at + SWEEP_SLACK).await,
            None => wake.notified().await,
        }
    }
}

/// One torrent's use of the [`ReadCache`]. Dropping it (the torrent task ended: the torrent
/// was removed or the session closed) drops the torrent's blocks.
#[derive(Debug)]
pub struct ReadCacheHandle {
    cache: Arc<ReadCache>,
    key: TorrentKey,
}

impl ReadCacheHandle {
    /// The session's cache.
    pub fn cache(&self) -> &Arc<ReadCache> {
        &self.cache
    }

    /// This torrent's key in it.
    pub fn key(&self) -> TorrentKey {
        self.key
    }

    /// Drops the torrent's blocks: its data may have changed (it is being re-verified).
    pub fn purge(&self) {
        self.cache.purge(self.key);
    }
}

impl Drop for ReadCacheHandle {
    fn drop(&mut self) {
        self.cache.unregister(self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BS: u32 = MIN_BLOCK_SIZE;

    fn cache(capacity: u64, ttl: Duration) -> Arc<ReadCache> {
        ReadCache::new(ReadCacheConfig {
            capacity,
            block_size: BS,
            ttl,
            parallel_reads: 1,
        })
    }

    /// Byte `i` of piece `piece` as the fake disk holds it.
    fn byte(piece: u32, at: u32) -> u8 {
        (piece.wrapping_mul(31).wrapping_add(at) % 251) as u8
    }

    fn disk(piece: u32, begin: u32, len: u32) -> Bytes {
        (begin..begin + len).map(|i| byte(piece, i)).collect()
    }

    /// A loader over the fake disk that counts its calls and records what it was asked.
    #[derive(Clone, Default)]
    struct Loader {
        calls: Arc<Mutex<Vec<(u32, u32)>>>,
    }

    impl Loader {
        fn calls(&self) -> Vec<(u32, u32)> {
            self.calls.lock().unwrap().clone()
        }

        async fn read(
            &self,
            cache: &ReadCache,
            t: TorrentKey,
            piece: u32,
            piece_len: u32,
            begin: u32,
            len: u32,
        ) -> Result<Bytes, DiskError> {
            cache
                .read(t, piece, piece_len, begin, len, |b, l| {
                    self.calls.lock().unwrap().push((b, l));
                    async move { Ok(disk(piece, b, l)) }
                })
                .await
        }
    }

    const PIECE: u32 = 4 * BS;

    #[tokio::test(start_paused = true)]
    async fn a_loaded_block_is_served_from_memory() {
        let c = cache(1 << 20, Duration::from_secs(60));
        let h = c.register();
        let l = Loader::default();
        let first = l.read(&c, h.key(), 3, PIECE, 0, 1000).await.unwrap();
        let second = l.read(&c, h.key(), 3, PIECE, 1000, 2000).await.unwrap();
        assert_eq!(first, disk(3, 0, 1000));
        assert_eq!(second, disk(3, 1000, 2000));
        assert_eq!(l.calls(), vec![(0, BS)], "one load of the whole block");
        let s = c.stats();
        assert_eq!((s.objects, s.bytes), (1, u64::from(BS)));
        assert_eq!(s.bytes_loaded, u64::from(BS));
    }

    #[tokio::test(start_paused = true)]
    async fn the_least_recently_used_block_is_evicted() {
        let c = cache(2 * u64::from(BS), Duration::from_secs(60));
        let h = c.register();
        let t = h.key();
        let l = Loader::default();
        l.read(&c, t, 0, PIECE, 0, 10).await.unwrap(); // A
        l.read(&c, t, 0, PIECE, BS, 10).await.unwrap(); // B
        l.read(&c, t, 0, PIECE, 0, 10).await.unwrap(); // A again: B is now the oldest
        l.read(&c, t, 0, PIECE, 2 * BS, 10).await.unwrap(); // C evicts B
        assert_eq!(c.stats().objects, 2);
        l.read(&c, t, 0, PIECE, 0, 10).await.unwrap(); // A: still cached
        assert_eq!(l.calls(), vec![(0, BS), (BS, BS), (2 * BS, BS)]);
        l.read(&c, t, 0, PIECE, BS, 10).await.unwrap(); // B: loaded again
        assert_eq!(l.calls().len(), 4);
        assert!(c.stats().bytes <= 2 * u64::from(BS));
    }

    #[tokio::test(start_paused = true)]
    async fn a_block_expires_ttl_after_its_last_access() {
        let ttl = Duration::from_secs(60);
        let c = cache(1 << 20, ttl);
        let h = c.register();
        let l = Loader::default();
        l.read(&c, h.key(), 0, PIECE, 0, 10).await.unwrap();
        tokio::time::advance(Duration::from_secs(59)).await;
        l.read(&c, h.key(), 0, PIECE, 0, 10).await.unwrap();
        tokio::time::advance(Duration::from_secs(59)).await;
        l.read(&c, h.key(), 0, PIECE, 0, 10).await.unwrap();
        assert_eq!(l.calls().len(), 1, "each access renews the lease");
        tokio::time::advance(ttl).await;
        l.read(&c, h.key(), 0, PIECE, 0, 10).await.unwrap();
        assert_eq!(l.calls().len(), 2, "expired: loaded again");

        // The sweeper frees an expired block without any access.
        tokio::time::advance(ttl + SWEEP_SLACK).await;
        tokio::task::yield_now().await;
        assert!(c.lock().entries.is_empty());
        assert_eq!(c.lock().bytes, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_block_larger_than_the_cache_is_returned_but_not_kept() {
        let c = cache(u64::from(BS) - 1, Duration::from_secs(60));
        let h = c.register();
        let l = Loader::default();
        for _ in 0..2 {
            let got = l.read(&c, h.key(), 1, PIECE, 100, 500).await.unwrap();
            assert_eq!(got, disk(1, 100, 500));
        }
        assert_eq!(l.calls().len(), 2);
        assert_eq!(c.stats().objects, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_requests_for_one_block_load_it_once() {
        let c = cache(1 << 20, Duration::from_secs(60));
        let h = c.register();
        let t = h.key();
        let loads = Arc::new(AtomicUsize::new(0));
        let mut set = tokio::task::JoinSet::new();
        for i in 0..8u32 {
            let c = c.clone();
            let loads = loads.clone();
            set.spawn(async move {
                c.read(t, 0, PIECE, i * 100, 100, |b, l| {
                    loads.fetch_add(1, Ordering::Relaxed);
                    async move {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok(disk(0, b, l))
                    }
                })
                .await
                .map(|d| (i, d))
            });
        }
        while let Some(r) = set.join_next().await {
            let (i, data) = r.unwrap().unwrap();
            assert_eq!(data, disk(0, i * 100, 100));
        }
        assert_eq!(loads.load(Ordering::Relaxed), 1);
        assert_eq!(c.stats().objects, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn loads_run_at_most_parallel_reads_at_a_time() {
        let c = cache(1 << 20, Duration::from_secs(60));
        let h = c.register();
        let t = h.key();
        let (now, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let mut set = tokio::task::JoinSet::new();
        for piece in 0..4 {
            let (c, now, peak) = (c.clone(), now.clone(), peak.clone());
            set.spawn(async move {
                c.read(t, piece, PIECE, 0, 10, |b, l| {
                    let (now, peak) = (now.clone(), peak.clone());
                    async move {
                        let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(n, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        now.fetch_sub(1, Ordering::SeqCst);
                        Ok(disk(piece, b, l))
                    }
                })
                .await
            });
        }
        while let Some(r) = set.join_next().await {
            r.unwrap().unwrap();
        }
        assert_eq!(peak.load(Ordering::SeqCst), 1);
        assert_eq!(c.stats().objects, 4);
    }

    #[tokio::test(start_paused = true)]
    async fn purging_a_torrent_drops_only_its_blocks_and_its_loads_in_flight() {
        let c = cache(1 << 20, Duration::from_secs(60));
        let (h1, h2) = (c.register(), c.register());
        let l = Loader::default();
        l.read(&c, h1.key(), 0, PIECE, 0, 10).await.unwrap();
        l.read(&c, h2.key(), 0, PIECE, 0, 10).await.unwrap();
        h1.purge();
        assert_eq!(c.stats().objects, 1);
        l.read(&c, h2.key(), 0, PIECE, 0, 10).await.unwrap();
        assert_eq!(l.calls().len(), 2, "the other torrent's block stays");
        l.read(&c, h1.key(), 0, PIECE, 0, 10).await.unwrap();
        assert_eq!(l.calls().len(), 3, "the purged torrent loads again");

        // A load that was running when the purge came is answered but not kept.
        let (go, wait) = tokio::sync::oneshot::channel::<()>();
        let wait = Mutex::new(Some(wait));
        let t1 = h1.key();
        let c2 = c.clone();
        let reading = tokio::spawn(async move {
            c2.read(t1, 1, PIECE, 0, 10, |b, l| {
                let w = wait.lock().unwrap().take();
                async move {
                    if let Some(w) = w {
                        let _ = w.await;
                    }
                    Ok(disk(1, b, l))
                }
            })
            .await
        });
        tokio::task::yield_now().await;
        h1.purge();
        go.send(()).unwrap();
        assert_eq!(reading.await.unwrap().unwrap(), disk(1, 0, 10));
        assert!(!c.lock().entries.keys().any(|k| k.piece == 1));

        // Dropping the handle (the torrent was removed) drops its blocks for good.
        drop(h1);
        let s = c.stats();
        assert_eq!((s.objects, s.bytes), (1, u64::from(BS)));
        drop(h2);
        assert_eq!(c.stats().objects, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn blocks_are_clipped_to_the_piece_and_requests_may_span_two() {
        let c = cache(1 << 20, Duration::from_secs(60));
        let h = c.register();
        let l = Loader::default();
        let plen = 2 * BS + 7000; // a short last block
        let got = l
            .read(&c, h.key(), 5, plen, 2 * BS + 10, 6990)
            .await
            .unwrap();
        assert_eq!(got, disk(5, 2 * BS + 10, 6990));
        assert_eq!(l.calls(), vec![(2 * BS, 7000)]);
        assert_eq!(c.stats().bytes, 7000);

        // An unaligned request crossing a block boundary: both blocks, joined.
        let got = l.read(&c, h.key(), 5, plen, BS - 100, 16384).await.unwrap();
        assert_eq!(got, disk(5, BS - 100, 16384));
        assert_eq!(l.calls()[1..], [(0, BS), (BS, BS)]);

        // Outside the piece: refused without a load.
        let err = l.read(&c, h.key(), 5, plen, plen - 10, 11).await;
        assert_eq!(err, Err(DiskError(std::io::ErrorKind::InvalidInput)));
        assert_eq!(l.calls().len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_short_or_failed_load_is_an_error_and_is_not_kept() {
        let c = cache(1 << 20, Duration::from_secs(60));
        let h = c.register();
        let short = c
            .read(h.key(), 0, PIECE, 0, 10, |_, _| async {
                Ok(Bytes::from_static(b"short"))
            })
            .await;
        assert_eq!(short, Err(DiskError(std::io::ErrorKind::UnexpectedEof)));
        let failed = c
            .read(h.key(), 0, PIECE, 0, 10, |_, _| async {
                Err(DiskError(std::io::ErrorKind::NotFound))
            })
            .await;
        assert_eq!(failed, Err(DiskError(std::io::ErrorKind::NotFound)));
        assert_eq!(c.stats().objects, 0);
        assert!(c.lock().flights.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn utilization_is_the_hit_ratio_of_the_last_minute() {
        let c = cache(1 << 20, Duration::from_secs(600));
        let h = c.register();
        let l = Loader::default();
        assert_eq!(c.stats().utilization, 0, "no requests yet");
        for _ in 0..4 {
            l.read(&c, h.key(), 0, PIECE, 0, 10).await.unwrap(); // 1 miss, 3 hits
        }
        tokio::time::advance(rain_proto::speed::TICK).await;
        let s = c.stats();
        assert_eq!(s.utilization, 75);
        assert!(s.loads_per_second == 0, "0.2 loads/s rounds to 0");
        assert_eq!(s.load_speed, (f64::from(BS) / 5.0).round() as u64);
    }
}
