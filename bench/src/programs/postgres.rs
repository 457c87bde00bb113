//! PostgreSQL: the postmaster forks a backend for every connection (without exec), so a small
//! heap is copied into many small processes, and a new connection pays a fork. The benchmark
//! makes a cluster of its own (`initdb` in a scratch directory, a Unix socket there, no TCP),
//! starts the server under each setup, opens 20 connections that each run a sort and then
//! wait, and measures the memory of the server's processes (the sum of their PSS, plus the
//! 2 MiB pool pages they hold, which PSS leaves out; PostgreSQL's own shared memory is kept
//! out of the pools, `huge_pages=off`, in every setup); then the rate of new connections
//! (`pgbench -C`, select-only) and a query's result, compared across setups.

use super::setup::{PoolHold, Section, Setup, proc_field, scratch};
use crate::figures::{median, mib_cell};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Connections held open while memory is measured.
const BACKENDS: usize = 20;

/// The newest installed PostgreSQL's binaries.
fn bin_dir() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| Some(e.ok()?.path().join("bin")))
        .filter(|d| d.join("postgres").is_file() && d.join("pgbench").is_file())
        .collect();
    dirs.sort_by_key(|d| d.parent().and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok()).unwrap_or(0));
    dirs.pop()
}

/// A command run as the `postgres` user when this process is root (the server refuses root).
fn as_db_user(bin: &Path, tool: &str) -> Command {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } == 0 {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join(tool));
        c
    } else {
        Command::new(bin.join(tool))
    }
}

fn checked(cmd: &mut Command, what: &str) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{what}: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!("{what}: {} {}", out.status, err.lines().last().unwrap_or("")));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A cluster in a scratch directory, and its server while it runs.
struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    server: Option<Child>,
}

impl Cluster {
    fn create(bin: &Path) -> Result<Cluster, String> {
        let dir = scratch("postgres");
        // SAFETY: getuid has no preconditions.
        if unsafe { libc::getuid() } == 0 {
            checked(Command::new("chown").args(["-R", "postgres:postgres"]).arg(&dir), "chown")?;
        }
        let data = dir.join("data");
        checked(as_db_user(bin, "initdb").args(["-A", "trust", "-U", "bench", "-D"]).arg(&data), "initdb")?;
        Ok(Cluster { bin: bin.to_path_buf(), dir, server: None })
    }

