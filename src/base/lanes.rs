//! Work spread over lanes, one per core: households are split by a hash of
//! their id, each lane owns its part and shares nothing, so the lanes of a
//! batch (or of a pass over the whole state) run in parallel.

use futures::future::BoxFuture;

/// Runs `job` on each of `lanes` and returns the results in lane order: on
/// the process's pool of worker threads (the first on the calling thread)
/// when `parallel`, otherwise one after the other; a panic on a lane is
/// raised here. The synchronous twin of [`on_lanes`], for passes over the
/// whole state (copy, eviction, restore) and for the daily lists' writers.
pub(crate) fn each_lane<L: Send, T: Send>(
    lanes: impl Iterator<Item = L>,
    parallel: bool,
    job: impl Fn(L) -> T + Sync,
) -> Vec<T> {
    if !parallel {
        return lanes.map(job).collect();
    }
    let job = &job;
    let mut lanes = lanes;
    let first = lanes.next();
    let others: Vec<L> = lanes.collect();
    let mut out: Vec<Option<T>> = (0..others.len()).map(|_| None).collect();
    let mut head = None;
    // the pool's threads live as long as the process: a lane's share of a
    // small batch costs less than starting a thread for it would
    rayon::in_place_scope(|scope| {
        for (lane, slot) in others.into_iter().zip(out.iter_mut()) {
            scope.spawn(move |_| *slot = Some(job(lane)));
        }
        head = first.map(job);
    });
    head.into_iter().chain(out.into_iter().flatten()).collect()
}

/// Runs `job` on each of the items `0..items` with up to `workers` lanes
/// ([`each_lane`]) taking the items in turn, and returns the results in
/// item order: for work of uneven size (files to read or write).
pub(crate) fn each_in_turn<T: Send>(
    items: usize,
    workers: usize,
    job: impl Fn(usize) -> T + Sync,
) -> Vec<T> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let work = |_| {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if i >= items {
                return done;
            }
            done.push((i, job(i)));
        }
    };
    let workers = workers.clamp(1, items.max(1));
    let mut all: Vec<(usize, T)> = each_lane(0..workers, workers > 1, work)
        .into_iter()
        .flatten()
        .collect();
    all.sort_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, t)| t).collect()
}

/// Runs one job per lane and returns their results in lane order: on the
/// process's pool of worker threads (the first on the calling thread) when
/// `parallel`, otherwise one after the other.
pub(crate) async fn on_lanes<'a, T: Send + 'a>(
    jobs: Vec<BoxFuture<'a, T>>,
    parallel: bool,
) -> Vec<T> {
    if !parallel || jobs.len() < 2 {
        let mut out = Vec::with_capacity(jobs.len());
        for job in jobs {
            out.push(job.await);
        }
        return out;
    }
    // The jobs are CPU work on data the lanes own; a lane's query runs one
    // partition and spawns nothing, so each thread drives its job itself.
    // `unconstrained`: tokio's cooperative budget is only refilled by its own
    // scheduler, so under this executor an exhausted budget would spin.
    let runtime = tokio::runtime::Handle::try_current().ok();
    let drive = |job: BoxFuture<'a, T>| {
        let _entered = runtime.as_ref().map(|r| r.enter());
        futures::executor::block_on(tokio::task::unconstrained(job))
    };
    each_lane(jobs.into_iter(), true, drive)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_taken_in_turn_come_back_in_item_order() {
        // uneven work: the first items are the slowest, so later ones finish first
        let slow = |i: usize| {
            std::thread::sleep(std::time::Duration::from_millis(if i < 2 { 30 } else { 1 }));
            i * 10
        };
        assert_eq!(each_in_turn(7, 3, slow), [0, 10, 20, 30, 40, 50, 60]);
        assert_eq!(each_in_turn(3, 1, |i| i), [0, 1, 2]);
        assert!(each_in_turn(0, 4, |i| i).is_empty());
    }

    #[test]
    fn lanes_in_parallel_answer_in_lane_order_and_a_panic_reaches_the_caller() {
        // the first lane is the slowest: the others finish before it
        let work = |lane: usize| {
            std::thread::sleep(std::time::Duration::from_millis(if lane == 0 {
                30
            } else {
                1
            }));
            lane * 2
        };
        assert_eq!(each_lane(0..4, true, work), [0, 2, 4, 6]);
        assert_eq!(each_lane(0..4, false, work), [0, 2, 4, 6]);
        let jobs: Vec<BoxFuture<'_, usize>> = (0..3)
            .map(|lane| Box::pin(async move { work(2 - lane) }) as BoxFuture<'_, usize>)
            .collect();
        // as the drivers call it: from a task of tokio's
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        assert_eq!(runtime.block_on(on_lanes(jobs, true)), [4, 2, 0]);
        let panicked = std::panic::catch_unwind(|| {
            each_lane(0..3, true, |lane: usize| {
                assert!(lane != 2, "lane {lane} failed");
                lane
            })
        });
        assert!(panicked.is_err(), "a lane's panic is raised to the caller");
    }
}
