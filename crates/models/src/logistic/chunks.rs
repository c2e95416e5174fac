//! Fixed-size row chunks, worked on by up to N threads, with the results handed back in
//! chunk order.
//!
//! The chunk boundaries depend only on the number of rows ([`CHUNK_ROWS`] is a constant,
//! never derived from the thread count or the machine), and each chunk's result depends
//! only on its rows, so whichever thread computes a chunk, and however many threads run,
//! the caller sees the same values in the same order and can combine them to the same bits.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Rows per chunk: large enough that a chunk (~0.3 ms of objective work at 3 features)
/// dwarfs handing it out, small enough that two threads share a 100k-row fit evenly.
pub(super) const CHUNK_ROWS: usize = 16_384;

/// The most threads used when none are asked for: the objective is a few flops and an
/// `exp` and a `log1p` per row, so more threads than this mostly fight over memory
/// bandwidth and other work on the machine.
pub(super) const MAX_AUTO_THREADS: usize = 4;

/// The thread count for `requested` (`None`: the machine's available parallelism, at most
/// [`MAX_AUTO_THREADS`]).
pub(super) fn threads(requested: Option<usize>) -> usize {
    requested.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(MAX_AUTO_THREADS)
    })
}

/// The number of chunks `rows` rows make (the last one may be short).
pub(super) fn n_chunks(rows: usize) -> usize {
    rows.div_ceil(CHUNK_ROWS)
}

/// `work(c)` for every chunk `c` in `0..n_chunks`, on `min(threads, n_chunks)` threads
/// (the caller's among them; one chunk, or one thread, spawns nothing), in chunk order.
/// Chunks are handed out one at a time from a shared counter, so a thread slowed down by
/// other work on the machine just takes fewer of them.
pub(super) fn map_chunks<T: Send>(
    n_chunks: usize,
    threads: usize,
    work: impl Fn(usize) -> T + Sync,
) -> Vec<T> {
    let threads = threads.clamp(1, n_chunks.max(1));
    if threads == 1 {
        return (0..n_chunks).map(work).collect();
    }
    let next = AtomicUsize::new(0);
    let run = || {
        let mut done = Vec::new();
        loop {
            let c = next.fetch_add(1, Ordering::Relaxed);
            if c >= n_chunks {
                return done;
            }
            done.push((c, work(c)));
        }
    };
    let mut results: Vec<Option<T>> = (0..n_chunks).map(|_| None).collect();
    std::thread::scope(|s| {
        let helpers: Vec<_> = (1..threads).map(|_| s.spawn(run)).collect();
        let mut place = |done: Vec<(usize, T)>| {
            for (c, value) in done {
                results[c] = Some(value);
            }
        };
        place(run());
        for helper in helpers {
            place(helper.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
        }
    });
    results
        .into_iter()
        .map(|r| r.expect("every chunk was computed"))
        .collect()
}

/// `fill(c, part)` for every `part` of `out` cut into `part_len`-element pieces (chunk
/// `c`), on `min(threads, pieces)` threads (the caller's among them), as [`map_chunks`].
pub(super) fn fill_chunks<T: Send>(
    out: &mut [T],
    part_len: usize,
    threads: usize,
    fill: impl Fn(usize, &mut [T]) + Sync,
) {
    let n_parts = out.len().div_ceil(part_len.max(1));
    let threads = threads.clamp(1, n_parts.max(1));
    if threads == 1 || part_len == 0 {
        out.chunks_mut(part_len.max(1))
            .enumerate()
            .for_each(|(c, part)| fill(c, part));
        return;
    }
    let parts = Mutex::new(out.chunks_mut(part_len).enumerate());
    let run = || {
        loop {
            let next = parts.lock().unwrap_or_else(|e| e.into_inner()).next();
            match next {
                Some((c, part)) => fill(c, part),
                None => return,
            }
        }
    };
    std::thread::scope(|s| {
        let helpers: Vec<_> = (1..threads).map(|_| s.spawn(run)).collect();
        run();
        for helper in helpers {
            helper.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_chunks_returns_every_chunk_in_order_for_any_thread_count() {
        for n in [0, 1, 2, 7, 64] {
            let expected: Vec<usize> = (0..n).map(|c| c * c).collect();
            for threads in [1, 2, 3, 16] {
                assert_eq!(
                    map_chunks(n, threads, |c| c * c),
                    expected,
                    "n={n} threads={threads}"
                );
            }
        }
    }

    #[test]
    fn fill_chunks_fills_every_part_for_any_thread_count() {
        for len in [0, 1, 9, 10, 31] {
            for threads in [1, 2, 3] {
                let mut out = vec![usize::MAX; len];
                fill_chunks(&mut out, 3, threads, |c, part| {
                    part.iter_mut().enumerate().for_each(|(i, v)| *v = c * 3 + i);
                });
                assert_eq!(out, (0..len).collect::<Vec<_>>(), "len={len} threads={threads}");
            }
        }
    }

    #[test]
    fn chunk_count_depends_on_rows_only() {
        assert_eq!(n_chunks(0), 0);
        assert_eq!(n_chunks(1), 1);
        assert_eq!(n_chunks(CHUNK_ROWS), 1);
        assert_eq!(n_chunks(CHUNK_ROWS + 1), 2);
        assert!(threads(None) >= 1 && threads(None) <= MAX_AUTO_THREADS);
        assert_eq!(threads(Some(3)), 3);
    }
}
