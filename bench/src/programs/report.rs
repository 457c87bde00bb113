//! The programs' report: one markdown table per program (printed, and written to
//! `programs.md`), and the same as JSON (`programs.json`).

use super::setup::{Options, Section};
use std::fmt::Write;

/// The sections as markdown.
pub fn markdown(sections: &[Section]) -> String {
    let mut o = String::new();
    for s in sections {
        let _ = writeln!(o, "\n### {}\n\n{}\n", s.program, s.workload);
        if !s.rows.is_empty() {
            let _ = writeln!(o, "| {} |", s.columns.join(" | "));
            let _ = writeln!(o, "|{}", "---|".repeat(s.columns.len()));
            for (name, row) in &s.rows {
                match row {
                    Ok(cells) => {
                        let _ = writeln!(o, "| {name} | {} |", cells.join(" | "));
                    }
                    Err(why) => {
                        let _ = writeln!(o, "| {name} | {why} |{}", " |".repeat(s.columns.len().saturating_sub(2)));
                    }
                }
            }
            o.push('\n');
        }
        for n in &s.notes {
            let _ = writeln!(o, "{n}");
        }
    }
    o
}

/// Writes `programs.md` and `programs.json` into the output directory.
pub fn write(sections: &[Section], opts: &Options) -> std::io::Result<()> {
    std::fs::create_dir_all(&opts.out_dir)?;
    let machine = crate::machine::Machine::read();
    let head = format!(
        "# hugeheap bench programs\n\n{}{}\n",
        machine.describe(),
        if opts.quick { " Quick run (smaller data)." } else { "" }
    );
    std::fs::write(opts.out_dir.join("programs.md"), format!("{head}{}", markdown(sections)))?;
    let json = serde_json::json!({ "machine": machine, "quick": opts.quick, "sections": sections });
    std::fs::write(opts.out_dir.join("programs.json"), serde_json::to_string_pretty(&json).expect("json"))?;
    eprintln!("hugeheap-bench programs: wrote {}", opts.out_dir.join("programs.md").display());
    Ok(())
}
