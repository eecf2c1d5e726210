//! What a runner's settings accept: names, variables' names, addresses, memory.

use super::{RunnerKind, parse_memory, validate_address, validate_env_name, validate_name};

#[test]
fn memory_takes_bytes_or_a_unit() {
    assert_eq!(parse_memory("1024"), Ok(1024));
    assert_eq!(parse_memory("512MB"), Ok(512_000_000));
    assert_eq!(parse_memory("512M"), Ok(512_000_000));
    assert_eq!(parse_memory("4GiB"), Ok(4 << 30));
    assert_eq!(parse_memory("1.5 Gi"), Ok(3 << 29));
    assert_eq!(parse_memory("2kib"), Ok(2048));
    for bad in ["", "GiB", "4 parsecs", "-1", "0", "1e3"] {
        assert!(parse_memory(bad).is_err(), "{bad}");
    }
}

#[test]
fn runner_names_variables_and_addresses_are_checked() {
    assert_eq!(RunnerKind::parse("ray"), Some(RunnerKind::Ray));
    assert_eq!(RunnerKind::parse("k8s"), None);
    for ok in ["lab", "gpu-pool_2"] {
        assert!(validate_name(ok).is_ok(), "{ok}");
    }
    for bad in ["", "a b", "lab.eu", "é"] {
        assert!(validate_name(bad).is_err(), "{bad}");
    }
    for ok in ["ANTHROPIC_API_KEY", "_X", "a1"] {
        assert!(validate_env_name(ok).is_ok(), "{ok}");
    }
    for bad in ["", "1A", "A-B", "A=B", "A B"] {
        assert!(validate_env_name(bad).is_err(), "{bad}");
    }
    for ok in [
        "http://ray-head:8265",
        "https://ray.example.com/",
        "http://127.0.0.1:1",
    ] {
        assert!(validate_address(ok).is_ok(), "{ok}");
    }
    for bad in [
        "ray-head:8265",
        "http://",
        "http://h/api",
        "http://user@h:1",
        "ftp://h",
    ] {
        assert!(validate_address(bad).is_err(), "{bad}");
    }
}
