//! `cargo bench --bench fork [-- OPTIONS]`: the fork benchmark (the engine and options of
//! `hugeheap bench fork`).

#[global_allocator]
static A: hugeheap_cli::switch::Switch = hugeheap_cli::switch::Switch;

fn main() {
    hugeheap_cli::cli::bench_target_main("fork");
}
