//! `cargo bench --bench alloc [-- OPTIONS]`: the allocation-speed benchmark (the engine of
//! `hugeheap bench alloc`; options such as `--quick`, `--reps`, `--scale`, `--workloads`).

#[global_allocator]
static A: hugeheap_cli::switch::Switch = hugeheap_cli::switch::Switch;

fn main() {
    hugeheap_cli::cli::bench_target_main("alloc");
}
