//! The CPU backend's thread pool: one process-wide set of worker threads that run the tasks of one
//! job at a time beside the calling thread.
//!
//! [`run`]`(threads, tasks, f)` calls `f(0..tasks)`, each index exactly once, on up to `threads`
//! threads (the caller is one of them) and returns when all have returned. Which thread runs which
//! index is not fixed, so callers make every task write its own part of the output, computed the
//! same way whatever the thread count: results are then bit-identical to one thread.
//!
//! Workers: natively `std::thread`s, spawned on first use (at most [`MAX_THREADS`]` - 1`). In the
//! threaded wasm build (`target_feature = "atomics"`), the host starts Web Workers / worker threads
//! that instantiate the module on the same shared memory and call [`worker_main`], which never
//! returns; elsewhere in wasm there are no workers and every job runs on the caller.
//!
//! Waiting: an idle worker spins briefly (see [`spin_for_job`]), then sleeps until its own sequence
//! number changes (`park` natively, `memory.atomic.wait32` in wasm). The caller never blocks in wasm (a browser's main thread may not
//! wait): it works on the tasks itself, then spins until the workers are done; natively it parks
//! after a short spin and each worker unparks it when done. Once every task is claimed the caller
//! takes the job back from the workers that have not started on it (still waking up), so it waits
//! only for those that took it: a worker woken late costs the caller nothing.
//!
//! One job at a time: a call made while another job runs (a task that calls [`run`], or a second
//! native thread) runs its tasks inline on its own thread.
//!
//! No locks: the registry of workers is a fixed array of slots filled in order by compare-and-swap, and
//! "a job runs" is one flag. A `std` lock that finds itself contended sleeps (`memory.atomic.wait32` in
//! wasm), which a browser's main thread may not do: a Web Worker registering itself while the page's
//! thread read the registry under a `Mutex` trapped the engine's start ("Atomics.wait cannot be called in
//! this context", seen once loading t5-v1_1-xl in Chromium).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicUsize, Ordering};
#[cfg(not(target_arch = "wasm32"))]
use std::sync::OnceLock;

/// Most threads one job uses (the caller included).
pub const MAX_THREADS: usize = 64;

type TaskFn = dyn Fn(usize) + Sync;

/// One job, on the caller's stack for the duration of [`run`].
struct Job {
    /// Lifetime erased: [`run`] does not return before every worker that took this job is done with it.
    f: *const TaskFn,
    tasks: usize,
    next: AtomicUsize,
    /// Workers that finished with this job.
    done: AtomicUsize,
    panicked: AtomicBool,
    #[cfg(not(target_arch = "wasm32"))]
    caller: std::thread::Thread,
}

impl Job {
    /// Claim and run tasks until none is left; false if one panicked.
    fn work(&self) -> bool {
        // SAFETY: `f` outlives the job (see the field).
        let f = unsafe { &*self.f };
        catch_unwind(AssertUnwindSafe(|| loop {
            let t = self.next.fetch_add(1, Ordering::Relaxed);
            if t >= self.tasks {
                break;
            }
            f(t);
        }))
        .is_ok()
    }
}

struct Worker {
    /// Bumped by the caller once per job given to this worker.
    seq: AtomicU32,
    /// The job given to this worker: taken (swapped for null) by the worker when it starts on it, or
    /// taken back by the caller once every task is claimed (the worker then never sees it).
    job: AtomicPtr<Job>,
    #[cfg(not(target_arch = "wasm32"))]
    thread: OnceLock<std::thread::Thread>,
}

/// Registered workers, in the order they registered: each slot is set once (by compare-and-swap on the
/// first empty one) and never cleared; the workers are leaked so that they are `'static`. Set slots are
/// always a prefix.
static WORKERS: [AtomicPtr<Worker>; MAX_THREADS - 1] = [const { AtomicPtr::new(std::ptr::null_mut()) }; MAX_THREADS - 1];

