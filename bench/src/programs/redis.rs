//! Redis saving under write traffic. The benchmark starts Debian's `redis-server` on a loopback
//! port with a data directory of its own, fills it with `DEBUG POPULATE` (values of 200 bytes),
//! and then:
//! - an idle `BGSAVE` (the fork's latency, `latest_fork_usec`);
//! - a save during which one client overwrites random existing keys, one SET at a time: the
//!   copy-on-write it causes (`rdb_last_cow_size`, plus the 2 MiB pages taken from the pool,
//!   which Redis does not see) and the SET latency while the save runs (p50, p99);
//! - more idle saves: one at once (the fork right after write traffic: THP split by
//!   copy-on-write shows here), then each after a pause of the scale's `gap` (whether the heap
//!   has its huge pages back by then);
//! - a save during which the client writes new keys, measured as above;
//! - the data: `DEBUG DIGEST` after all this, identical in every setup (the writes are the same
//!   pseudo-random sequence), and again after a restart that loads the saved RDB.

use super::setup::{PoolHold, PoolWatch, Section, Setup, proc_field, scratch};
use crate::figures::{median, mib_cell, ms, percentile};
use crate::rng::Rng;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Sizes of a run.
struct Scale {
    keys: usize,
    writes: usize,
    later_saves: usize,
    /// The pause before each later save but the first. Redis's default save points are a
    /// minute apart at the least (`save 3600 1 300 100 60 10000`); the pause stands for a
    /// server that saves more often than that, and is the time the heap has to put back the
    /// huge pages a save's writes split.
    gap: Duration,
}

/// The command that installs what this section needs.
const INSTALL: &str = "apt install redis-server";

/// A reply of the Redis protocol (RESP2).
#[derive(Debug)]
enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Reply>),
}

impl Reply {
    fn text(&self) -> String {
        match self {
            Reply::Simple(s) | Reply::Error(s) => s.clone(),
            Reply::Int(i) => i.to_string(),
            Reply::Bulk(Some(b)) => String::from_utf8_lossy(b).into_owned(),
            Reply::Bulk(None) => String::new(),
            Reply::Array(v) => v.iter().map(Reply::text).collect::<Vec<_>>().join(" "),
        }
    }
}

/// One connection to the server.
struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    fn open(port: u16) -> std::io::Result<Conn> {
        let s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_nodelay(true)?;
        Ok(Conn { reader: BufReader::new(s.try_clone()?), writer: s, buf: Vec::with_capacity(512) })
    }

    fn cmd(&mut self, args: &[&[u8]]) -> std::io::Result<Reply> {
        self.buf.clear();
        let _ = write!(self.buf, "*{}\r\n", args.len());
        for a in args {
            let _ = write!(self.buf, "${}\r\n", a.len());
            self.buf.extend_from_slice(a);
            self.buf.extend_from_slice(b"\r\n");
        }
        self.writer.write_all(&self.buf)?;
        self.read_reply()
    }

    fn read_reply(&mut self) -> std::io::Result<Reply> {
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let body = line.get(1..).unwrap_or("").trim_end().to_string();
        let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, format!("bad reply {line:?}"));
        Ok(match line.as_bytes().first() {
            Some(b'+') => Reply::Simple(body),
            Some(b'-') => Reply::Error(body),
            Some(b':') => Reply::Int(body.parse().map_err(|_| bad())?),
            Some(b'$') => {
                let n: i64 = body.parse().map_err(|_| bad())?;
                if n < 0 {
                    Reply::Bulk(None)
                } else {
                    let mut b = vec![0u8; n as usize + 2];
                    self.reader.read_exact(&mut b)?;
                    b.truncate(n as usize);
                    Reply::Bulk(Some(b))
                }
            }
            Some(b'*') => {
                let n: i64 = body.parse().map_err(|_| bad())?;
                let mut v = Vec::new();
                for _ in 0..n.max(0) {
                    v.push(self.read_reply()?);
                }
                Reply::Array(v)
            }
            _ => return Err(bad()),
        })
    }

    /// A command whose error reply is an error here too.
    fn ok(&mut self, args: &[&str]) -> Result<Reply, String> {
        let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
        match self.cmd(&a).map_err(|e| format!("{}: {e}", args.join(" ")))? {
            Reply::Error(e) => Err(format!("{}: {e}", args.join(" "))),
            r => Ok(r),
        }
    }

    /// INFO `section` as a field lookup.
    fn info(&mut self, section: &str) -> Result<std::collections::HashMap<String, String>, String> {
        let text = self.ok(&["INFO", section])?.text();
        Ok(text.lines().filter_map(|l| l.split_once(':')).map(|(k, v)| (k.to_string(), v.trim().to_string())).collect())
    }

    fn info_num(&mut self, section: &str, field: &str) -> Result<f64, String> {
        let i = self.info(section)?;
        i.get(field).and_then(|v| v.parse().ok()).ok_or_else(|| format!("INFO {section} has no {field}"))
    }
}

