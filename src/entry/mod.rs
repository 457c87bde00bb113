//! The front doors: [`global::HugeAlloc`] (Rust's `GlobalAlloc`), [`capi`] (the C allocation
//! API that `libhugeheap.so` exports), both dispatching through [`alloc`], which starts the
//! allocator on the first allocation and sends each request to the thread heaps or the page
//! heap. [`introspect`] answers what programs ask their malloc (glibc's `mallinfo2`, jemalloc's
//! `mallctl`, ...) with hugeheap's own figures. Two more serve `libhugeheap.so` only: [`thp_off`]
//! (a program's `prctl(PR_SET_THP_DISABLE)`, so that the heap keeps THP) and [`map_zone`] (a
//! program's own small anonymous mappings, in huge pages).

pub mod alloc;
pub mod capi;
pub mod global;
pub mod introspect;
pub mod map_zone;
pub mod thp_off;
