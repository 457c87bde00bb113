//! `cargo bench --bench alloc [-- OPTIONS]`: the allocation-speed benchmark (the engine of
//! `hugeheap-bench alloc`; options such as `--quick`, `--reps`, `--scale`, `--workloads`).

#[global_allocator]
static A: hugeheap_bench::switch::Switch = hugeheap_bench::switch::Switch;

fn main() {
    hugeheap_bench::args::bench_target_main("alloc");
}
