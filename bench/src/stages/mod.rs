//! The per-stage cost budget of issue 25: for one read and one modify
//! through each adapter, what each stage of the request costs in CPU time
//! and allocations, beside the raw driver's floor and the peer
//! tower-sessions-mongodb-store's equivalent (`--bin stages`).
//!
//! Each stage is measured alone, in a batch of calls on one thread (a
//! current-thread runtime, so the driver's own tasks run on it too): its
//! CPU time is this thread's (`CLOCK_THREAD_CPUTIME_ID`; the server's work
//! is in another process and not counted),
//! its allocations come from the counting allocator. A figure is the
//! fastest of the rounds (noise only ever adds time) and the fewest
//! allocations per call. The whole adapter call is measured too: what the
//! listed stages leave out of it (the operation timeout, the touch hints,
//! the adapters' glue) shows as the remainder.

pub mod actix;
pub mod ours;
pub mod peer;
pub mod table;

use std::{
    future::IntoFuture,
    hint::black_box,
    time::{Duration, Instant},
};

use tokio::runtime::Runtime;

/// What one call of a stage costs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cost {
    /// CPU time of the measuring thread per call, µs.
    pub us: f64,
    /// Allocations per call.
    pub allocations: f64,
}

impl Cost {
    /// Nothing.
    pub const ZERO: Self = Self {
        us: 0.0,
        allocations: 0.0,
    };

    /// `self` with `other` added.
    pub fn plus(self, other: Self) -> Self {
        Self {
            us: self.us + other.us,
            allocations: self.allocations + other.allocations,
        }
    }

    /// `self` less `other`, not below zero.
    pub fn minus(self, other: Self) -> Self {
        Self {
            us: (self.us - other.us).max(0.0),
            allocations: (self.allocations - other.allocations).max(0.0),
        }
    }
}

/// How many calls to measure.
#[derive(Debug, Clone, Copy)]
pub struct Meter {
    /// Batches; the best is kept.
    pub rounds: usize,
    /// Calls per batch of an in-memory stage.
    pub calls: usize,
    /// Calls per batch of a stage with a round trip.
    pub trips: usize,
}

impl Meter {
    /// The full run, or a short one (`--quick`).
    pub fn new(quick: bool) -> Self {
        if quick {
            Self {
                rounds: 2,
                calls: 50,
                trips: 10,
            }
        } else {
            Self {
                rounds: 5,
                calls: 2_000,
                trips: 300,
            }
        }
    }

    /// `stage` on inputs made by `input` outside the measured window.
    ///
    /// Calls are measured in chunks of [`CHUNK`]: each chunk's inputs are
    /// made just before it (so they are as warm in the caches as a
    /// request's own data), and what the calls return is dropped after the
    /// window, so a stage is charged with freeing what it frees itself, not
    /// its input or its result. A stage that only reads its input returns
    /// it along with its result.
    pub fn each<I, T>(&self, mut input: impl FnMut() -> I, mut stage: impl FnMut(I) -> T) -> Cost {
        self.batches(self.calls, |calls| {
            chunked(calls, &mut input, |inputs, outputs| {
                for item in inputs {
                    outputs.push(stage(black_box(item)));
                }
            })
        })
    }

    /// `stage` with no input.
    pub fn call<T>(&self, mut stage: impl FnMut() -> T) -> Cost {
        self.each(|| (), |()| stage())
    }

    /// The operation `stage` builds from an input made by `input` (outside
    /// the window), awaited on `rt`; chunked as [`each`](Self::each).
    pub fn each_async<I, F: IntoFuture>(
        &self,
        rt: &Runtime,
        mut input: impl FnMut() -> I,
        mut stage: impl FnMut(I) -> F,
    ) -> Cost {
        self.batches(self.trips, |calls| {
            chunked(calls, &mut input, |inputs, outputs| {
                for item in inputs {
                    outputs.push(rt.block_on(stage(item).into_future()));
                }
            })
        })
    }

    /// [`each_async`](Self::each_async) with no input.
    pub fn call_async<F: IntoFuture>(&self, rt: &Runtime, mut stage: impl FnMut() -> F) -> Cost {
        self.each_async(rt, || (), |()| stage())
    }

    fn batches(&self, calls: usize, mut batch: impl FnMut(usize) -> Cost) -> Cost {
        // One unmeasured batch first: connections, caches, lazy statics.
        batch(calls.div_ceil(4));
        let mut best = Cost {
            us: f64::MAX,
            allocations: f64::MAX,
        };
        for _ in 0..self.rounds {
            let cost = batch(calls);
            best.us = best.us.min(cost.us);
            best.allocations = best.allocations.min(cost.allocations);
        }
        best
    }
}

/// Calls measured together between two readings of the clock: enough to
/// make a reading's own cost (~0.2 µs) negligible per call, few enough
/// that a chunk's inputs stay in the caches.
pub const CHUNK: usize = 16;

/// `calls` calls of `run` in chunks of [`CHUNK`], each chunk's inputs made
/// before its window and its outputs dropped after it; the cost per call.
fn chunked<I, T>(
    calls: usize,
    input: &mut impl FnMut() -> I,
    mut run: impl FnMut(std::vec::IntoIter<I>, &mut Vec<T>),
) -> Cost {
    let (mut ns, mut allocations, mut done) = (0.0, 0.0, 0);
    while done < calls {
        let size = CHUNK.min(calls - done);
        let inputs: Vec<I> = (0..size).map(|_| input()).collect();
        let mut outputs = Vec::with_capacity(size);
        let window = Window::open();
        run(inputs.into_iter(), &mut outputs);
        let cost = window.close(1);
        drop(outputs);
        ns += cost.us;
        allocations += cost.allocations;
        done += size;
    }
    Cost {
        us: ns / calls.max(1) as f64,
        allocations: allocations / calls.max(1) as f64,
    }
}

/// A measured window: this thread's CPU time and allocations.
struct Window {
    cpu: Option<u64>,
    wall: Instant,
    allocated: counting_alloc::Counts,
}

impl Window {
    fn open() -> Self {
        let cpu = thread_cpu_ns();
        Self {
            cpu,
            wall: Instant::now(),
            allocated: counting_alloc::counts(),
        }
    }

    fn close(self, calls: usize) -> Cost {
        let allocated = counting_alloc::counts() - self.allocated;
        let elapsed = match (self.cpu, thread_cpu_ns()) {
            (Some(before), Some(after)) => Duration::from_nanos(after.saturating_sub(before)),
            _ => self.wall.elapsed(),
        };
        let calls = calls.max(1) as f64;
        Cost {
            us: elapsed.as_secs_f64() * 1e6 / calls,
            allocations: allocated.allocations as f64 / calls,
        }
    }
}

/// This thread's CPU time so far, in ns (`CLOCK_THREAD_CPUTIME_ID`);
/// `None` where the clock reads zero (not supported), and the windows then
/// fall back to wall-clock time.
pub fn thread_cpu_ns() -> Option<u64> {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    let ns = u64::try_from(now.tv_sec).ok()? * 1_000_000_000 + u64::try_from(now.tv_nsec).ok()?;
    (ns > 0).then_some(ns)
}

/// A current-thread runtime: the driver's tasks run on the measuring
/// thread, so their CPU time and allocations are counted with the call's.
///
/// # Errors
///
/// The runtime could not be built.
pub fn runtime() -> std::io::Result<Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}
