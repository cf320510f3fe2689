"""The application's side of the queue: the adapter (typed jobs in), job handles and
results, function jobs, the blocking front for code without an event loop, and the run
context a job reads while it executes."""
