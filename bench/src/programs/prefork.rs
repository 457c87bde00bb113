//! Prefork servers, as Debian packages them: gunicorn (Python) and unicorn (Ruby). Each master
//! preloads an app holding ~1 GiB of records, runs 4 workers and recycles each after 50
//! requests (gunicorn's `--max-requests`; for unicorn, which has no such setting, the app
//! sends its worker `QUIT` after its 50th response, as unicorn-worker-killer does). A client in
//! this process sends the requests, 8 at a time, each on a connection of its own.
//!
//! Measured: requests/s and latency (p50, p99) over the run; the master's `fork()` (timed in
//! the master itself: the server's config wraps `os.fork` / `Process._fork`), median over the
//! forks made while serving; a recycled worker's exit, from its last response to the master
//! reaping it (its shutdown, which for Python frees the heap it shares, and the kernel's
//! teardown), timed by hooks in the worker and the master on the system's monotonic clock,
//! median; a worker's private dirty memory and PSS, sampled from
//! `/proc/PID/smaps_rollup` every half second under load, median; the master's anonymous
//! memory in huge pages once the app is loaded; the CPU the kernel's DAMON monitor (kdamond)
//! used while the requests ran, where one runs. Every response body is checked against the
//! plain run's, by path.

use super::setup::{PoolHold, Section, Setup, scratch};
use crate::figures::{median, mib_cell, ms, percentile};
use crate::{cpu_seconds, kdamonds, status_bytes};
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Workers per server.
const WORKERS: usize = 4;
/// Requests a worker serves before it is replaced.
const MAX_REQUESTS: usize = 50;
/// Requests in flight at once.
const CONCURRENCY: usize = 8;
/// A server that does not answer within this long after start is reported as failed.
const START: Duration = Duration::from_secs(600);

/// The gunicorn app: records built at import (the master preloads it), each request answered
/// with 50 of them as JSON, chosen by the path's CRC (the same in every process).
const GUNICORN_APP: &str = r#"
import json, os, zlib
N = int(os.environ["HH_ITEMS"])
DATA = {}
for i in range(N):
    DATA["key%d" % i] = {"id": i, "name": "item-%d" % i, "text": ("lorem ipsum %d " % i) * (20 + i % 150),
                         "tags": ["t%d" % (i % 97), "u%d" % (i % 13)], "vals": list(range(i % 40))}
KEYS = list(DATA)

def app(environ, start_response):
    h = zlib.crc32(environ.get("PATH_INFO", "/").encode())
    out = []
    for j in range(50):
        k = KEYS[(h + j * 7919) % N]
        d = DATA[k]
        out.append({"k": k, "name": d["name"], "tags": d["tags"], "n": len(d["text"]), "s": sum(d["vals"])})
    body = json.dumps(out).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
"#;

/// gunicorn's config (Python, run in the master): the fork timer, and the exit timer's hooks
/// (the worker's after its last request, the master's when it has reaped the worker).
const GUNICORN_CONF: &str = r#"
import os, time
def _exit_log(what, pid):
    with open(os.environ["HH_EXIT_LOG"], "a") as f:
        f.write("%s %d %.6f\n" % (what, pid, time.clock_gettime(time.CLOCK_MONOTONIC)))
def post_request(worker, req, environ, resp):
    if not worker.alive:
        _exit_log("L", os.getpid())
def child_exit(server, worker):
    _exit_log("X", worker.pid)
_fork = os.fork
def _timed_fork():
    t = time.perf_counter()
    pid = _fork()
    if pid:
        with open(os.environ["HH_FORK_LOG"], "a") as f:
            f.write("%.6f\n" % ((time.perf_counter() - t) * 1000))
    return pid
os.fork = _timed_fork
"#;

/// The unicorn app: the same records and answers, and the worker's own recycling.
const UNICORN_APP: &str = r#"
require "json"
require "zlib"
N = Integer(ENV["HH_ITEMS"])
DATA = {}
N.times do |i|
  DATA["key#{i}"] = { "id" => i, "name" => "item-#{i}", "text" => "lorem ipsum #{i} " * (20 + i % 150),
                      "tags" => ["t#{i % 97}", "u#{i % 13}"], "vals" => (0...(i % 40)).to_a }
end
KEYS = DATA.keys
served = 0
run lambda { |env|
  h = Zlib.crc32(env["PATH_INFO"])
  out = (0...50).map do |j|
    k = KEYS[(h + j * 7919) % N]
    d = DATA[k]
    { "k" => k, "name" => d["name"], "tags" => d["tags"], "n" => d["text"].size, "s" => d["vals"].sum }
  end
  body = JSON.generate(out)
  served += 1
  if served == Integer(ENV["HH_MAX_REQUESTS"])
    File.write(ENV["HH_EXIT_LOG"], format("L %d %.6f\n", Process.pid, Process.clock_gettime(Process::CLOCK_MONOTONIC)), mode: "a")
    Process.kill(:QUIT, Process.pid)
  end
  [200, { "Content-Type" => "application/json", "Content-Length" => body.bytesize.to_s }, [body]]
}
"#;