/// Set while a job runs.
static BUSY: AtomicBool = AtomicBool::new(false);

/// The registered workers (the first `n` at most).
fn registered(n: usize) -> impl Iterator<Item = &'static Worker> {
    set_slots(&WORKERS, n)
}

/// Add `w` to the registry; false when every slot is taken.
fn register(w: &'static Worker) -> bool {
    fill_slot(&WORKERS, w)
}

/// The set slots of `slots` (a prefix), the first `n` at most.
fn set_slots(slots: &'static [AtomicPtr<Worker>], n: usize) -> impl Iterator<Item = &'static Worker> {
    // SAFETY: a set slot holds a leaked `Worker`, never freed.
    slots.iter().take(n).map(|s| s.load(Ordering::Acquire)).take_while(|p| !p.is_null()).map(|p| unsafe { &*p })
}

/// Put `w` in the first empty slot of `slots` (compare-and-swap, so threads registering at once each get their
/// own, and the set slots stay a prefix); false when every slot is taken.
fn fill_slot(slots: &[AtomicPtr<Worker>], w: &'static Worker) -> bool {
    let ptr = w as *const Worker as *mut Worker;
    slots.iter().any(|s| match s.compare_exchange(std::ptr::null_mut(), ptr, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => true,
        Err(other) => other == ptr,
    })
}

/// [`BUSY`] while held: cleared when dropped, also when a panic unwinds through [`run`].
struct Busy;

impl Busy {
    fn take() -> Option<Busy> {
        BUSY.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).ok().map(|_| Busy)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        BUSY.store(false, Ordering::Release);
    }
}

thread_local! {
    /// Set on pool workers: a task that calls [`run`] runs its job inline.
    static IN_WORKER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Cores this process may use (native: the OS's answer; wasm: [`capacity`]).
pub fn cores() -> usize {
    #[cfg(not(target_arch = "wasm32"))]
    {
        std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_THREADS)
    }
    #[cfg(target_arch = "wasm32")]
    {
        capacity()
    }
}

/// Most threads a job can use: natively [`MAX_THREADS`] (workers are spawned on demand); in wasm
/// 1 + the workers the host started.
pub fn capacity() -> usize {
    #[cfg(not(target_arch = "wasm32"))]
    {
        MAX_THREADS
    }
    #[cfg(target_arch = "wasm32")]
    {
        1 + registered(MAX_THREADS).count()
    }
}

/// Run `f(t)` for every `t` in `0..tasks` on up to `threads` threads; see the module docs.
/// A panic in a task is raised again here after every thread has stopped.
pub fn run(threads: usize, tasks: usize, f: &(dyn Fn(usize) + Sync)) {
    let want = threads.min(tasks).min(MAX_THREADS);
    if want <= 1 || IN_WORKER.with(|w| w.get()) {
        return (0..tasks).for_each(f);
    }
    let Some(_busy) = Busy::take() else {
        return (0..tasks).for_each(f);
    };
    // natively the workers are spawned here, by the one caller that holds `BUSY`
    #[cfg(not(target_arch = "wasm32"))]
    while registered(want - 1).count() < want - 1 {
        match spawn_worker() {
            Some(w) if register(w) => {}
            _ => break,
        }
    }
    let workers: Vec<&'static Worker> = registered(want - 1).collect();
    if workers.is_empty() {
        return (0..tasks).for_each(f);
    }
    // SAFETY: only the lifetime is erased; the job is not used after the wait below.
    let f: &'static TaskFn = unsafe { std::mem::transmute::<&(dyn Fn(usize) + Sync), &'static TaskFn>(f) };
    let job = Job {
        f,
        tasks,
        next: AtomicUsize::new(0),
        done: AtomicUsize::new(0),
        panicked: AtomicBool::new(false),
        #[cfg(not(target_arch = "wasm32"))]
        caller: std::thread::current(),
    };
    let ptr = &job as *const Job as *mut Job;
    for w in &workers {
        w.job.store(ptr, Ordering::Release);
        w.seq.fetch_add(1, Ordering::Release);
        wake(w);
    }
    let ok = job.work();
    // Every task is claimed. A worker that has not taken the job yet (still waking up) has nothing
    // left to do: take the job back so that it never sees it, and wait only for those that took it
    // (they hold a pointer to it).
    let took = workers.iter().filter(|w| w.job.compare_exchange(ptr, std::ptr::null_mut(), Ordering::AcqRel, Ordering::Acquire).is_err()).count();
    let mut spins = 0u32;
    while job.done.load(Ordering::Acquire) < took {
        if WORKER_FAILED.load(Ordering::Relaxed) {
            // a wasm worker trapped (panic = abort there): it will never finish; fail, not hang
            panic!("a thread of the CPU pool stopped (it trapped); the engine cannot go on");
        }
        spins = spins.saturating_add(1);
        #[cfg(not(target_arch = "wasm32"))]
        if spins > 2000 {
            std::thread::park();
            continue;
        }
        std::hint::spin_loop();
    }
    if !ok || job.panicked.load(Ordering::Relaxed) {
        panic!("a task of a parallel CPU job panicked");
    }
}

