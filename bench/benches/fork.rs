//! `cargo bench --bench fork [-- OPTIONS]`: the fork benchmark (the engine and options of
//! `hugeheap-bench fork`).

#[global_allocator]
static A: hugeheap_bench::switch::Switch = hugeheap_bench::switch::Switch;

fn main() {
    hugeheap_bench::args::bench_target_main("fork");
}
