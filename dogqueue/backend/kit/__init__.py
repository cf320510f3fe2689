"""The storage kit: what every backend shares. A backend imports the kit, never a sibling.

- `sqlfiles`: the one loader of named queries and numbered migrations;
- `rows`: the time codec and jobs as table rows;
- `workingset`: the projection with its dequeue, lease, key and dependents indexes;
- `batchset`: a batch's working set, seeded with its declared reads, collecting writes;
- `batching`: group commit (pending, batch, split a failed batch, deliver).

The chain extender (`ChainHeads`) lives in `dogqueue.log.chain`, beside the hash it
extends, so that `verify` uses it too.
"""
