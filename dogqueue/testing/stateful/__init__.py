"""The stateful property test: a backend driven by random operations and clock moves,
compared after every step with the reference model (`dogqueue.testing.model`).

Only the public `Backend` contract is used, except through a factory's optional hooks
(see `dogqueue.testing.factories`). Each run owns one event loop.

Modules, one responsibility each: `common` (pools, bundles, config, malformed calls),
`base` (loop, clock, model, helpers), `operations` (each contract call checked against
the model), `rules` (the lifecycle rules), `probes` (every refusal provoked),
`workflows`, `schedules`, `invariants` (jobs and events against the model), `reads`
(log reader and worker hints), `coverage` (what is drawn and compared, declared beside
the code that does it), `machine` (the assembled state machine).
"""

from __future__ import annotations

from dogqueue.testing.stateful.common import CONFIG
from dogqueue.testing.stateful.machine import BackendStateMachine, backend_state_machine

__all__ = ["CONFIG", "BackendStateMachine", "backend_state_machine"]
