//! A Jobs API that stops answering for a while (a head restarting, a network blip) is waited
//! for: the task goes on running on the cluster and comes home when the API answers again.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;

use super::{HANDED, ray_env, remote_of};
use crate::common::{FAKE_CLAUDE, eventually};

/// A TCP forwarder on loopback in front of the head's Jobs API that can be cut and restored:
/// cut, it refuses every connection as a head that is down does.
struct Link {
    port: u16,
    up: Arc<AtomicBool>,
}

impl Link {
    fn to(target: &str) -> Link {
        let target = target.trim_start_matches("http://").to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let open = Arc::clone(&up);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if !open.load(Ordering::SeqCst) {
                    // Closed at once, before a byte is read: the request fails.
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
                pipe(server, client);
            }
        });
        Link { port, up }
    }

    fn set(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 || to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

#[test]
fn ray_jobs_api_unreachable_for_a_while_is_waited_for_and_the_task_comes_home() {
    let Some((env, head, _turn)) = ray_env("ray_jobs_api_unreachable_for_a_while") else {
        return;
    };
    let link = Link::to(&head.address);
    let names: Vec<String> = HANDED.iter().map(|n| format!("\"{n}\"")).collect();
    let mut config = head.runner_toml(
        "lab",
        &remote_of(&env),
        &format!(
            "env = [{}]\ncpus = 0.1\nclaude = \"{FAKE_CLAUDE}\"",
            names.join(", ")
        ),
    );
    config = config.replace(&head.address, &format!("http://127.0.0.1:{}", link.port));
    env.user_config(&config);
    env.steps(json!([
        {"write": {"path": "a.txt", "content": "a\n"}},
        {"sleep_ms": 6000},
        {"write": {"path": "b.txt", "content": "b\n"}},
    ]));
    env.cms(&["task", "slow", "-n", "blip", "--on", "lab", "--detach"])
        .success();
    // Cut once the session is under way, as the follower sees it.
    eventually("the session to start", || {
        let task = env.cms(&["show", "blip", "--json"]).json();
        task["session_id"].is_string()
    });
    link.set(false);
    // The outage itself: a span of time, not a wait for anything.
    std::thread::sleep(Duration::from_secs(3));
    // Unreachable for a while is not the task's end.
    let task = env.cms(&["show", "blip", "--json"]).json();
    assert_eq!(task["status"], "running", "{task:#}");
    link.set(true);
    let task = env.until_status("blip", "completed");
    assert_eq!(env.git(&["show", "cms/blip:a.txt"]), "a");
    assert_eq!(env.git(&["show", "cms/blip:b.txt"]), "b");
    assert!(task["error"].is_null(), "{task:#}");
}
