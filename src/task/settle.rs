//! Settling what dead or killed cms processes left before a command looks at the repository.

use super::discard::finish_pending_discards;
use super::merge::recover;
use crate::workspace::Workspace;

/// Settles tasks whose supervisor died (`interrupted`, their leftovers committed), discards
/// and merges a crash interrupted. Returns a line for each thing settled, for the user.
pub fn settle(ws: &Workspace) -> Vec<String> {
    // Remote tasks first: their jobs are stopped and their results brought home, which the
    // local reconcile (it only knows local processes) leaves to this.
    let mut lines = super::remote::settle_orphans(ws);
    ws.reconcile_running();
    for (name, outcome) in finish_pending_discards(ws) {
        lines.push(match outcome {
            Ok(()) => {
                format!("finished discarding task '{name}', which an interrupted cms left halfway")
            }
            Err(err) => format!("could not finish the interrupted discard of task '{name}': {err}"),
        });
    }
    lines.extend(recover(ws));
    lines
}
