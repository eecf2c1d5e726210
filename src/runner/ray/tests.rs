//! The Jobs client against a real Ray head (the `ray_` tests, one head for this test process,
//! from the integration tests' harness), and its parts that need none.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::{JobSpec, JobState, JobStatus, RayClient, one_line, zip_binary};
use crate::runner::RunnerError;

#[path = "../../../tests/common/ray.rs"]
#[allow(dead_code)]
mod head;
#[path = "../../../tests/common/poll.rs"]
#[allow(dead_code)]
mod poll;

use head::ray_head;
use poll::eventually;

/// A job running `entrypoint`, with a submission id of its own.
fn job(test: &str, entrypoint: &str) -> JobSpec {
    static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    JobSpec {
        submission_id: format!("cms-test-{test}-{}-{n}", std::process::id()),
        entrypoint: entrypoint.to_owned(),
        env_vars: BTreeMap::new(),
        working_dir: None,
        num_cpus: 1.0,
        memory: None,
        metadata: BTreeMap::from([("cms".to_owned(), test.to_owned())]),
    }
}

/// The job's status once it has ended.
fn ended(client: &RayClient, id: &str) -> JobStatus {
    eventually(&format!("job {id} to end"), || {
        let status = client.status(id).map_err(|e| e.to_string())?;
        if status.state.is_terminal() {
            Ok(status)
        } else {
            Err(format!("{status:?}"))
        }
    })
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn ray_a_shell_job_runs_and_cms_reads_its_logs_and_success() {
    let Some(head) = ray_head("ray_a_shell_job_runs_and_cms_reads_its_logs_and_success") else {
        return;
    };
    let client = RayClient::new(&head.address).unwrap();
    assert_eq!(client.version().unwrap(), head::PINNED_VERSION);
    let spec = job(
        "logs",
        "echo first line; echo second line >&2; echo third line",
    );
    client.submit(&spec).unwrap();
    let status = ended(&client, &spec.submission_id);
    assert_eq!(status.state, JobState::Succeeded, "{status:?}");
    assert_eq!(status.exit_code, Some(0));
    let logs = client.logs(&spec.submission_id).unwrap();
    // Ray's own lines (the runtime env, the entrypoint) come first.
    let ours: Vec<&str> = logs
        .lines()
        .filter(|l| l.ends_with(" line") && !l.contains("entrypoint"))
        .collect();
    assert_eq!(ours, ["first line", "second line", "third line"], "{logs}");
    // The same id again is refused: ids are how the local side finds its job.
    let err = client.submit(&spec).unwrap_err();
    assert!(matches!(err, RunnerError::Refused { .. }), "{err}");
    assert!(!err.to_string().contains('\n'), "{err}");
    client.delete(&spec.submission_id).unwrap();
    let err = client.status(&spec.submission_id).unwrap_err();
    assert!(matches!(err, RunnerError::UnknownJob { .. }), "{err}");
}

#[test]
fn ray_a_failing_job_is_failed_with_its_exit_code() {
    let Some(head) = ray_head("ray_a_failing_job_is_failed_with_its_exit_code") else {
        return;
    };
    let client = RayClient::new(&head.address).unwrap();
    let spec = job("fails", "echo going down; exit 3");
    client.submit(&spec).unwrap();
    let status = ended(&client, &spec.submission_id);
    assert_eq!(status.state, JobState::Failed, "{status:?}");
    assert_eq!(status.exit_code, Some(3), "{status:?}");
    assert!(status.message.is_some(), "{status:?}");
}

#[test]
fn ray_env_values_reach_the_job_and_never_appear_in_what_cms_says() {
    let Some(head) = ray_head("ray_env_values_reach_the_job_and_never_appear_in_what_cms_says")
    else {
        return;
    };
    let client = RayClient::new(&head.address).unwrap();
    let secret = format!("sk-secret-{}", std::process::id());
    // The job prints the value's hash, never the value, so the check itself leaks nothing.
    let mut spec = job(
        "env",
        "printf %s \"$CMS_TEST_TOKEN\" | sha256sum | cut -d' ' -f1",
    );
    spec.env_vars
        .insert("CMS_TEST_TOKEN".to_owned(), secret.clone());
    let shown = format!("{spec:?}");
    assert!(!shown.contains(&secret), "{shown}");
    assert!(shown.contains("CMS_TEST_TOKEN"), "{shown}");
    client.submit(&spec).unwrap();
    let status = ended(&client, &spec.submission_id);
    assert_eq!(status.state, JobState::Succeeded, "{status:?}");
    let logs = client.logs(&spec.submission_id).unwrap();
    assert!(logs.contains(&sha256_hex(&secret)), "{logs}");
    assert!(!logs.contains(&secret), "{logs}");
    // Every error about the job leaves the value out.
    let errors = [
        client.submit(&spec).unwrap_err(),
        client.delete("cms-test-no-such-job").unwrap_err(),
    ];
    for err in errors {
        let text = format!("{err} {err:?}");
        assert!(!text.contains(&secret), "{text}");
    }
}

#[test]
fn ray_a_stopped_job_leaves_no_process_behind() {
    let Some(head) = ray_head("ray_a_stopped_job_leaves_no_process_behind") else {
        return;
    };
    let client = RayClient::new(&head.address).unwrap();
    let spec = job("stop", "echo shell=$$; sleep 600 & echo sleeper=$!; wait");
    client.submit(&spec).unwrap();
    let pids: Vec<u32> = eventually("the job to print its processes", || {
        let logs = client
            .logs(&spec.submission_id)
            .map_err(|e| e.to_string())?;
        let pid = |key: &str| {
            logs.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|p| p.trim().parse::<u32>().ok())
        };
        match (pid("shell="), pid("sleeper=")) {
            (Some(shell), Some(sleeper)) => Ok(vec![shell, sleeper]),
            _ => Err(logs),
        }
    });
    for pid in &pids {
        assert!(Path::new(&format!("/proc/{pid}")).exists(), "{pid} runs");
    }
    assert!(client.stop(&spec.submission_id).unwrap());
    let status = ended(&client, &spec.submission_id);
    assert_eq!(status.state, JobState::Stopped, "{status:?}");
    for pid in pids {
        eventually(&format!("process {pid} of the stopped job to end"), || {
            // Gone, or a zombie no one has reaped yet (it runs nothing).
            match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                Err(_) => true,
                Ok(stat) => stat
                    .rsplit(')')
                    .next()
                    .is_some_and(|s| s.trim_start().starts_with('Z')),
            }
        });
    }
}

