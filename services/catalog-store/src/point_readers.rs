//! The threads that serve point reads on SQLite (an entity by ref or uid: a few B-tree
//! descents), as many at once as the disk calls for.
//!
//! A read whose pages are in the operating system's cache is all CPU; more of them at once than
//! there are cores only interleave them. A read whose page is on the disk waits (0.4 ms a page
//! on the benchmark's machine, whose kernel evicts file pages idle for a minute) and lets others
//! run: many at once keep the cores busy. So few readers take reads while reads find their
//! pages in memory, and many while a share of them go to the disk; each read tells which (the
//! blocks the reading thread had to read, `getrusage`), and the number follows the recent share.
//!
//! Each reader is a thread of its own with a connection of its own. Readers take reads from one
//! queue, first come first served, and sleep only when it is empty: under load a read is pushed
//! and taken without waking anyone. Handing each read to tokio's blocking pool instead (a turn
//! from a semaphore, then `spawn_blocking`) woke a parked thread for every read and took the
//! pool's lock twice: at a million entities, a sixth of the store's CPU went to parking, waking
//! and switching threads (catalog-store README).
//!
//! Measured at 100,000 entities with nine lookups in ten missing the gateway's cache, pages
//! cached: three reads at once against twelve took the by-name p99 from about twice the p50 to
//! 1.3–1.4 times, 15–25% lower. Twelve are what kept lookups going with the file's pages dropped
//! from memory: 1,223 lookups/s against 49 with the reads on the runtime's threads.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use rusqlite::Connection;

use crate::{Result, StoreError};

/// Readers while reads wait on the disk, at least: waits overlap.
pub(crate) const WIDE: usize = 12;
/// A share of all reads: fixed point, fine enough that the moving average decays to well
/// under [`NARROW_BELOW`] (it stops falling at `1 << AVERAGE_SHIFT` of this).
const ALL: u32 = 1 << 16;
/// The share of recent reads that went to the disk above which more readers take reads...
const WIDEN_ABOVE: u32 = ALL / 20;
/// ...and below which fewer do again.
const NARROW_BELOW: u32 = ALL / 50;
/// Weight of the newest read in the recent share: 1/256, so that a few reads from the disk
/// (a page here and there) do not widen, and a few hundred from memory narrow again (tens of
/// milliseconds under load).
const AVERAGE_SHIFT: u32 = 8;

/// A read handed to a reader. It gets the reader's connection, or why the reader has none, and
/// answers whether the connection is fit for the next read (a connection that failed mid-way
/// is dropped rather than reused).
pub(crate) type Read = Box<dyn FnOnce(Result<&mut Connection>) -> bool + Send>;

/// Opens a reader's connection.
pub(crate) type Connect = Box<dyn Fn() -> Result<Connection> + Send + Sync>;

/// Reader threads and their queue. Dropping it stops the readers (reads still queued are
/// dropped: their askers learn it from their answer channels).
pub(crate) struct PointReaders {
    shared: Arc<Shared>,
}

struct Shared {
    queue: Mutex<Queue>,
    /// Readers that take reads wait here for one.
    work: Condvar,
    /// Readers beyond those that take reads wait here.
    parked: Condvar,
    /// How many readers take reads now: those numbered below it.
    active: AtomicUsize,
    /// Readers while reads find their pages in memory: one per core and one more, so a read
    /// that does wait does not idle a core.
    narrow: usize,
    /// Readers while reads wait on the disk.
    wide: usize,
    /// Recent reads that went to the disk, a moving average in [`ALL`]ths.
    disk_share: AtomicU32,
    connect: Connect,
}

#[derive(Default)]
struct Queue {
    reads: VecDeque<Read>,
    /// Readers waiting on `work`.
    waiting: usize,
    /// Reader threads started (numbered from 0).
    started: usize,
    closed: bool,
}

impl std::fmt::Debug for PointReaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PointReaders")
            .field("active", &self.shared.active)
            .field("wide", &self.shared.wide)
            .finish_non_exhaustive()
    }
}

impl PointReaders {
    /// Readers whose connections `connect` opens; threads start as reads need them.
    pub(crate) fn new(connect: Connect) -> PointReaders {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        PointReaders::with(cores + 1, WIDE.max(cores + 1), connect)
    }

    fn with(narrow: usize, wide: usize, connect: Connect) -> PointReaders {
        PointReaders {
            shared: Arc::new(Shared {
                queue: Mutex::new(Queue::default()),
                work: Condvar::new(),
                parked: Condvar::new(),
                active: AtomicUsize::new(narrow),
                narrow,
                wide,
                disk_share: AtomicU32::new(0),
                connect,
            }),
        }
    }

