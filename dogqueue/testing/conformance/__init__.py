"""The conformance suite: what every backend must do, checked through the public
`Backend` contract only. Run it on your own backend with

    python -m pytest --pyargs dogqueue.testing.conformance --dogqueue-backend=MODULE:FACTORY

where `MODULE:FACTORY` names a backend factory as the property suite takes it
(`dogqueue.testing.factories`); tests needing an optional hook the factory lacks skip.
Without the option it runs on the built-in backends (PostgreSQL's tests need a server).
"""