/// unicorn's config (Ruby, run in the master): workers, preloading, the fork timer, and the
/// master's half of the exit timer.
const UNICORN_CONF: &str = r#"
worker_processes Integer(ENV["HH_WORKERS"])
preload_app true
timeout 600
after_worker_exit do |server, worker, status|
  File.write(ENV["HH_EXIT_LOG"], format("X %d %.6f\n", status.pid, Process.clock_gettime(Process::CLOCK_MONOTONIC)), mode: "a")
end
module HHForkTimer
  def _fork
    t = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    pid = super
    if pid != 0
      ms = (Process.clock_gettime(Process::CLOCK_MONOTONIC) - t) * 1000
      File.write(ENV["HH_FORK_LOG"], format("%.6f\n", ms), mode: "a")
    end
    pid
  end
end
Process.singleton_class.prepend(HHForkTimer)
"#;

/// Which server.
#[derive(Clone, Copy)]
enum Server {
    Gunicorn,
    Unicorn,
}

impl Server {
    fn name(self) -> &'static str {
        match self {
            Server::Gunicorn => "gunicorn",
            Server::Unicorn => "unicorn",
        }
    }

    /// The command that starts it on `port`, with its app and config written into `dir`.
    fn command(self, dir: &Path, port: u16) -> std::io::Result<Command> {
        let bind = format!("127.0.0.1:{port}");
        Ok(match self {
            Server::Gunicorn => {
                std::fs::write(dir.join("hh_app.py"), GUNICORN_APP)?;
                std::fs::write(dir.join("hh_conf.py"), GUNICORN_CONF)?;
                let mut c = Command::new("gunicorn");
                c.args(["--preload", "-c", "hh_conf.py", "-w", &WORKERS.to_string()])
                    .args(["--max-requests", &MAX_REQUESTS.to_string(), "--timeout", "600", "-b", &bind])
                    .arg("--chdir")
                    .arg(dir)
                    .arg("hh_app:app");
                c
            }
            Server::Unicorn => {
                std::fs::write(dir.join("config.ru"), UNICORN_APP)?;
                std::fs::write(dir.join("unicorn.conf.rb"), UNICORN_CONF)?;
                let mut c = Command::new("unicorn");
                c.args(["-c", "unicorn.conf.rb", "-l", &bind, "config.ru"]);
                c
            }
        })
    }
}

/// One response: status 200 and its body, or what went wrong.
fn get(port: u16, path: &str) -> Result<Vec<u8>, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(120))).map_err(|e| e.to_string())?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or("no header end")?;
    let head = String::from_utf8_lossy(&raw[..split]);
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        return Err(head.lines().next().unwrap_or("").to_string());
    }
    Ok(raw[split + 4..].to_vec())
}

/// A running server, stopped (and its workers with it) on drop.
struct Running {
    child: Child,
}

