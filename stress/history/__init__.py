"""The history of a run: every call a task made, with its result and its time span.

A history is a JSON Lines file (docs/history-format.md): one header line, then one line per
operation, round records, and a trailer. `Operation` is the one record of a call that happened,
from the target to the file to the checker; `HistoryWriter` streams a history out and
`read_history` streams it back, validating every line (`follow_history`: while it is still
being written).
"""

from stress.history._reader import (
    BATCH,
    HistoryReader,
    follow_history,
    load_history,
    loads,
    parse_header,
    parse_operation,
    read_history,
)
from stress.history._record import (
    FORMAT_KEY,
    FORMAT_VERSION,
    KINDS,
    MIN_RESULT,
    Header,
    Operation,
    host_kernel,
)
from stress.history._writer import (
    HistoryWriter,
    call_fields,
    encode_operation,
    write_history,
)

__all__ = [
    "BATCH",
    "FORMAT_KEY",
    "FORMAT_VERSION",
    "KINDS",
    "MIN_RESULT",
    "Header",
    "HistoryReader",
    "HistoryWriter",
    "Operation",
    "call_fields",
    "encode_operation",
    "follow_history",
    "host_kernel",
    "load_history",
    "loads",
    "parse_header",
    "parse_operation",
    "read_history",
    "write_history",
]