fn wake(w: &Worker) {
    #[cfg(not(target_arch = "wasm32"))]
    if let Some(t) = w.thread.get() {
        t.unpark();
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "atomics"))]
    // SAFETY: `seq` is a live, aligned 32-bit atomic.
    unsafe {
        core::arch::wasm32::memory_atomic_notify(w.seq.as_ptr() as *mut i32, 1);
    }
    #[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
    let _ = w;
}

/// The worker loop: wait for a job, work on it, report it done; forever.
fn serve(w: &'static Worker) -> ! {
    IN_WORKER.with(|c| c.set(true));
    // 0, not the current value: a job may have been given before this thread first ran
    let mut seen = 0;
    loop {
        let mut s = w.seq.load(Ordering::Acquire);
        if s == seen {
            s = spin_for_job(w, seen);
        }
        if s == seen {
            #[cfg(not(target_arch = "wasm32"))]
            std::thread::park();
            #[cfg(all(target_arch = "wasm32", target_feature = "atomics"))]
            // SAFETY: `seq` is a live, aligned 32-bit atomic; workers may wait.
            unsafe {
                core::arch::wasm32::memory_atomic_wait32(w.seq.as_ptr() as *mut i32, s as i32, -1);
            }
            #[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
            std::hint::spin_loop();
            continue;
        }
        seen = s;
        let job = w.job.swap(std::ptr::null_mut(), Ordering::AcqRel);
        if job.is_null() {
            // taken back: the caller ran every task (or a later job was already taken)
            continue;
        }
        // SAFETY: the caller waits for `done` from every worker that took its job.
        let job = unsafe { &*job };
        if !job.work() {
            job.panicked.store(true, Ordering::Relaxed);
        }
        #[cfg(not(target_arch = "wasm32"))]
        let caller = job.caller.clone();
        // the last access to `job`: after this the caller may return and free it
        job.done.fetch_add(1, Ordering::AcqRel);
        // the caller may be parked (natively) waiting for this worker: whether it is the last one it
        // waits for is not known here (the caller counts them after its own tasks), so always wake it
        #[cfg(not(target_arch = "wasm32"))]
        caller.unpark();
    }
}

/// How long an idle worker keeps re-reading its sequence number before it sleeps. The jobs of one
/// decode step come a few to tens of microseconds apart (a norm, one token's attention, a residual
/// add between two matrix products; the host's argmax between steps); a worker that slept after
/// each job would add a wake-up (a futex wake natively, `memory.atomic.notify` in wasm: tens of
/// microseconds) to every job, a large share of a 1–3 ms t5-small step (measured in
/// docs/benchmarks.md, "Workers spin before they sleep"). After the spin the worker sleeps as
/// before, so an idle model costs nothing. Natively the spin is timed; in wasm (no clock in
/// `wasm32-unknown-unknown`'s std) it is counted: one atomic load per turn, about 1 ns each.
#[cfg(not(target_arch = "wasm32"))]
const IDLE_SPIN: std::time::Duration = std::time::Duration::from_micros(200);
#[cfg(target_arch = "wasm32")]
const IDLE_SPINS: u32 = 1 << 18;