impl Drop for Running {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-QUIT", &pid]).status();
        let end = Instant::now() + Duration::from_secs(60);
        while Instant::now() < end {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = Command::new("pkill").args(["-KILL", "-P", &pid]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The master's workers now.
fn workers(master: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{master}/task/{master}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// What one run measured.
struct Measured {
    rps: f64,
    latencies_ms: Vec<f64>,
    forks_ms: Vec<f64>,
    /// Recycled workers' exits, last response to reaped.
    exits_ms: Vec<f64>,
    private_dirty: Vec<f64>,
    pss: Vec<f64>,
    master_anon: usize,
    master_huge: usize,
    errors: usize,
    /// CPU seconds the kernel's DAMON monitors used while the requests ran, if any runs.
    kdamond_s: Option<f64>,
    /// The bodies' digest by path, for the comparison with the plain run.
    digests: HashMap<usize, u64>,
}

fn run_once(server: Server, setup: &Setup, lib: &Path, items: usize, requests: usize) -> Result<Measured, String> {
    let dir = scratch(server.name());
    let port =
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port();
    let fork_log = dir.join("forks.log");
    let exit_log = dir.join("exits.log");
    let mut cmd = server.command(&dir, port).map_err(|e| e.to_string())?;
    setup.apply(&mut cmd, lib);
    cmd.current_dir(&dir)
        .env("HH_ITEMS", items.to_string())
        .env("HH_WORKERS", WORKERS.to_string())
        .env("HH_MAX_REQUESTS", MAX_REQUESTS.to_string())
        .env("HH_FORK_LOG", &fork_log)
        .env("HH_EXIT_LOG", &exit_log)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let server_proc = Running { child: cmd.spawn().map_err(|e| format!("cannot start {}: {e}", server.name()))? };
    let master = server_proc.child.id();
    let started = Instant::now();
    while get(port, "/ready").is_err() {
        if started.elapsed() > START {
            return Err(format!("{} did not answer within {START:?}", server.name()));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // Each file read once: smaps_rollup walks the whole address space.
    let rollup = std::fs::read_to_string(format!("/proc/{master}/smaps_rollup")).unwrap_or_default();
    let hugetlb = super::setup::proc_field(master, "status", "HugetlbPages:");
    let master_anon = status_bytes(&rollup, "Anonymous:") + hugetlb;
    let master_huge = status_bytes(&rollup, "AnonHugePages:") + hugetlb;
    let forks_before = std::fs::read_to_string(&fork_log).unwrap_or_default().lines().count();

    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let results = Mutex::new((Vec::with_capacity(requests), HashMap::new(), 0usize));
    let samples = Mutex::new((Vec::new(), Vec::new()));
    let kdamonds = kdamonds();
    let kdamond_before = cpu_seconds(&kdamonds);
    let t0 = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                for w in workers(master) {
                    let rollup = std::fs::read_to_string(format!("/proc/{w}/smaps_rollup")).unwrap_or_default();
                    let (pd, pss) = (status_bytes(&rollup, "Private_Dirty:"), status_bytes(&rollup, "Pss:"));
                    if pss > 0 {
                        let mut g = samples.lock().unwrap();
                        g.0.push(pd as f64);
                        g.1.push(pss as f64);
                    }
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        });
        let clients: Vec<_> = (0..CONCURRENCY)
            .map(|_| {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= requests {
                            break;
                        }
                        let t = Instant::now();
                        let r = get(port, &format!("/p{i}"));
                        let took = t.elapsed().as_secs_f64() * 1000.0;
                        let mut g = results.lock().unwrap();
                        match r {
                            Ok(body) => {
                                let mut h = DefaultHasher::new();
                                body.hash(&mut h);
                                g.0.push(took);
                                g.1.insert(i, h.finish());
                            }
                            Err(_) => g.2 += 1,
                        }
                    }
                })
            })
            .collect();
        for c in clients {
            let _ = c.join();
        }
        stop.store(true, Ordering::Relaxed);
    });
    let secs = t0.elapsed().as_secs_f64();
    let kdamond_s = (!kdamonds.is_empty()).then(|| cpu_seconds(&kdamonds) - kdamond_before);
    drop(server_proc);
    let forks_ms: Vec<f64> = std::fs::read_to_string(&fork_log)
        .unwrap_or_default()
        .lines()
        .skip(forks_before)
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    let exits_ms = exit_times(&std::fs::read_to_string(&exit_log).unwrap_or_default());
    let _ = std::fs::remove_dir_all(&dir);
    let (latencies_ms, digests, errors) = results.into_inner().unwrap();
    let (private_dirty, pss) = samples.into_inner().unwrap();
    Ok(Measured {
        rps: latencies_ms.len() as f64 / secs,
        latencies_ms,
        forks_ms,
        exits_ms,
        private_dirty,
        pss,
        master_anon,
        master_huge,
        errors,
        kdamond_s,
        digests,
    })
}

/// The exits in an exit log (lines `L pid time` from a worker after its last response, `X pid
/// time` from the master once it has reaped that worker; seconds on the monotonic clock), in
/// milliseconds, for the workers that have both.
fn exit_times(log: &str) -> Vec<f64> {
    let mut last = HashMap::new();
    let mut exits = Vec::new();
    for line in log.lines() {
        let mut f = line.split_whitespace();
        let (Some(what), Some(pid), Some(Ok(t))) = (f.next(), f.next(), f.next().map(str::parse::<f64>)) else {
            continue;
        };
        match what {
            "L" => {
                last.insert(pid.to_string(), t);
            }
            "X" => {
                if let Some(l) = last.remove(pid) {
                    exits.push((t - l) * 1000.0);
                }
            }
            _ => {}
        }
    }
    exits
}

