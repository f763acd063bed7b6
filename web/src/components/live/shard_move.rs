//! A placement change in the rebalance panel: the moving shard with its
//! source → target cluster, the six phases of its move (the current one
//! marked, the done ones ticked), rows and bytes copied against the
//! source's, rate and ETA, the write pause once cut over, and, when the job
//! ended, what moved. The words are `live::words`'.

use ecoshard_core::wire::{JobState, RebalanceJob, ShardMoveProgress};
use yew::prelude::*;

use crate::live::{
    MOVE_PHASES, move_phase, phase_step, shard_move_copied, shard_move_ended, shard_move_route,
    write_pause,
};

/// The move's view (`job.shard_move` is `progress`).
pub(super) fn shard_move(job: &RebalanceJob, progress: &ShardMoveProgress) -> Html {
    html! {
        <div class="moving-shard" id="moving-shard" data-shard={progress.shard.clone()}
            data-phase={move_phase(progress.phase)}>
            <div id="move-route">{ shard_move_route(progress) }</div>
            <ol class="phases">
                { for MOVE_PHASES.iter().map(|phase| {
                    let step = phase_step(*phase, progress.phase);
                    html! {
                        <li class={step}>{ if step == "done" { "✓ " } else { "" } }{ move_phase(*phase) }</li>
                    }
                }) }
            </ol>
            <div class="job-numbers"><span id="move-copied">{ shard_move_copied(progress) }</span></div>
            if let Some(pause) = write_pause(progress) {
                <p class="muted small" id="write-pause">{ pause }</p>
            }
            if job.state == JobState::Done {
                <p class="good" id="move-ended">{ "✓ " }{ shard_move_ended(progress, job.moved) }</p>
            }
        </div>
    }
}
