//! How many point reads (a lookup by ref or uid: a few B-tree descents) run at once on SQLite,
//! following whether their pages are in memory.
//!
//! A read whose pages are in the operating system's cache is all CPU; more of them at once than
//! there are cores only interleave them, and each one handed to an idle thread costs a wake-up
//! and a switch. A read whose page is on the disk waits (0.4 ms a page on the benchmark's
//! machine, whose kernel evicts file pages idle for a minute) and lets others run: many at once
//! keep the cores busy. So the turns are few while reads find their pages in memory, and many
//! while a share of them go to the disk; each read tells which (the blocks the reading thread
//! had to read, `getrusage`), and the turns follow the recent share.
//!
//! Measured at 100,000 entities with nine lookups in ten missing the gateway's cache, pages
//! cached: three turns against twelve took the by-name p99 from about twice the p50 to 1.3–1.4
//! times, 15–25% lower (catalog-store README). Twelve turns are what kept lookups going with the
//! file's pages dropped from memory: 1,223 lookups/s against 49 with the reads on the runtime's
//! threads.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Turns while reads wait on the disk, at least: waits overlap.
pub(crate) const WIDE: usize = 12;
/// A share of all reads: fixed point, fine enough that the moving average decays to well
/// under [`NARROW_BELOW`] (it stops falling at `1 << AVERAGE_SHIFT` of this).
const ALL: u32 = 1 << 16;
/// The share of recent reads that went to the disk above which turns widen...
const WIDEN_ABOVE: u32 = ALL / 20;
/// ...and below which they narrow again.
const NARROW_BELOW: u32 = ALL / 50;
/// Weight of the newest read in the recent share: 1/256, so that a few reads from the disk
/// (a page here and there) do not widen the turns, and a few hundred from memory narrow them
/// (tens of milliseconds under load).
const AVERAGE_SHIFT: u32 = 8;

/// Point-read turns whose number follows the disk.
#[derive(Debug)]
pub(crate) struct PointTurns {
    /// Turns while reads find their pages in memory: one per core and one more, so a read that
    /// does wait does not idle a core.
    narrow: usize,
    /// Turns while reads wait on the disk.
    wide: usize,
    semaphore: Arc<Semaphore>,
    /// Permits in circulation, held or free: the current number of turns.
    issued: AtomicUsize,
    /// Recent reads that went to the disk, a moving average in [`ALL`]ths.
    disk_share: AtomicU32,
}

impl PointTurns {
    pub(crate) fn new() -> PointTurns {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        PointTurns::with(cores + 1, WIDE.max(cores + 1))
    }

    fn with(narrow: usize, wide: usize) -> PointTurns {
        PointTurns {
            narrow,
            wide,
            semaphore: Arc::new(Semaphore::new(narrow)),
            issued: AtomicUsize::new(narrow),
            disk_share: AtomicU32::new(0),
        }
    }

    /// Waits for a turn.
    pub(crate) async fn take(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.semaphore).acquire_owned().await.ok()
    }

    /// Gives `turn` back after a read that did (or did not) go to the disk, and moves the
    /// number of turns towards what the recent reads call for.
    pub(crate) fn give_back(&self, turn: OwnedSemaphorePermit, went_to_disk: bool) {
        let share = self.record(went_to_disk);
        let issued = self.issued.load(Ordering::Acquire);
        let wanted = if share > WIDEN_ABOVE {
            self.wide
        } else if share < NARROW_BELOW {
            self.narrow
        } else {
            issued
        };
        if issued > wanted
            && self
                .issued
                .compare_exchange(issued, issued - 1, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            // One fewer: this turn is not handed on. Turns narrow as reads end.
            turn.forget();
            if issued - 1 == self.narrow {
                tracing::debug!(
                    turns = self.narrow,
                    "point reads find their pages in memory"
                );
            }
            return;
        }
        if issued < wanted
            && self
                .issued
                .compare_exchange(issued, wanted, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            tracing::debug!(
                turns = wanted,
                disk_share = f64::from(share) / f64::from(ALL),
                "point reads wait on the disk: more at once"
            );
            self.semaphore.add_permits(wanted - issued);
        }
        drop(turn);
    }

    /// The number of turns now.
    #[cfg(test)]
    fn turns(&self) -> usize {
        self.issued.load(Ordering::Acquire)
    }

    /// Adds one read to the moving average; returns the new share. Racing updates may lose
    /// one read's weight, which an average can afford.
    fn record(&self, went_to_disk: bool) -> u32 {
        let old = self.disk_share.load(Ordering::Relaxed);
        let new = old - (old >> AVERAGE_SHIFT)
            + if went_to_disk {
                ALL >> AVERAGE_SHIFT
            } else {
                0
            };
        self.disk_share.store(new, Ordering::Relaxed);
        new
    }
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
    use super::*;

    /// The benchmark machine's numbers: two cores.
    const NARROW: usize = 3;

    async fn read(turns: &PointTurns, went_to_disk: bool) {
        let turn = turns.take().await.unwrap();
        turns.give_back(turn, went_to_disk);
    }

    #[tokio::test]
    async fn turns_widen_while_reads_go_to_the_disk_and_narrow_after() {
        let turns = PointTurns::with(NARROW, WIDE);
        for _ in 0..1000 {
            read(&turns, false).await;
        }
        assert_eq!(turns.turns(), NARROW);
        // One read in a hundred waits on the disk: not enough to widen.
        for index in 0..1000 {
            read(&turns, index % 100 == 0).await;
        }
        assert_eq!(turns.turns(), NARROW);
        // One read in five.
        for index in 0..1000 {
            read(&turns, index % 5 == 0).await;
        }
        assert_eq!(turns.turns(), WIDE);
        assert_eq!(turns.semaphore.available_permits(), WIDE);
        // Back in memory: the turns shrink one per read, down to the narrow number.
        for _ in 0..1000 {
            read(&turns, false).await;
        }
        assert_eq!(turns.turns(), NARROW);
        assert_eq!(turns.semaphore.available_permits(), NARROW);
    }

    #[tokio::test]
    async fn turns_held_while_they_narrow_are_not_handed_on() {
        let turns = PointTurns::with(NARROW, WIDE);
        for index in 0..1000 {
            read(&turns, index % 2 == 0).await;
        }
        assert_eq!(turns.turns(), WIDE);
        let held: Vec<_> = futures::future::join_all((0..WIDE).map(|_| turns.take())).await;
        assert_eq!(turns.semaphore.available_permits(), 0);
        for _ in 0..2000 {
            turns.record(false);
        }
        for turn in held {
            turns.give_back(turn.unwrap(), false);
        }
        assert_eq!(turns.turns(), NARROW);
        assert_eq!(turns.semaphore.available_permits(), NARROW);
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
