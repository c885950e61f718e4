//! A load balancer of the test's own in front of collectors: Debian's HAProxy, started by
//! `scripts/haproxy.sh` with config/haproxy/haproxy.cfg (`/readyz` as the health check).
//! Dropping the [`Balancer`] stops it and removes its directory.

use std::{
    net::SocketAddr,
    process::Command,
    time::{Duration, Instant},
};

use crate::{http, repo_root, server::quiet_port};

pub struct Balancer {
    name: String,
    /// Where beacons go.
    pub addr: SocketAddr,
}

impl Balancer {
    /// Starts HAProxy on a free loopback port in front of `backends`; waits until it forwards
    /// a request to a collector that is ready.
    pub fn start(test: &str, backends: &[SocketAddr]) -> Balancer {
        let name = format!("e2e-{test}-{}", std::process::id());
        let port = quiet_port();
        let backends: Vec<String> = backends.iter().map(SocketAddr::to_string).collect();
        let out = Command::new("bash")
            .arg(repo_root().join("scripts/haproxy.sh"))
            .args(["start", "--name", &name, "--port", &port.to_string(), "--backends", &backends.join(",")])
            .output()
            .expect("cannot run scripts/haproxy.sh");
        assert!(
            out.status.success(),
            "haproxy.sh start: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let balancer = Balancer { name, addr: SocketAddr::from(([127, 0, 0, 1], port)) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !balancer.forwards() {
            assert!(Instant::now() < deadline, "HAProxy found no ready collector within 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        balancer
    }

    /// Whether a request through the balancer reaches a ready collector.
    fn forwards(&self) -> bool {
        http().get(&format!("http://{}/readyz", self.addr)).call().is_ok_and(|r| r.status() == 200)
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(repo_root().join("scripts/haproxy.sh"))
            .args(["stop", "--name", &self.name])
            .output();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(repo_root().join(".work/haproxy").join(&self.name));
        }
    }
}
