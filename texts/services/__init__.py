"""Writes of the texts app's outbound side.

- ``outbound``: status transitions, enqueueing recipients (one INSERT … SELECT), test sends.
- ``dispatch``: the sending engine that claims, schedules, sends and records a batch.
- ``pacing``: the pacer that hands each sender's free capacity to its parked messages.
- ``sweep``: recovery from workers that died and tasks that were lost.
- ``broadcasts``: segment (broadcast) messages: the audience, the set-based fan-out, the lock and the progress.
"""

from .dispatch import BatchOutcome, outbound_claim, outbound_process_batch, status_callback_for
from .outbound import BATCH_SIZE, enqueue_after_commit, outbound_enqueue, outbound_transition, test_send
from .pacing import PaceResult, outbound_pace
from .sweep import SweepResult, outbound_sweep

__all__ = [
    "BATCH_SIZE",
    "BatchOutcome",
    "PaceResult",
    "SweepResult",
    "enqueue_after_commit",
    "outbound_claim",
    "outbound_enqueue",
    "outbound_pace",
    "outbound_process_batch",
    "outbound_sweep",
    "outbound_transition",
    "status_callback_for",
    "test_send",
]