/// Spin until `w`'s sequence number moves past `seen` or the idle spin is over; the last value read.
fn spin_for_job(w: &Worker, seen: u32) -> u32 {
    #[cfg(not(target_arch = "wasm32"))]
    let start = std::time::Instant::now();
    let mut turns = 0u32;
    loop {
        std::hint::spin_loop();
        let s = w.seq.load(Ordering::Acquire);
        if s != seen {
            return s;
        }
        turns = turns.wrapping_add(1);
        #[cfg(not(target_arch = "wasm32"))]
        if turns % 64 == 0 && start.elapsed() > IDLE_SPIN {
            return seen;
        }
        #[cfg(target_arch = "wasm32")]
        if turns >= IDLE_SPINS {
            return seen;
        }
    }
}

fn new_worker() -> &'static Worker {
    Box::leak(Box::new(Worker {
        seq: AtomicU32::new(0),
        job: AtomicPtr::new(std::ptr::null_mut()),
        #[cfg(not(target_arch = "wasm32"))]
        thread: OnceLock::new(),
    }))
}

#[cfg(not(target_arch = "wasm32"))]
fn spawn_worker() -> Option<&'static Worker> {
    let w = new_worker();
    let handle = std::thread::Builder::new().name("t5-cpu".into()).spawn(move || serve(w)).ok()?;
    let _ = w.thread.set(handle.thread().clone());
    Some(w)
}

/// Set when a wasm worker trapped ([`worker_failed`]).
static WORKER_FAILED: AtomicBool = AtomicBool::new(false);

/// Called by the host when a wasm worker's [`worker_main`] trapped: a caller waiting for it fails
/// instead of waiting forever.
pub fn worker_failed() {
    WORKER_FAILED.store(true, Ordering::Relaxed);
}

/// Entry point of a wasm worker (a Web Worker / worker thread the host started on the module's
/// shared memory): registers this thread as a pool worker and serves jobs; never returns.
#[cfg(target_arch = "wasm32")]
pub fn worker_main() -> ! {
    let w = new_worker();
    // with every slot taken (more workers than MAX_THREADS - 1) it is never given a job: it sleeps for good
    register(w);
    serve(w)
}

/// `*mut T` that tasks may share: each task writes a disjoint part (the caller's promise).
#[derive(Clone, Copy)]
pub struct SharedMut<T>(*mut T, usize);

// SAFETY: access goes through `slice`, whose contract is that tasks touch disjoint ranges.
unsafe impl<T: Send> Send for SharedMut<T> {}
unsafe impl<T: Send> Sync for SharedMut<T> {}

impl<T> SharedMut<T> {
    pub fn new(s: &mut [T]) -> Self {
        SharedMut(s.as_mut_ptr(), s.len())
    }

