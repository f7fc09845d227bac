//! The thread pool's hand-off (`t5_core::pool`), in a process of its own: no other test's job holds
//! the pool, so a job of two tasks on two threads does get a worker.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use t5_core::pool;

/// A job whose tasks the caller claims before a sleeping worker has woken is taken back from that
/// worker (the caller does not wait for it); the worker must still serve the next job. The second job's
/// two tasks wait for each other, so it finishes only if a worker takes part (a stuck worker fails
/// the wait, which panics the caller, instead of hanging).
#[test]
fn a_job_taken_back_from_a_waking_worker_leaves_it_serving() {
    for round in 0..50 {
        // longer than the idle spin: the worker is asleep when the job comes
        std::thread::sleep(Duration::from_millis(1));
        let hits = [AtomicUsize::new(0), AtomicUsize::new(0)];
        pool::run(2, 2, &|t| {
            hits[t].fetch_add(1, Ordering::Relaxed);
        });
        assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1), "round {round}");

        let started = AtomicUsize::new(0);
        pool::run(2, 2, &|_| {
            started.fetch_add(1, Ordering::SeqCst);
            let t0 = Instant::now();
            while started.load(Ordering::SeqCst) < 2 {
                assert!(t0.elapsed() < Duration::from_secs(20), "round {round}: no worker took part in the job");
                std::hint::spin_loop();
            }
        });
    }
}
