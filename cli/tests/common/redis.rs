//! A redis-server on a loopback port for the drop-in tests.

use std::path::Path;
use std::process::Command;

/// Whether redis-server and redis-cli are installed.
pub fn installed() -> bool {
    Command::new("redis-server").arg("--version").output().is_ok()
        && Command::new("redis-cli").arg("--version").output().is_ok()
}

/// A port nothing listens on now (the kernel's pick, released for the server to take).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A redis-server on a loopback port with its own data directory, stopped on drop.
pub struct Redis {
    pub child: std::process::Child,
    pub port: u16,
}

impl Redis {
    pub fn start(server: &mut Command, dir: &Path) -> Redis {
        let port = free_port();
        let child = server
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--enable-debug-command", "local"])
            .arg("--dir")
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start redis-server");
        let r = Redis { child, port };
        // Wait for it to answer (it is up in milliseconds; the bound only catches a server
        // that never comes up).
        for _ in 0..3000 {
            if r.cli(&["PING"]).trim() == "PONG" {
                return r;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("redis-server on port {port} did not answer");
    }

    /// Fills the server with `keys` keys of 200 bytes (DEBUG POPULATE); its DEBUG DIGEST.
    pub fn populate(&self, keys: usize) -> String {
        self.cli(&["DEBUG", "POPULATE", &keys.to_string(), "key", "200"]);
        self.cli(&["DEBUG", "DIGEST"])
    }

    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli").args(["-p", &self.port.to_string()]).args(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `field:value` of INFO's lines, as numbers where they are.
    pub fn info(&self, section: &str) -> std::collections::HashMap<String, String> {
        self.cli(&["INFO", section])
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_string(), v.trim().to_string()))
            .collect()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.cli(&["SHUTDOWN", "NOSAVE"]);
        let _ = self.child.wait();
    }
}
