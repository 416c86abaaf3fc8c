//! Callbacks through a real nginx (Debian's package) as a TLS-terminating reverse proxy in
//! front of the fake cloud's callback side, with keep-alive churn: `keepalive_timeout 1s;
//! keepalive_requests 3;` (nginx closes an idle connection after 1 s, and every connection
//! after its third request).
//!
//! - 200 callbacks, from 8 clients of one connection each, each client pausing between 0.9 and
//!   1.1 s between its callbacks: connections are reused just before, at and just after nginx
//!   closes them. Every callback is delivered exactly once.
//! - A burst of 500 getBill requests through the whole agent (WebSocket in, callbacks out
//!   through nginx): every one answered, each rID posted exactly once.
//!
//! Gate: the tests look for nginx at `$EXPIRENZA_NGINX`, else `/usr/sbin/nginx`, else `nginx`
//! on the `PATH`. Without it they print why and pass, unless `EXPIRENZA_REQUIRE_NGINX=1` (set
//! by `.ci/run`, which installs `nginx-light`): then a missing nginx fails them. A developer
//! runs them with `apt-get install nginx-light` and `cargo test --test callback_nginx --
//! --nocapture` (the figures: connections nginx opened, requests per connection).

#[path = "support/harness.rs"]
mod harness;
#[path = "support/tls.rs"]
mod tls;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use expirenza_agent::callback::{CallbackClient, Payload};
use expirenza_agent::secret::Secret;
use expirenza_agent::sign::SignedBody;
use expirenza_agent::Config;
use harness::*;
use testkit::FakeCloud;
use tls::TestPki;

const T: Duration = Duration::from_secs(120);