    /// Queues `read` for the next free reader.
    pub(crate) fn submit(&self, read: Read) -> Result<()> {
        let shared = &self.shared;
        let mut queue = shared.queue.lock().map_err(|_| poisoned())?;
        if queue.closed {
            return Err(StoreError::Corrupt("the SQLite readers are stopped".into()));
        }
        queue.reads.push_back(read);
        if queue.waiting > 0 {
            drop(queue);
            shared.work.notify_one();
        } else if queue.started < shared.active.load(Ordering::Acquire) {
            let number = queue.started;
            let reader = Arc::clone(shared);
            let started = std::thread::Builder::new()
                .name("store-reader".into())
                .spawn(move || reader.serve(number));
            match started {
                Ok(_) => queue.started += 1,
                // The readers running take the read in turn; with none, nobody would.
                Err(error) if queue.started == 0 => {
                    queue.reads.pop_back();
                    return Err(StoreError::Corrupt(format!(
                        "cannot start a SQLite reader: {error}"
                    )));
                }
                Err(error) => tracing::warn!(%error, "cannot start one more SQLite reader"),
            }
        }
        Ok(())
    }

    /// How many readers take reads now.
    #[cfg(test)]
    fn active(&self) -> usize {
        self.shared.active.load(Ordering::Acquire)
    }
}

impl Drop for PointReaders {
    fn drop(&mut self) {
        let reads = match self.shared.queue.lock() {
            Ok(mut queue) => {
                queue.closed = true;
                std::mem::take(&mut queue.reads)
            }
            Err(_) => VecDeque::new(),
        };
        // Outside the lock: a read's answer channel wakes its asker when dropped.
        drop(reads);
        self.shared.work.notify_all();
        self.shared.parked.notify_all();
    }
}

impl Shared {
    /// A reader's life: take reads until the readers stop.
    fn serve(&self, number: usize) {
        let mut connection: Option<Connection> = None;
        while let Some(read) = self.next(number) {
            let blocks = blocks_read_by_this_thread();
            if connection.is_none() {
                match (self.connect)() {
                    Ok(opened) => connection = Some(opened),
                    Err(error) => {
                        run(read, Err(error));
                        continue;
                    }
                }
            }
            if let Some(open) = connection.as_mut()
                && !run(read, Ok(open))
            {
                connection = None;
            }
            self.record(blocks_read_by_this_thread() > blocks);
        }
    }

    /// The next read for reader `number`: it waits while there is none, or while it is not
    /// among those that take reads. `None` once the readers stop.
    fn next(&self, number: usize) -> Option<Read> {
        let mut queue = self.queue.lock().ok()?;
        loop {
            if queue.closed {
                return None;
            }
            if number >= self.active.load(Ordering::Acquire) {
                queue = self.parked.wait(queue).ok()?;
                continue;
            }
            if let Some(read) = queue.reads.pop_front() {
                return Some(read);
            }
            queue.waiting += 1;
            queue = self.work.wait(queue).ok()?;
            queue.waiting -= 1;
            if number >= self.active.load(Ordering::Acquire) && !queue.reads.is_empty() {
                // Woken for a read, but no longer among those that take them: pass it on.
                self.work.notify_one();
            }
        }
    }

