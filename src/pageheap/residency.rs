//! What the page heap holds of the OS's memory and the rules for giving it back, as state
//! and settings (`release.rs` and `relocate.rs` apply them): the residency counts and the
//! decay, the small phase's rationed releases at free, what moving held memory cost in
//! mappings, and the hints the thread heaps read without the lock.

use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// In the small phase, a free that leaves a run of at least this many free bytes (glibc's
/// default `mmap` and trim thresholds) in a huge page gives the run's dirty pages back to the
/// OS at once, as glibc gives back a large chunk and trims its top: a small process (a forked
/// backend going idle) then holds what it would hold with glibc. Smaller free runs stay, to be
/// reused, like whole free huge pages until the decay.
pub const SMALL_RELEASE_FROM: usize = 128 << 10;

/// Those releases are rationed, so that a loop that frees and allocates the same large block
/// (or a thread heap that retires a slab and takes a new one) does not pay a system call and
/// page faults every time: a release after a span was handed out since the last one spends a
/// token, and none is made when none is left; releases in a row, as a program freeing much at
/// once makes, spend none. At most this many tokens in a burst...
pub(super) const SMALL_RELEASE_BURST: u32 = 32;

/// ...and one more per this many milliseconds.
pub(super) const SMALL_RELEASE_EVERY_MS: u32 = 10;

/// What the page heap holds of the OS's memory, and when it gives some back: the counts the
/// page heap keeps as huge pages change state (its invariants), and the decay's settings.
pub(super) struct Residency {
    /// Free huge pages kept backed however long they are free (`HUGEHEAP_RETAIN`), huge pages.
    pub(super) retain: usize,
    /// How long a free huge page beyond those stays backed (`HUGEHEAP_DECAY`), ms.
    pub(super) decay_ms: u32,
    /// When the free huge pages were last scanned for release (the backing's clock).
    pub(super) last_scan: u32,
    /// `FREE` huge pages of anonymous kind (THP or 4 KiB) that are not released.
    pub(super) free_anon_backed: usize,
    /// Anonymous huge pages holding memory (`dirty != 0`), in use or free...
    pub(super) resident: usize,
    /// ...of which `FREE`: what can be given back when a fresh page is about to be faulted in.
    pub(super) free_resident: usize,
    /// The most anonymous huge pages in use at once (`resident - free_resident`): taking fresh
    /// pages past [`limit`](Residency::limit) gives back free resident ones.
    pub(super) in_use_peak: usize,
}

impl Residency {
    /// Nothing held yet; `retain` in huge pages, `decay_ms`, the clock now.
    pub(super) fn new(retain: usize, decay_ms: u32, now: u32) -> Residency {
        Residency {
            retain,
            decay_ms,
            last_scan: now,
            free_anon_backed: 0,
            resident: 0,
            free_resident: 0,
            in_use_peak: 0,
        }
    }

    /// The resident set, in huge pages, past which a fresh page is paid for by giving back a
    /// free resident one: the most ever in use, plus a sixteenth of it (at least two), plus
    /// `retain`. Free pages are kept for reuse up to that slack (a realloc that moves, a block
    /// freed before the next one is taken: each exchange costs a fault later if the page is
    /// wanted again) and only the surplus is exchanged.
    pub(super) fn limit(&self) -> usize {
        self.in_use_peak + (self.in_use_peak / 16).max(2) + self.retain
    }
}

/// Held memory moved where it is wanted (`relocate`): what the moves cost in mappings.
#[derive(Debug, Default)]
pub(super) struct Moves {
    /// Mappings the moved pages add to the heap's own: THP neighbours whose shifts differ.
    pub(super) breaks: usize,
    /// The OS refused a move or lost a range: no more moves.
    pub(super) off: bool,
}

/// Populating ahead of use (`prefault`).
#[derive(Debug, Default)]
pub(super) struct Ahead {
    /// The page heap took fresh or populated huge pages since the helper last found nothing
    /// to populate.
    pub(super) wanted: bool,
    /// The OS refused: no more populating ahead.
    pub(super) off: bool,
}

/// The small phase's releases at free, rationed (see [`SMALL_RELEASE_BURST`]).
pub(super) struct SmallRelease {
    /// Releases at free the small phase may still make now...
    pub(super) release_tokens: u32,
    /// ...and when they were last earned.
    pub(super) tokens_at: u32,
    /// A span was handed out since the last release at free: the next release is one of a
    /// loop's, and spends a token.
    pub(super) handed_out_since_release: bool,
}

impl SmallRelease {
    /// A full burst of tokens, earned at `now`.
    pub(super) fn new(now: u32) -> SmallRelease {
        SmallRelease { release_tokens: SMALL_RELEASE_BURST, tokens_at: now, handed_out_since_release: false }
    }
}

/// The size from which a span freed in the process's heap goes back to the OS at once
/// (`usize::MAX` past the small phase or while such releases are rationed; see
/// [`SMALL_RELEASE_FROM`]): the thread heaps keep no empty slab that large, so that its pages
/// go back too. Read without the lock; a stale answer only keeps or returns one empty slab.
pub fn release_from() -> usize {
    RELEASE_FROM.load(Ordering::Relaxed)
}

pub(super) static RELEASE_FROM: AtomicUsize = AtomicUsize::new(usize::MAX);

/// Whether the process's heap is in its small phase (see `HUGEHEAP_HUGE_FROM`): the thread
/// heaps then give requests past `heap::size_class::SMALL_PHASE_SLAB_MAX` spans of their own.
/// Read without the lock; a stale answer only serves one request the other way.
pub fn small_phase() -> bool {
    SMALL_PHASE.load(Ordering::Relaxed)
}

pub(super) static SMALL_PHASE: AtomicBool = AtomicBool::new(false);