/// The nginx binary, or `None` (with the reason printed) when the test may be skipped.
fn nginx_binary() -> Option<PathBuf> {
    let candidates = std::env::var_os("EXPIRENZA_NGINX")
        .map(PathBuf::from)
        .into_iter()
        .chain([PathBuf::from("/usr/sbin/nginx")])
        .chain(
            std::env::var_os("PATH")
                .map(|p| {
                    std::env::split_paths(&p)
                        .map(|d| d.join("nginx"))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default(),
        );
    for c in candidates {
        if c.is_file() {
            return Some(c);
        }
    }
    let required = std::env::var("EXPIRENZA_REQUIRE_NGINX").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "EXPIRENZA_REQUIRE_NGINX=1 but no nginx found (apt-get install nginx-light, or set EXPIRENZA_NGINX)"
    );
    eprintln!("SKIPPED: nginx not installed (apt-get install nginx-light to run this test)");
    None
}

/// nginx in front of `upstream` (the fake cloud's callback port), stopped on drop.
struct Nginx {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Nginx {
    fn start(bin: &Path, pki: &TestPki, upstream: u16, tag: &str) -> Nginx {
        let dir = temp_dir(tag);
        let (cert, key) = pki.leaf_pem();
        std::fs::write(dir.join("cert.pem"), cert).unwrap();
        std::fs::write(dir.join("key.pem"), key).unwrap();
        for d in ["body", "proxy", "fastcgi", "uwsgi", "scgi"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        // Workers run as the user who started nginx; as root nginx would switch to "nobody".
        // SAFETY: geteuid has no preconditions and cannot fail.
        #[allow(unsafe_code)]
        let root = unsafe { libc::geteuid() } == 0;
        let d = dir.display();
        let conf = format!(
            "{user}daemon off;\nmaster_process on;\nworker_processes 1;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log warn;\nevents {{ worker_connections 1024; }}\n\
             http {{\n\
               log_format conns '$connection $connection_requests $status $request_uri';\n\
               access_log {d}/access.log conns;\n\
               client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;\n\
               fastcgi_temp_path {d}/fastcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n\
               keepalive_timeout 1s;\n\
               keepalive_requests 3;\n\
               client_max_body_size 16m;\n\
               upstream cloud {{ server 127.0.0.1:{upstream}; keepalive 16; }}\n\
               server {{\n\
                 listen 127.0.0.1:{port} ssl;\n\
                 ssl_certificate {d}/cert.pem;\n\
                 ssl_certificate_key {d}/key.pem;\n\
                 location / {{\n\
                   proxy_pass http://cloud;\n\
                   proxy_http_version 1.1;\n\
                   proxy_set_header Connection \"\";\n\
                 }}\n\
               }}\n\
             }}\n",
            user = if root { "user root root;\n" } else { "" },
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new(bin)
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&conf_path)
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start nginx");
        let n = Nginx { child, port, dir };
        n.wait_listening();
        n
    }

    /// Readiness: nginx accepts on its port (or has exited: then its log says why).
    fn wait_listening(&self) {
        let end = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            let log = std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default();
            assert!(Instant::now() < end, "nginx did not start:\n{log}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}/callback", self.port)
    }

    /// Stops nginx gracefully (SIGQUIT: a worker logs each request after answering it, so only
    /// once the workers have exited is the access log complete), then (connections, requests)
    /// it logged.
    fn stop_and_count(&mut self) -> (usize, usize) {
        // SAFETY: kill with a pid we spawned and not yet reaped, and a valid signal number.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGQUIT);
        }
        let end = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < end, "nginx did not stop within 30 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        let log = std::fs::read_to_string(self.dir.join("access.log")).unwrap_or_default();
        let mut conns: HashMap<&str, usize> = HashMap::new();
        for l in log.lines() {
            *conns.entry(l.split(' ').next().unwrap_or("")).or_default() += 1;
        }
        (conns.len(), conns.values().sum())
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            // SIGTERM: nginx's fast shutdown, the master stops its workers.
            // SAFETY: kill with a pid we spawned and not yet reaped, and a valid signal number.
            #[allow(unsafe_code)]
            unsafe {
                libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
            }
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Each rID posted exactly once, answered 200, with a good signature.
fn assert_once_each(cloud: &FakeCloud, rids: &[String]) {
    let mut count: HashMap<String, usize> = HashMap::new();
    for c in cloud.all_callbacks() {
        assert!(c.signature_ok && c.resto_id_ok, "{c:?}");
        assert_eq!(c.answered, 200);
        *count.entry(c.rid.unwrap_or_default()).or_default() += 1;
    }
    for rid in rids {
        assert_eq!(
            count.get(rid),
            Some(&1),
            "{rid} posted {:?} times",
            count.get(rid)
        );
    }
    assert_eq!(count.len(), rids.len(), "callbacks nobody asked for");
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_spaced_around_the_keepalive_timeout_are_delivered_once() {
    let Some(bin) = nginx_binary() else { return };
    let cloud = fake_cloud().await;
    let pki = TestPki::new();
    let mut nginx = Nginx::start(&bin, &pki, port_of(&cloud.callback_url()), "nginx-spaced");
    let dir = temp_dir("nginx-spaced-client");
    let ca = dir.join("ca.pem");
    pki.write_ca(&ca);
    const CLIENTS: usize = 8;
    const EACH: usize = 25;
    let mut tasks = Vec::new();
    for client in 0..CLIENTS {
        let mut cfg = Config::for_loopback(
            RESTO,
            SECRET,
            "ws://127.0.0.1:9/x",
            &nginx.url(),
            &dir,
            &dir,
        );
        cfg.ca_file = Some(ca.clone());
        // One connection per client: every callback reuses the one before it, when nginx
        // has not closed it.
        cfg.callback.max_connections = 1;
        let c = CallbackClient::new(&cfg).unwrap();
        tasks.push(tokio::spawn(async move {
            for i in 0..EACH {
                let k = client * EACH + i;
                let rid = format!("spaced-{k}");
                let text = format!(r#"{{"rID":"{rid}","state":"SUCCESS"}}"#);
                let body = SignedBody::new(&Secret::new(SECRET), text.into_bytes());
                let deadline = std::time::Instant::now() + Duration::from_secs(60);
                let d = c.post("checkWork", Payload::Bytes(&body), deadline).await;
                assert_eq!(d.unwrap_or_else(|e| panic!("{rid}: {e}")).status, 200);
                // 0.9 to 1.1 s: around nginx's 1 s keep-alive timeout (workload pacing).
                let gap = 900 + (k * 37) % 201;
                tokio::time::sleep(Duration::from_millis(gap as u64)).await;
            }
        }));
    }
    for t in tasks {
        tokio::time::timeout(T, t).await.expect("in time").unwrap();
    }
    let rids: Vec<String> = (0..CLIENTS * EACH).map(|k| format!("spaced-{k}")).collect();
    assert_once_each(&cloud, &rids);
    let (conns, reqs) = nginx.stop_and_count();
    println!(
        "nginx spaced: {reqs} requests on {conns} connections ({:.2} per connection)",
        reqs as f64 / conns.max(1) as f64
    );
    assert_eq!(reqs, rids.len(), "nginx saw each request once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_500_through_nginx_is_answered_once_each() {
    let Some(bin) = nginx_binary() else { return };
    let cloud = fake_cloud().await;
    let pki = TestPki::new();
    let mut nginx = Nginx::start(&bin, &pki, port_of(&cloud.callback_url()), "nginx-burst");
    let dir = temp_dir("nginx-burst-agent");
    let mirror = demo_mirror(&dir);
    let ca = dir.join("ca.pem");
    pki.write_ca(&ca);
    let mut cfg = fast_config(&cloud.ws_url(), &nginx.url(), &mirror, &dir);
    cfg.ca_file = Some(ca);
    // Counted, not timed: the protocol's window, not the fault tests' short one.
    cfg.callback.attempt_timeout_secs = 10;
    cfg.callback.deadline_secs = 80;
    cfg.journal.pos_ack_timeout_secs = 60;
    let agent = start(cfg);
    cloud.wait_connected(T).await.expect("connect");
    const BURST: usize = 500;
    let rids: Vec<String> = (0..BURST).map(|i| format!("burst-{i}")).collect();
    let started = Instant::now();
    for (i, rid) in rids.iter().enumerate() {
        assert!(
            cloud
                .send_text(&get_bill(rid, &((i % 12) + 1).to_string()))
                .await
        );
    }
    let done = agent.ops.wait(BURST, T).await;
    assert_eq!(done.len(), BURST, "every request finished");
    assert!(done.iter().all(|(_, ok)| *ok), "every callback delivered");
    assert_once_each(&cloud, &rids);
    let (conns, reqs) = nginx.stop_and_count();
    println!(
        "nginx burst: {BURST} answered in {:.1} s, {reqs} requests on {conns} connections",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(reqs, BURST, "nginx saw each request once");
    agent.stop().await;
}