fn section(server: Server, opts: &super::setup::Options, pools: &PoolHold) -> Section {
    let (items, requests) = if opts.quick { (40_000, 2_000) } else { (400_000, 20_000) };
    let (program, version_arg, package) = match server {
        Server::Gunicorn => ("gunicorn", "--version", "gunicorn"),
        Server::Unicorn => ("unicorn", "-v", "unicorn"),
    };
    let mut section = Section {
        program: server.name().into(),
        workload: format!(
            "a master preloading {items} records (~{} MiB), {WORKERS} workers each replaced after {MAX_REQUESTS} \
             requests; {requests} requests, {CONCURRENCY} at a time, a connection each, on 127.0.0.1",
            (items * 2700) >> 20
        ),
        columns: [
            "setup",
            "requests/s",
            "latency p50 / p99",
            "master's fork while serving, median (forks)",
            "a recycled worker's exit, median (workers)",
            "a worker's private dirty memory, median",
            "a worker's PSS, median",
            "master's memory in huge pages",
            "failed requests",
            "kernel's DAMON monitor (kdamond) CPU while serving",
        ]
        .map(String::from)
        .to_vec(),
        rows: Vec::new(),
        notes: Vec::new(),
    };
    if !super::setup::installed(program, version_arg) {
        section.notes.push(format!("skipped: {program} is not installed (apt install {package})"));
        return section;
    }
    // A pool of 2.5 times the heap (a fifth of the records' size each is the heap's share).
    let pool_pages = (items * 2700 * 5 / 2) / (2 << 20) + 64;
    let mut plain_digests: Option<HashMap<usize, u64>> = None;
    let mut differ = Vec::new();
    let mut damon_seen = false;
    for setup in [Setup::plain(), Setup::hugeheap_thp(), Setup::hugeheap_pool(pool_pages)] {
        let cells = (|| -> Result<Vec<String>, String> {
            pools.set_for(&setup)?;
            let mut m = run_once(server, &setup, &opts.lib, items, requests)?;
            damon_seen |= m.kdamond_s.is_some();
            match &plain_digests {
                None => plain_digests = Some(m.digests.clone()),
                Some(p) => {
                    let wrong = m.digests.iter().filter(|(i, d)| p.get(i).is_some_and(|pd| pd != *d)).count();
                    if wrong > 0 {
                        differ.push(format!("{}: {wrong} responses differ from plain's", setup.name));
                    }
                }
            }
            let lat = &mut m.latencies_ms;
            Ok(vec![
                format!("{:.1}", m.rps),
                format!("{} / {}", ms(percentile(lat, 50.0)), ms(percentile(lat, 99.0))),
                format!("{} ({})", ms(median(&mut m.forks_ms)), m.forks_ms.len()),
                format!("{} ({})", ms(median(&mut m.exits_ms)), m.exits_ms.len()),
                mib_cell(median(&mut m.private_dirty) as usize),
                mib_cell(median(&mut m.pss) as usize),
                format!(
                    "{} of {} ({:.0}%)",
                    mib_cell(m.master_huge),
                    mib_cell(m.master_anon),
                    100.0 * m.master_huge as f64 / m.master_anon.max(1) as f64
                ),
                m.errors.to_string(),
                m.kdamond_s.map_or("not running".into(), |s| format!("{s:.1} s")),
            ])
        })();
        section.rows.push((setup.name.clone(), cells));
    }
    section.notes.push(if differ.is_empty() {
        "Every response body is identical to the plain run's, path by path.".into()
    } else {
        format!("RESPONSES DIFFER: {}", differ.join("; "))
    });
    section.notes.push(
        "The master's fork is timed inside the master (its config wraps the fork call); a worker's exit from its \
         last response to the master reaping it (hooks in each); huge pages are \
         AnonHugePages plus hugetlb pages, of the master's anonymous memory plus hugetlb pages, once the app \
         is loaded."
            .into(),
    );
    if damon_seen {
        section.notes.push(
            "The kernel's DAMON monitor runs on this machine: it samples physical pages and walks every mapping \
             of each sampled one, so a huge page that the workers map with 4 KiB entries after their first \
             writes (copy-on-write splits the mapping, not the page) costs it up to 512 entries per worker, \
             against one for a 4 KiB page. Its CPU time competes with the servers' for the same cores."
                .into(),
        );
    }
    section
}

/// The gunicorn section.
pub fn gunicorn(opts: &super::setup::Options, pools: &PoolHold) -> Section {
    section(Server::Gunicorn, opts, pools)
}

/// The unicorn section.
pub fn unicorn(opts: &super::setup::Options, pools: &PoolHold) -> Section {
    section(Server::Unicorn, opts, pools)
}

#[cfg(test)]
mod tests {
    use super::exit_times;

    #[test]
    fn exits_pair_a_workers_last_response_with_its_reaping() {
        let log = "L 10 5.000\nL 11 5.500\nX 10 5.250\nX 12 9.0\ngarbage\nX 11 6.000\n";
        assert_eq!(exit_times(log), vec![250.0, 500.0]);
        assert!(exit_times("X 1 2.0\nL 1 3.0\n").is_empty(), "a reaping before the last response pairs with nothing");
    }
}
