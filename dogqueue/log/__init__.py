"""The log as stored, shared by backends and the audit tools without either importing the
other: the hash chain and the read-only `LogReader` protocol."""
