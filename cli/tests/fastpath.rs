//! The C fast path stays short: the exported allocation functions of the library `hugeheap run`
//! preloads reach their thread heap through initial-exec TLS (the thread pointer, no call to
//! `__tls_get_addr`), make no call through the PLT, and reach the heap's statics and slow paths
//! directly: the one load from the GOT they make is the thread-local slot's offset, and no jump
//! or call goes through memory (a library built without link-time optimisation of the whole
//! crate graph keeps every static behind a GOT load, one dependent load more on every free).
//! The test disassembles the library (`objdump`, from binutils) and reads each function's body,
//! and the bodies of the functions it tail-jumps to inside the library.

mod common;

use common::{lib, skip};
use std::collections::HashMap;
use std::process::Command;

/// The exported functions a small-object program calls on every allocation.
const FAST: [&str; 6] = ["malloc", "free", "calloc", "realloc", "malloc_usable_size", "free_sized"];

/// Function bodies by symbol name (`objdump -d` output, one block per symbol).
fn bodies(text: &str) -> HashMap<String, Vec<String>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    let mut cur: Option<String> = None;
    for line in text.lines() {
        // "0000000000012e40 <free>:" starts a body; a blank line ends it.
        if let Some(name) = line.strip_suffix(">:").and_then(|l| l.split_once(" <")).map(|(_, n)| n) {
            cur = Some(name.to_string());
            out.entry(name.to_string()).or_default();
        } else if line.trim().is_empty() {
            cur = None;
        } else if let Some(c) = &cur {
            out.get_mut(c).unwrap().push(line.to_string());
        }
    }
    out
}

/// The address range of the library's `.got` section (`objdump -h`).
fn got_range(headers: &str) -> Option<(u64, u64)> {
    // "  20 .got          00000c88  0000000000076d78  0000000000076d78  00075d78  2**3"
    headers.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() >= 4 && f[1] == ".got").then(|| {
            let size = u64::from_str_radix(f[2], 16).ok()?;
            let vma = u64::from_str_radix(f[3], 16).ok()?;
            Some((vma, vma + size))
        })?
    })
}

/// The address a RIP-relative operand names, from objdump's comment ("... # 77380 <sym+0x8>").
fn rip_target(insn: &str) -> Option<u64> {
    if !insn.contains("(%rip)") {
        return None;
    }
    let addr = insn.rsplit_once('#')?.1.split_whitespace().next()?;
    u64::from_str_radix(addr, 16).ok()
}

/// Whether the instruction names a C library function's GOT slot ("<__errno_location@GLIBC..>"),
/// which a call reaches through memory.
fn imported(insn: &str) -> bool {
    insn.rsplit_once('<').is_some_and(|(_, sym)| sym.contains('@'))
}

/// The symbol an instruction jumps to, when it is a direct jump to a function's start
/// ("jmp 20310 <name>", not "<name+0x12>").
fn tail_target(insn: &str) -> Option<&str> {
    let (op, rest) = insn.split_once('\t').and_then(|(_, r)| r.split_once(char::is_whitespace))?;
    if op != "jmp" {
        return None;
    }
    let name = rest.split_once('<')?.1.strip_suffix('>')?;
    (!name.contains('+') && !name.contains('@')).then_some(name)
}

#[test]
fn fast_path_reaches_tls_statics_and_slow_paths_directly() {
    let out = match Command::new("objdump").args(["-d", "--no-show-raw-insn"]).arg(lib()).output() {
        Ok(o) if o.status.success() => o,
        Ok(o) => panic!("objdump failed: {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => {
            skip("objdump", &format!("cannot disassemble libhugeheap.so: no objdump ({e}); apt-get install binutils"));
            return;
        }
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let bodies = bodies(&text);
    let headers = Command::new("objdump").arg("-h").arg(lib()).output().expect("objdump -h");
    let (got_lo, got_hi) =
        got_range(&String::from_utf8_lossy(&headers.stdout)).expect("libhugeheap.so has a .got section");
    assert!(bodies.len() > 100, "objdump's output was not read as function bodies:\n{}", &text[..text.len().min(2000)]);
    for f in FAST {
        // The function itself, and where it jumps to finish (realloc's wrapper jumps into the
        // library's realloc); not the out-of-line slow paths it calls.
        let mut seen = vec![f.to_string()];
        let mut i = 0;
        while i < seen.len() {
            let body = bodies.get(&seen[i]).unwrap_or_else(|| panic!("{} not in libhugeheap.so", seen[i]));
            for insn in body {
                assert!(
                    !insn.contains("__tls_get_addr"),
                    "{f} ({}) reaches TLS through __tls_get_addr: {insn}",
                    seen[i]
                );
                assert!(!insn.contains("@plt>"), "{f} ({}) calls through the PLT: {insn}", seen[i]);
                assert!(
                    !(insn.contains("jmp    *") || insn.contains("call   *")) || imported(insn),
                    "{f} ({}) jumps or calls through memory (the GOT): {insn}",
                    seen[i]
                );
            }
            // A load from the GOT is the thread-local slot's offset, used at once with %fs.
            for (k, insn) in body.iter().enumerate() {
                if rip_target(insn).is_some_and(|a| (got_lo..got_hi).contains(&a)) && !imported(insn) {
                    assert!(
                        body.get(k + 1).is_some_and(|next| next.contains("%fs:")),
                        "{f} ({}) reaches a static through the GOT: {insn}",
                        seen[i]
                    );
                }
            }
            if i == 0 {
                for t in body.iter().filter_map(|l| tail_target(l)) {
                    if t.contains("capi") && !seen.iter().any(|s| s == t) {
                        seen.push(t.to_string());
                    }
                }
            }
            i += 1;
        }
        // The thread heap is reached through the thread pointer (malloc and free read it on
        // every call).
        if f == "malloc" || f == "free" {
            assert!(
                bodies[f].iter().any(|l| l.contains("%fs:")),
                "{f} does not read the thread pointer:\n{:#?}",
                bodies[f]
            );
        }
    }
}