    fn start(&mut self, setup: &Setup, lib: &Path) -> Result<u32, String> {
        // The server runs as `postgres`, who may not read the library where it is (under
        // root's home, by default): ld.so would then skip it with a warning, and the run
        // would measure plain PostgreSQL. A copy in the cluster's directory is readable.
        let lib = if setup.hugeheap {
            let copy = self.dir.join("libhugeheap.so");
            std::fs::copy(lib, &copy).map_err(|e| format!("copying {}: {e}", lib.display()))?;
            copy
        } else {
            lib.to_path_buf()
        };
        // The library the server must have mapped (hugeheap's, or a peer's).
        let preloaded = setup
            .env
            .iter()
            .find(|(k, _)| k == "LD_PRELOAD")
            .map(|(_, v)| Path::new(v))
            .or(setup.hugeheap.then_some(lib.as_path()))
            .and_then(|p| Some(p.file_name()?.to_string_lossy().into_owned()));
        let mut cmd = as_db_user(&self.bin, "postgres");
        setup.apply(&mut cmd, &lib);
        cmd.arg("-D").arg(self.dir.join("data")).arg("-k").arg(&self.dir);
        // PostgreSQL's own shared memory stays in 4 KiB pages in every setup (its default,
        // `huge_pages=try`, would take pool pages where a pool exists): what differs between
        // the setups is the allocator alone.
        cmd.args(["-c", "listen_addresses=", "-c", "max_connections=60", "-c", "shared_buffers=128MB"]);
        cmd.args(["-c", "huge_pages=off"]);
        let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().map_err(|e| format!("postgres: {e}"))?;
        let pid = child.id();
        self.server = Some(child);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(120) {
            if self.psql("SELECT 1").is_ok() {
                // runuser forks the server: its pid is runuser's child.
                let pm = postmaster(pid).unwrap_or(pid);
                let maps = std::fs::read_to_string(format!("/proc/{pm}/maps")).unwrap_or_default();
                if let Some(name) = preloaded.filter(|n| !maps.contains(n.as_str())) {
                    return Err(format!("the server did not load {name}"));
                }
                return Ok(pm);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err("postgres did not start".into())
    }

    fn client(&self, tool: &str) -> Command {
        let mut c = Command::new(self.bin.join(tool));
        c.env_remove("LD_PRELOAD").args(["-h"]).arg(&self.dir).args(["-U", "bench"]);
        c
    }

    fn psql(&self, sql: &str) -> Result<String, String> {
        checked(self.client("psql").args(["-d", "postgres", "-XAtq", "-c", sql]), "psql")
    }

    fn stop(&mut self) {
        if let Some(mut s) = self.server.take() {
            let _ = checked(
                as_db_user(&self.bin, "pg_ctl").args(["stop", "-m", "fast", "-D"]).arg(self.dir.join("data")),
                "pg_ctl stop",
            );
            let _ = s.wait();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The postgres process under `pid` (itself, or the child runuser forked).
fn postmaster(pid: u32) -> Option<u32> {
    if std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?.trim() == "postgres" {
        return Some(pid);
    }
    children(pid).into_iter().next()
}

/// The processes whose parent is `pid`.
fn children(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&p| crate::stat_field(p, 1) == Some(u64::from(pid)))
        .collect()
}

/// PSS of the server and every process it forked, bytes; and how many there are.
fn server_pss(postmaster: u32) -> (usize, usize) {
    let mut all = vec![postmaster];
    all.extend(children(postmaster));
    (all.iter().map(|&p| proc_field(p, "smaps_rollup", "Pss:")).sum(), all.len())
}

/// [`server_pss`] once the server has exactly `clients` client backends (the connections
/// held) and no other: the backend of a query just made, or an autovacuum worker, would be
/// counted in one setup and not in another.
fn settled(postmaster: u32, clients: usize) -> Result<(usize, usize), String> {
    let start = Instant::now();
    loop {
        let others = children(postmaster)
            .iter()
            .filter(|&&p| {
                let cmd = std::fs::read_to_string(format!("/proc/{p}/cmdline")).unwrap_or_default();
                cmd.starts_with("postgres: bench") || cmd.starts_with("postgres: autovacuum worker")
            })
            .count();
        if others == clients {
            return Ok(server_pss(postmaster));
        }
        if start.elapsed() > Duration::from_secs(60) {
            return Err(format!("the server kept {others} backends, {clients} expected"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn one(bin: &Path, setup: &Setup, lib: &Path) -> Result<(Vec<String>, String), String> {
    let mut cluster = Cluster::create(bin)?;
    let pool_before = super::setup::pool_free_2m();
    let pm = cluster.start(setup, lib)?;
    checked(cluster.client("pgbench").args(["-i", "-q", "-s", "2", "postgres"]), "pgbench -i")?;
    // Idle: the server's own processes only (the backends of pgbench and of the readiness
    // queries gone; an autovacuum worker may come and go).
    let (idle_pss, _) = settled(pm, 0)?;
    // 20 connections that sort 200,000 rows each, then wait.
    let sql = "SELECT count(*) FROM (SELECT md5(g::text) AS m FROM generate_series(1, 200000) g ORDER BY m) s; \
               SELECT pg_sleep(600)";
    let mut held: Vec<Child> = (0..BACKENDS)
        .map(|_| cluster.client("psql").args(["-d", "postgres", "-XAtq", "-c", sql]).stdout(Stdio::null()).spawn())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("psql: {e}"))?;
    let sleeping = "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'";
    let start = Instant::now();
    while cluster.psql(sleeping)? != BACKENDS.to_string() {
        if start.elapsed() > Duration::from_secs(300) {
            return Err("the connections did not all reach their sleep".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let (pss, procs) = settled(pm, BACKENDS)?;
    let pool = pool_before.saturating_sub(super::setup::pool_free_2m()) * (2 << 20);
    for h in &mut held {
        let _ = h.kill();
        let _ = h.wait();
    }
    cluster.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE wait_event = 'PgSleep'")?;
    // New connections: select-only transactions, a connection each, 10 s (3 runs, median).
    let mut rates = Vec::new();
    for _ in 0..3 {
        let out =
            checked(cluster.client("pgbench").args(["-n", "-C", "-S", "-T", "10", "-c", "2", "postgres"]), "pgbench")?;
        let tps = out
            .lines()
            .find_map(|l| l.strip_prefix("tps = ")?.split_whitespace().next()?.parse::<f64>().ok())
            .ok_or("pgbench printed no tps")?;
        rates.push(tps);
    }
    let result = cluster.psql("SELECT sum(abalance), count(*), sum(bid) FROM pgbench_accounts")?;
    cluster.stop();
    let per = |b: usize| mib_cell(b / BACKENDS);
    Ok((
        vec![
            mib_cell(idle_pss),
            format!("{} ({} processes)", mib_cell(pss + pool), procs),
            if pool > 0 { mib_cell(pool) } else { "-".into() },
            per(pss + pool - idle_pss.min(pss + pool)),
            format!("{:.0}/s", median(&mut rates)),
        ],
        result,
    ))
}

/// Runs the PostgreSQL section.
pub fn run(opts: &super::setup::Options, pools: &PoolHold) -> Section {
    let mut section = Section {
        program: "PostgreSQL".into(),
        workload: format!(
            "a cluster of its own (shared_buffers 128 MB, huge_pages off, pgbench scale 2); {BACKENDS} connections that each sort \
             200,000 rows and wait; then new connections with pgbench -C -S (10 s, 3 runs)"
        ),
        columns: [
            "setup",
            "server memory idle (PSS)",
            "with 20 backends (PSS + pool pages)",
            "of it in pool pages",
            "per backend",
            "new connections",
        ]
        .map(String::from)
        .to_vec(),
        rows: Vec::new(),
        notes: Vec::new(),
    };
    let Some(bin) = bin_dir() else {
        section.notes.push("skipped: PostgreSQL is not installed (apt install postgresql)".into());
        return section;
    };
    let mut results = Vec::new();
    let mut setups = vec![Setup::plain()];
    // The peers (Debian's packages), where installed.
    for peer in &crate::peers::PEERS {
        if let Ok(lib) = peer.find() {
            setups.push(Setup::preloaded(peer.name, &lib));
        }
    }
    setups.extend([Setup::hugeheap_thp(), Setup::hugeheap_pool(512)]);
    for setup in setups {
        let row = pools.set_for(&setup).and_then(|()| one(&bin, &setup, &opts.lib));
        section.rows.push((
            setup.name.clone(),
            row.map(|(cells, r)| {
                results.push(r);
                cells
            }),
        ));
    }
    let same = results.windows(2).all(|w| w[0] == w[1]);
    section.notes.push(format!(
        "The accounts' sums {} in the {} setups that ran. PSS counts shared pages in part; hugetlb pages are not \
         in PSS and are counted as the pool pages the server took.",
        if same { "are identical" } else { "DIFFER" },
        results.len()
    ));
    section
}