    /// Adds one read to the moving average of those that went to the disk, and moves the
    /// number of readers towards what it calls for. Racing updates may lose one read's
    /// weight, which an average can afford.
    fn record(&self, went_to_disk: bool) {
        let old = self.disk_share.load(Ordering::Relaxed);
        let share = old - (old >> AVERAGE_SHIFT)
            + if went_to_disk {
                ALL >> AVERAGE_SHIFT
            } else {
                0
            };
        self.disk_share.store(share, Ordering::Relaxed);
        let active = self.active.load(Ordering::Acquire);
        let wanted = if share > WIDEN_ABOVE {
            self.wide
        } else if share < NARROW_BELOW {
            self.narrow
        } else {
            active
        };
        if wanted == active
            || self
                .active
                .compare_exchange(active, wanted, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
        {
            return;
        }
        if wanted > active {
            tracing::debug!(
                readers = wanted,
                disk_share = f64::from(share) / f64::from(ALL),
                "point reads wait on the disk: more at once"
            );
            // Under the lock, so a reader between checking its number and waiting is not
            // missed (it holds the lock until it waits).
            drop(self.queue.lock());
            self.parked.notify_all();
        } else {
            tracing::debug!(readers = wanted, "point reads find their pages in memory");
        }
    }
}

/// Runs `read`; a read that panics leaves its reader running, without its connection.
fn run(read: Read, connection: Result<&mut Connection>) -> bool {
    catch_unwind(AssertUnwindSafe(move || read(connection))).unwrap_or(false)
}

fn poisoned() -> StoreError {
    StoreError::Corrupt("the SQLite readers' queue: a reader panicked holding it".into())
}

/// Blocks the calling thread has read from the storage so far (pages that were not in the
/// operating system's cache); 0 where the count is not kept per thread.
pub(crate) fn blocks_read_by_this_thread() -> std::ffi::c_long {
    #[cfg(target_os = "linux")]
    {
        use nix::sys::resource::{UsageWho, getrusage};
        getrusage(UsageWho::RUSAGE_THREAD).map_or(0, |usage| usage.block_reads())
    }
    #[cfg(not(target_os = "linux"))]
    {
        0
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// The benchmark machine's numbers: two cores.
    const NARROW: usize = 3;

    fn readers(connects: &Arc<AtomicUsize>) -> PointReaders {
        let connects = Arc::clone(connects);
        PointReaders::with(
            NARROW,
            WIDE,
            Box::new(move || {
                connects.fetch_add(1, Ordering::SeqCst);
                Ok(Connection::open_in_memory()?)
            }),
        )
    }

    /// Submits a read that answers `SELECT n` on its reader's connection.
    fn ask(readers: &PointReaders, n: i64) -> tokio::sync::oneshot::Receiver<Result<i64>> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        readers
            .submit(Box::new(move |connection| {
                let read = connection.and_then(|connection| {
                    Ok(connection.query_row("SELECT ?1", [n], |row| row.get(0))?)
                });
                let fit = read.is_ok();
                let _ = answer.send(read);
                fit
            }))
            .unwrap();
        answered
    }

    #[tokio::test]
    async fn every_read_is_answered_on_a_readers_own_connection() {
        let connects = Arc::new(AtomicUsize::new(0));
        let readers = readers(&connects);
        let asked: Vec<_> = (0..2_000).map(|n| ask(&readers, n)).collect();
        for (n, answered) in (0..).zip(asked) {
            assert_eq!(answered.await.unwrap().unwrap(), n);
        }
        // One connection per reader, kept from read to read.
        let opened = connects.load(Ordering::SeqCst);
        assert!((1..=NARROW).contains(&opened), "{opened} connections");
    }

    #[tokio::test]
    async fn a_read_that_panics_costs_its_connection_not_its_reader() {
        let connects = Arc::new(AtomicUsize::new(0));
        let readers = readers(&connects);
        assert_eq!(ask(&readers, 1).await.unwrap().unwrap(), 1);
        let (answer, answered) = tokio::sync::oneshot::channel::<Result<i64>>();
        readers
            .submit(Box::new(move |_| {
                let _answer = answer;
                panic!("a read that panics")
            }))
            .unwrap();
        // Its answer channel is dropped: the asker hears of it.
        assert!(answered.await.is_err());
        for n in 2..100 {
            assert_eq!(ask(&readers, n).await.unwrap().unwrap(), n);
        }
        assert!(connects.load(Ordering::SeqCst) >= 2);
    }

    #[tokio::test]
    async fn a_connection_that_cannot_open_is_the_reads_error() {
        let readers = PointReaders::with(
            NARROW,
            WIDE,
            Box::new(|| Err(StoreError::Corrupt("no such file".into()))),
        );
        let error = ask(&readers, 1).await.unwrap().unwrap_err();
        assert!(error.to_string().contains("no such file"), "{error}");
    }

    #[tokio::test]
    async fn readers_widen_while_reads_go_to_the_disk_and_narrow_after() {
        let connects = Arc::new(AtomicUsize::new(0));
        let readers = readers(&connects);
        let shared = &readers.shared;
        for _ in 0..1000 {
            shared.record(false);
        }
        assert_eq!(readers.active(), NARROW);
        // One read in a hundred waits on the disk: not enough to widen.
        for index in 0..1000 {
            shared.record(index % 100 == 0);
        }
        assert_eq!(readers.active(), NARROW);
        // One read in five.
        for index in 0..1000 {
            shared.record(index % 5 == 0);
        }
        assert_eq!(readers.active(), WIDE);
        // Reads held on every reader at once: all of them start.
        let gate = Arc::new(std::sync::Barrier::new(WIDE + 1));
        let held: Vec<_> = (0..WIDE)
            .map(|_| {
                let (answer, answered) = tokio::sync::oneshot::channel();
                let gate = Arc::clone(&gate);
                readers
                    .submit(Box::new(move |_| {
                        gate.wait();
                        let _ = answer.send(());
                        true
                    }))
                    .unwrap();
                answered
            })
            .collect();
        tokio::task::spawn_blocking(move || gate.wait())
            .await
            .unwrap();
        for answered in held {
            answered.await.unwrap();
        }
        // Back in memory: the readers beyond the narrow number park, and reads go on.
        for _ in 0..2000 {
            shared.record(false);
        }
        assert_eq!(readers.active(), NARROW);
        let asked: Vec<_> = (0..500).map(|n| ask(&readers, n)).collect();
        for (n, answered) in (0..).zip(asked) {
            assert_eq!(answered.await.unwrap().unwrap(), n);
        }
        assert_eq!(connects.load(Ordering::SeqCst), WIDE);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_thread_counts_the_blocks_it_reads_from_the_disk() {
        use std::io::Write;
        // On the repository's disk (a temporary folder may be in memory), a file whose pages
        // are then dropped from the operating system's cache: reading it must go to the disk.
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let path = dir.path().join("pages");
        let mut file = std::fs::File::create(&path).unwrap();
        file.write_all(&vec![7u8; 1 << 20]).unwrap();
        file.sync_all().unwrap();
        rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed).unwrap();
        let before = blocks_read_by_this_thread();
        assert_eq!(std::fs::read(&path).unwrap().len(), 1 << 20);
        assert!(blocks_read_by_this_thread() > before);
        // Read again, from memory: nothing more from the disk.
        let after = blocks_read_by_this_thread();
        std::fs::read(&path).unwrap();
        assert_eq!(blocks_read_by_this_thread(), after);
    }
}