    /// `&mut s[off..off + len]`.
    ///
    /// # Safety
    /// No two live slices obtained from the same `SharedMut` overlap, and the original slice is
    /// not used while they live.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn slice(&self, off: usize, len: usize) -> &mut [T] {
        assert!(off + len <= self.1, "SharedMut: {off} + {len} beyond {}", self.1);
        std::slice::from_raw_parts_mut(self.0.add(off), len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Workers registering at once (wasm: each Web Worker from its own thread) each get a slot of their own, the
    /// set slots stay a prefix while they do, and a full registry refuses more, without a lock.
    #[test]
    fn workers_register_at_once_without_a_lock() {
        static SLOTS: [AtomicPtr<Worker>; 12] = [const { AtomicPtr::new(std::ptr::null_mut()) }; 12];
        let workers: Vec<&'static Worker> = (0..16).map(|_| new_worker()).collect();
        let (stop, reading) = (AtomicBool::new(false), AtomicBool::new(false));
        // the registrations start once the reader reads (on a busy machine it may be scheduled last)
        let register = |ws: &[&'static Worker]| {
            while !reading.load(Ordering::Acquire) {
                std::thread::yield_now();
            }
            ws.iter().map(|&w| fill_slot(&SLOTS, w)).collect::<Vec<_>>()
        };
        let placed = std::thread::scope(|s| {
            // a reader while they register: what it sees is always a prefix of distinct workers
            let reader = s.spawn(|| {
                let mut reads = 0u64;
                while !stop.load(Ordering::Acquire) {
                    let seen: Vec<*const Worker> = set_slots(&SLOTS, 12).map(|w| w as *const Worker).collect();
                    let mut distinct = seen.clone();
                    distinct.sort();
                    distinct.dedup();
                    assert_eq!(distinct.len(), seen.len());
                    reads += 1;
                    reading.store(true, Ordering::Release);
                }
                reads
            });
            let handles: Vec<_> = workers.chunks(4).map(|ws| s.spawn(|| register(ws))).collect();
            let placed: Vec<bool> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
            stop.store(true, Ordering::Release);
            assert!(reader.join().unwrap() > 0);
            placed
        });
        assert_eq!(placed.iter().filter(|&&p| p).count(), 12);
        let mut all: Vec<*const Worker> = set_slots(&SLOTS, 12).map(|w| w as *const Worker).collect();
        assert_eq!(all.len(), 12);
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 12, "a worker in two slots");
        // the workers that were refused are exactly those not in a slot
        for (w, p) in workers.iter().zip(&placed) {
            assert_eq!(all.contains(&(*w as *const Worker)), *p);
        }
        // a worker already in a slot is found there, not refused
        assert!(fill_slot(&SLOTS, set_slots(&SLOTS, 1).next().unwrap()));
    }

    #[test]
    fn every_task_runs_once() {
        for threads in [1, 2, 3, 8] {
            for tasks in [0, 1, 2, 7, 100] {
                let hits: Vec<AtomicUsize> = (0..tasks).map(|_| AtomicUsize::new(0)).collect();
                run(threads, tasks, &|t| {
                    hits[t].fetch_add(1, Ordering::Relaxed);
                });
                assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1), "threads {threads} tasks {tasks}");
            }
        }
    }

    /// Jobs back to back find the workers spinning; jobs after a pause longer than the idle spin find
    /// them asleep: both must run every task once (the two ways a worker picks up a job).
    #[test]
    fn jobs_reach_spinning_and_sleeping_workers() {
        for pause_us in [0u64, 1_000, 0, 5_000, 0] {
            std::thread::sleep(std::time::Duration::from_micros(pause_us));
            let hits: Vec<AtomicUsize> = (0..16).map(|_| AtomicUsize::new(0)).collect();
            run(3, 16, &|t| {
                hits[t].fetch_add(1, Ordering::Relaxed);
            });
            assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1), "after a pause of {pause_us} µs");
        }
    }

    #[test]
    fn nested_jobs_run_inline() {
        let total = AtomicUsize::new(0);
        run(4, 4, &|_| {
            run(4, 3, &|_| {
                total.fetch_add(1, Ordering::Relaxed);
            });
        });
        assert_eq!(total.load(Ordering::Relaxed), 12);
    }

    #[test]
    fn a_panicking_task_panics_the_caller_and_the_pool_survives() {
        let r = catch_unwind(|| run(3, 10, &|t| assert!(t != 5, "task 5")));
        assert!(r.is_err());
        let n = AtomicUsize::new(0);
        run(3, 10, &|_| {
            n.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(n.load(Ordering::Relaxed), 10);
    }
}
