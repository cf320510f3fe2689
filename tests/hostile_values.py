"""The shared table of hostile values sent wherever a request or a file enters, written
percent-encoded (as they travel in a URL or a form) so that bytes no `str` can hold
(lone surrogates, invalid UTF-8) can be sent too."""

from __future__ import annotations

#: label -> the value percent-encoded.
HOSTILE_VALUES: dict[str, str] = {
    "empty": "",
    "blank": "%20%09",
    "huge text": "A" * 20_000,
    "huge number": "9" * 400,
    "negative": "-1",
    "below -2^63": "-9223372036854775809",
    "2^63": "9223372036854775808",
    "past 2^63": "9999999999999999999",
    "2^64": "18446744073709551616",
    "float overflow": "1e309",
    "not a number": "NaN",
    "time overflowing upwards": "9999-12-31T23:59:59-05:00",
    "time overflowing downwards": "0001-01-01T00:00:00%2B05:00",
    "year zero": "0000-01-01T00:00:00Z",
    "NUL": "%00",
    "NUL inside": "acme%00x",
    "lone surrogate (as UTF-8)": "%ED%A0%80",
    "invalid UTF-8": "%FF%FE",
    "overlong slash": "%C0%AF",
    "double-encoded NUL": "%2500",
    "double-encoded slash": "..%252F..%252F",
    "double-encoded surrogate": "%25ED%25A0%2580",
    "traversal": "..%2F..%2Fetc%2Fpasswd",
    "dot dot": "..",
    "terminal escapes": "%1B%5D0%3Bowned%07%1B%5B2J%0D%C2%9B",
    "CRLF": "x%0D%0ASet-Cookie:%20a=b",
    "right-to-left override": "%E2%80%AE",
    "HTML": "%3Cscript%3Ealert(1)%3C%2Fscript%3E",
    "commas": ",,,",
    "status with NUL": "enqueued,%00",
    "SQL": "'%20OR%201=1%20--",
    "LIKE wildcards": "%25_%25",
}
