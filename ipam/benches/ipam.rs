//! IPAM speed and memory.
//!
//! - steady-state allocate+release on a half-full /16 and /8 (one of each per
//!   iteration, reported as operations per second),
//! - allocating a whole /16 from empty,
//! - and, printed once, the bytes a /8 costs fully allocated and as a
//!   checkerboard (every other address), both from `Pool::heap_bytes` and
//!   from a counting allocator as a cross-check.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::VecDeque;
use std::hint::black_box;
use std::net::IpAddr;
use std::sync::atomic::{AtomicIsize, Ordering};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use switchyard_ipam::{Ipam, IpamConfig, PoolId, PoolRequest};

/// The system allocator, counting live heap bytes.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn empty_ipam() -> Ipam {
    Ipam::new(IpamConfig::docker_defaults(
        "fd00:1:2::/48".parse().unwrap(),
    ))
}

fn pool(subnet: &str) -> (Ipam, PoolId) {
    let mut ipam = empty_ipam();
    let id = add_pool(&mut ipam, subnet);
    (ipam, id)
}

fn add_pool(ipam: &mut Ipam, subnet: &str) -> PoolId {
    ipam.request_pool(PoolRequest {
        owner: "bench".into(),
        subnet: Some(subnet.parse().unwrap()),
        ..PoolRequest::default()
    })
    .unwrap()
}

/// A pool with `held` addresses allocated, oldest first in the queue.
fn half_full(subnet: &str, held: usize) -> (Ipam, PoolId, VecDeque<IpAddr>) {
    let (mut ipam, id) = pool(subnet);
    let queue = (0..held)
        .map(|_| ipam.request_address(&id, None).unwrap())
        .collect();
    (ipam, id, queue)
}

fn steady_state(c: &mut Criterion) {
    let mut group = c.benchmark_group("allocate+release");
    group.throughput(Throughput::Elements(2));
    for (name, subnet, held) in [
        ("/16", "10.1.0.0/16", 32_768),
        ("/8", "10.0.0.0/8", 1 << 23),
    ] {
        let (mut ipam, id, mut queue) = half_full(subnet, held);
        group.bench_function(name, |b| {
            b.iter(|| {
                let oldest = queue.pop_front().unwrap();
                ipam.release_address(&id, oldest).unwrap();
                let fresh = ipam.request_address(&id, None).unwrap();
                queue.push_back(black_box(fresh));
            })
        });
    }
    group.finish();
}

fn fill_slash16(c: &mut Criterion) {
    let mut group = c.benchmark_group("fill");
    group.throughput(Throughput::Elements(65_533));
    group.sample_size(20);
    group.bench_function("/16 sequentially", |b| {
        b.iter_batched(
            || pool("10.1.0.0/16"),
            |(mut ipam, id)| {
                while ipam.request_address(&id, None).is_ok() {}
                ipam
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn memory_report(_: &mut Criterion) {
    let mut ipam = empty_ipam();
    // Everything counted from here on is the pool: its map entry, its
    // strings and its bitmap.
    let empty = LIVE.load(Ordering::Relaxed);
    let id = add_pool(&mut ipam, "10.0.0.0/8");
    while ipam.request_address(&id, None).is_ok() {}
    let p = ipam.pool(&id).unwrap();
    let full_heap = p.heap_bytes();
    let full_live = LIVE.load(Ordering::Relaxed) - empty;
    eprintln!(
        "memory: /8 fully allocated ({} addresses): heap_bytes {} B, counted {} B",
        p.allocated_count(),
        full_heap,
        full_live
    );

    let base = u32::from(std::net::Ipv4Addr::new(10, 0, 0, 0));
    for i in (3..(1u32 << 24) - 1).step_by(2) {
        ipam.release_address(&id, std::net::Ipv4Addr::from(base + i).into())
            .unwrap();
    }
    let p = ipam.pool(&id).unwrap();
    let checker_heap = p.heap_bytes();
    let checker_live = LIVE.load(Ordering::Relaxed) - empty;
    eprintln!(
        "memory: /8 checkerboard ({} addresses): heap_bytes {} B ({:.3} MiB), counted {} B ({:.3} MiB); raw bits alone are 2 MiB",
        p.allocated_count(),
        checker_heap,
        checker_heap as f64 / (1 << 20) as f64,
        checker_live,
        checker_live as f64 / (1 << 20) as f64
    );
    black_box(ipam);
}

criterion_group!(benches, memory_report, steady_state, fill_slash16);
criterion_main!(benches);