#[test]
fn ray_cms_package_is_uploaded_once_and_runs_as_the_jobs_cms() {
    let Some(head) = ray_head("ray_cms_package_is_uploaded_once_and_runs_as_the_jobs_cms") else {
        return;
    };
    let client = RayClient::new(&head.address).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("cms");
    // Content of this process alone, so an earlier run's package on a reused head cannot
    // answer for it.
    let marker = format!(
        "package-{}-{:?}",
        std::process::id(),
        std::time::SystemTime::now()
    );
    std::fs::write(&exe, format!("#!/bin/sh\necho \"{marker} $*\"\n")).unwrap();
    let (uri, uploaded) = client.ensure_package_uploaded(&exe).unwrap();
    assert!(uploaded, "a new package is uploaded");
    assert!(
        uri.starts_with("gcs://_ray_pkg_cms_") && uri.ends_with(".zip"),
        "{uri}"
    );
    assert_eq!(uri.len(), "gcs://_ray_pkg_cms_.zip".len() + 16, "{uri}");
    let again = client.ensure_package_uploaded(&exe).unwrap();
    assert_eq!(
        again,
        (uri.clone(), false),
        "the second time nothing is uploaded"
    );
    // Another client (another cms command) finds the package on the cluster.
    let other = RayClient::new(&head.address).unwrap();
    assert_eq!(other.ensure_package(&exe).unwrap(), uri);
    let mut spec = job(
        "package",
        "chmod +x ./cms 2>/dev/null; ./cms worker --job x",
    );
    spec.working_dir = Some(uri);
    client.submit(&spec).unwrap();
    let status = ended(&client, &spec.submission_id);
    let logs = client.logs(&spec.submission_id).unwrap();
    assert_eq!(status.state, JobState::Succeeded, "{status:?}\n{logs}");
    assert!(logs.contains(&format!("{marker} worker --job x")), "{logs}");
}

#[test]
fn ray_every_call_about_an_unknown_job_says_it_is_unknown() {
    let Some(head) = ray_head("ray_every_call_about_an_unknown_job_says_it_is_unknown") else {
        return;
    };
    let client = RayClient::new(&head.address).unwrap();
    let id = "cms-no-such-job";
    let errors = [
        client.status(id).map(|_| ()).unwrap_err(),
        client.logs(id).map(|_| ()).unwrap_err(),
        client.stop(id).map(|_| ()).unwrap_err(),
        client.delete(id).unwrap_err(),
    ];
    for err in errors {
        assert!(
            matches!(&err, RunnerError::UnknownJob { job, .. } if job == id),
            "{err}"
        );
    }
}

#[test]
fn an_unreachable_head_is_an_unreachable_error() {
    let port = head::free_port();
    let client = RayClient::new(&format!("http://127.0.0.1:{port}/")).unwrap();
    let err = client.version().unwrap_err();
    assert!(
        matches!(&err, RunnerError::Unreachable { address, .. } if *address == format!("http://127.0.0.1:{port}")),
        "{err:?}"
    );
    assert!(!err.to_string().contains('\n'), "{err}");
    let err = client.submit(&job("unreachable", "true")).unwrap_err();
    assert!(matches!(err, RunnerError::Unreachable { .. }), "{err:?}");
}

#[test]
fn an_address_that_is_no_jobs_api_url_is_refused_before_any_request() {
    for address in [
        "ray-head:8265",
        "ftp://h:1",
        "http://",
        "http://h:8265/api",
        "http://u@h:1",
    ] {
        let err = RayClient::new(address).err().unwrap();
        assert!(
            matches!(err, RunnerError::Address { .. }),
            "{address}: {err}"
        );
    }
}

#[test]
fn the_heads_messages_are_one_line_without_secrets() {
    let traceback = "Traceback (most recent call last):\n  File \"x.py\"\nValueError: bad env \
                     {'TOKEN': 'sk-123'}\n\n";
    assert_eq!(
        one_line(traceback, &["sk-123"]),
        "ValueError: bad env {'TOKEN': '<redacted>'}"
    );
    assert_eq!(one_line("", &[]), "(no message)");
    let long = "é".repeat(400);
    let short = one_line(&long, &[]);
    assert!(short.ends_with("...") && short.len() <= 303, "{short}");
}

#[test]
fn the_package_is_a_zip_of_one_executable_cms_the_same_for_the_same_binary() {
    let binary = b"\x7fELF not really".repeat(1000);
    let zipped = zip_binary(&binary).unwrap();
    assert_eq!(
        zipped,
        zip_binary(&binary).unwrap(),
        "same bytes, same package"
    );
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zipped)).unwrap();
    assert_eq!(archive.len(), 1);
    let mut file = archive.by_name("cms").unwrap();
    assert_eq!(file.unix_mode().map(|m| m & 0o777), Some(0o755));
    let mut content = Vec::new();
    file.read_to_end(&mut content).unwrap();
    assert_eq!(content, binary);
}