/// A running server.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(setup: &Setup, lib: &Path, dir: &Path) -> Result<Server, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let mut cmd = Command::new("redis-server");
        setup.apply(&mut cmd, lib);
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--enable-debug-command", "local", "--dbfilename", "dump.rdb", "--dir"])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn().map_err(|e| format!("cannot start redis-server: {e}"))?;
        let s = Server { child, port };
        // Up in milliseconds, or after loading an RDB: wait until it answers PING with PONG
        // (a loading server answers with an error).
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(600) {
            if let Ok(mut c) = Conn::open(port) {
                if matches!(c.cmd(&[b"PING"]), Ok(Reply::Simple(ref p)) if p == "PONG") {
                    return Ok(s);
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err("redis-server did not answer".into())
    }

    fn conn(&self) -> Result<Conn, String> {
        Conn::open(self.port).map_err(|e| format!("connect: {e}"))
    }

    fn stop(mut self) {
        if let Ok(mut c) = self.conn() {
            let _ = c.cmd(&[b"SHUTDOWN", b"NOSAVE"]);
        }
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Starts a `BGSAVE` and waits for it; the fork's latency, ms.
fn idle_save(c: &mut Conn) -> Result<f64, String> {
    c.ok(&["BGSAVE"])?;
    wait_save(c)?;
    Ok(c.info_num("stats", "latest_fork_usec")? / 1000.0)
}

fn saving(c: &mut Conn) -> Result<bool, String> {
    Ok(c.info_num("persistence", "rdb_bgsave_in_progress")? != 0.0)
}

fn wait_save(c: &mut Conn) -> Result<(), String> {
    while saving(c)? {
        std::thread::sleep(Duration::from_millis(20));
    }
    match c.info("persistence")?.get("rdb_last_bgsave_status").map(String::as_str) {
        Some("ok") => Ok(()),
        other => Err(format!("BGSAVE failed: {other:?}")),
    }
}

/// What one write load during a save measured.
struct Load {
    cow: usize,
    pool: usize,
    p50: f64,
    p99: f64,
    during: usize,
}

/// Starts a save and runs `writes` SETs made by `key(i)`, one at a time; latencies count while
/// the save runs.
fn load_during_save(
    c: &mut Conn,
    watch: &mut Conn,
    writes: usize,
    mut key: impl FnMut(usize) -> String,
) -> Result<Load, String> {
    let pool = PoolWatch::start();
    c.ok(&["BGSAVE"])?;
    let mut lat = Vec::with_capacity(writes);
    let mut in_save = true;
    let mut value = vec![b'v'; 200];
    for i in 0..writes {
        if i % 1000 == 0 && in_save {
            in_save = saving(watch)?;
        }
        let k = key(i);
        value[..8].copy_from_slice(&(i as u64).to_le_bytes().map(|b| b'a' + b % 26));
        let t = Instant::now();
        match c.cmd(&[b"SET", k.as_bytes(), &value]).map_err(|e| e.to_string())? {
            Reply::Error(e) => return Err(format!("SET: {e}")),
            _ if in_save => lat.push(t.elapsed().as_secs_f64() * 1000.0),
            _ => {}
        }
    }
    wait_save(watch)?;
    let pool = pool.used() * (2 << 20);
    let cow = c.info_num("persistence", "rdb_last_cow_size")? as usize;
    let during = lat.len();
    Ok(Load { cow, pool, p50: percentile(&mut lat, 50.0), p99: percentile(&mut lat, 99.0), during })
}

fn cow_cell(l: &Load) -> String {
    let pool = if l.pool > 0 { format!(" + {} of pool", mib_cell(l.pool)) } else { String::new() };
    format!("{}{pool}, p99 {} (p50 {}; {} SETs)", mib_cell(l.cow), ms(l.p99), ms(l.p50), l.during)
}

/// The huge pages the server holds, and its RSS.
fn huge(pid: u32) -> (usize, usize) {
    let anon = proc_field(pid, "smaps_rollup", "AnonHugePages:");
    let tlb = proc_field(pid, "status", "HugetlbPages:");
    (anon + tlb, proc_field(pid, "status", "VmRSS:") + tlb)
}

fn one(setup: &Setup, lib: &Path, s: &Scale) -> Result<(Vec<String>, String), String> {
    let dir = scratch("redis");
    let server = Server::start(setup, lib, &dir)?;
    let pid = server.child.id();
    let mut c = server.conn()?;
    let mut w = server.conn()?;
    c.ok(&["DEBUG", "POPULATE", &s.keys.to_string(), "key", "200"])?;
    let used = c.info_num("memory", "used_memory")? as usize;
    let (huge0, rss0) = huge(pid);
    let idle = idle_save(&mut c)?;
    let keys = s.keys as u64;
    let mut rng = Rng::new(0x9E37_79B9_7F4A_7C15);
    let over = load_during_save(&mut c, &mut w, s.writes, |_| format!("key:{}", rng.next_u64() % keys))?;
    let (split, _) = huge(pid);
    let at_once = idle_save(&mut c)?;
    let mut later = Vec::new();
    for _ in 0..s.later_saves {
        std::thread::sleep(s.gap);
        later.push(idle_save(&mut c)?);
    }
    let (huge1, _) = huge(pid);
    let (lo, hi) = later.iter().fold((f64::MAX, 0.0f64), |(a, b), &x| (a.min(x), b.max(x)));
    let later_median = median(&mut later);
    let new = load_during_save(&mut c, &mut w, s.writes, |i| format!("new:{i}"))?;
    let digest = c.ok(&["DEBUG", "DIGEST"])?.text();
    // The saved data, loaded again by a fresh server.
    c.ok(&["SAVE"])?;
    drop((c, w));
    server.stop();
    let again = Server::start(setup, lib, &dir)?;
    let reloaded = again.conn()?.ok(&["DEBUG", "DIGEST"])?.text();
    again.stop();
    let _ = std::fs::remove_dir_all(&dir);
    if reloaded != digest {
        return Err(format!("the RDB loaded back gives digest {reloaded}, not {digest}"));
    }
    let cells = vec![
        mib_cell(used),
        format!("{} of {}", mib_cell(huge0), mib_cell(rss0)),
        ms(idle),
        cow_cell(&over),
        ms(at_once),
        format!("{} ({}-{})", ms(later_median), ms(lo), ms(hi)),
        format!("{} / {}", mib_cell(split), mib_cell(huge1)),
        cow_cell(&new),
    ];
    Ok((cells, digest))
}

/// Runs the Redis section.
pub fn run(opts: &super::setup::Options, pools: &PoolHold) -> Section {
    let s = if opts.quick {
        Scale { keys: 1_000_000, writes: 100_000, later_saves: 3, gap: Duration::from_secs(3) }
    } else {
        Scale { keys: 8_000_000, writes: 300_000, later_saves: 3, gap: Duration::from_secs(15) }
    };
    // ~290 bytes per key in Redis (value, key, dict entry); the pool holds 2.5 times that, so
    // that the default copy-on-write reserve leaves the heap whole in hugetlb pages.
    let pool_pages = (s.keys * 290 / (2 << 20)) * 5 / 2;
    let mut section = Section {
        program: "Redis".into(),
        workload: format!(
            "{} keys x 200 B (DEBUG POPULATE); BGSAVE idle; {} random overwrites of existing keys during a save; \
             an idle save at once, then {} more, each {} s after the last; {} SETs of new keys during a save; \
             one SET at a time",
            s.keys,
            s.writes,
            s.later_saves,
            s.gap.as_secs(),
            s.writes
        ),
        columns: [
            "setup",
            "used memory",
            "huge pages (of RSS)",
            "fork, idle save",
            "overwrites during a save: copy-on-write, SET latency",
            "fork of the next save, at once",
            "fork of later saves, after a pause, median (range)",
            "huge pages: after the overwrites / after the later saves",
            "new keys during a save: copy-on-write, SET latency",
        ]
        .map(String::from)
        .to_vec(),
        rows: Vec::new(),
        notes: Vec::new(),
    };
    if !super::setup::installed("redis-server", "--version") {
        section.notes.push(format!("skipped: redis-server is not installed ({INSTALL})"));
        return section;
    }
    let mut jemalloc_thp = Setup::plain();
    jemalloc_thp.name = "plain, jemalloc thp:always".into();
    jemalloc_thp.env = vec![("MALLOC_CONF".into(), "thp:always,metadata_thp:always".into())];
    let setups = [Setup::plain(), jemalloc_thp, Setup::hugeheap_thp(), Setup::hugeheap_pool(pool_pages)];
    let mut digests = Vec::new();
    for setup in &setups {
        let row = pools.set_for(setup).and_then(|()| one(setup, &opts.lib, &s));
        section.rows.push((
            setup.name.clone(),
            row.map(|(cells, digest)| {
                digests.push((setup.name.clone(), digest));
                cells
            }),
        ));
    }
    let same = digests.windows(2).all(|w| w[0].1 == w[1].1);
    if !digests.is_empty() {
        section.notes.push(format!(
            "DEBUG DIGEST after the writes {} in the {} setups that ran, and each equals the digest of its RDB loaded \
         back by a fresh server.",
            if same { "is identical" } else { "DIFFERS" },
            digests.len()
        ));
    }
    section.notes.push(
        "Copy-on-write is Redis's rdb_last_cow_size (the child's private memory at the end of the save), plus \
         the 2 MiB pages the hugetlb pool lost during the save (Redis does not count hugetlb memory)."
            .into(),
    );
    section
}
