//! A parent agent delegating to a Ray cluster: `task_start` with `on` runs the task on the
//! user's runner, within the same caps, and it comes home as any task.

use serde_json::json;

use super::Mcp;
use crate::test_ray::ray_env;

#[test]
fn ray_task_start_over_mcp_runs_on_the_named_runner_within_the_caps() {
    let Some((env, _head, _turn)) = ray_env("ray_task_start_over_mcp_runs_on_the_named_runner")
    else {
        return;
    };
    env.steps(json!([{"write": {"path": "far.txt", "content": "far\n"}}]));
    let mcp = Mcp::start(&env);
    let task = mcp.ok(
        "task_start",
        json!({"prompt": "x", "name": "delegated", "on": "lab", "max_cost": 0.5, "wait": true}),
    );
    assert_eq!(task["status"], "completed", "{task:#}");
    assert_eq!(task["remote"]["runner"], "lab", "{task:#}");
    assert_eq!(task["safety"]["limits"]["max_cost_usd"], 0.5, "{task:#}");
    assert_eq!(env.git(&["show", "cms/delegated:far.txt"]), "far");
    // A runner the user did not configure is refused, naming the ones there are.
    let (text, _) = mcp.err("task_start", json!({"prompt": "x", "on": "elsewhere"}));
    assert!(text.contains("no runner named 'elsewhere'"), "{text}");
    assert!(text.contains("lab"), "{text}");
}
