"""The files of a run directory (`mmrace run --out DIR`), named once for every stage.

history.jsonl (docs/history-format.md), schedule.jsonl (the controlled scheduler's decisions,
replayable runs only), run.json (how the run was configured: what `mmrace replay` rebuilds),
summary.json (the judged result: docs/harness.md), report.html and plots/ (the report).
"""

HISTORY_FILE = "history.jsonl"
SCHEDULE_FILE = "schedule.jsonl"
RUN_FILE = "run.json"
SUMMARY_FILE = "summary.json"
REPORT_FILE = "report.html"
PLOTS_DIR = "plots"
WORKLOAD_COPY = "workload.toml"
