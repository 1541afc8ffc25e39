"""The names of the files in a run folder (and in a profile's, a plan's or a screen's working folder).

One home for them because many modules meet in one folder: the API writes the settings and the lock, the
tools write the store, the ledger and the trace, the graph writes the outputs, and the run-folder checks
and `refinelab runs` read all of them. Spelled in each module, a file added to one list was missing from
another (the folder check's list of files that must be regular, `runs`' list of files that make a folder
a run). This module sits in the bottom layer, so graph/, api/ and cli/ all import it; it imports nothing.
"""

from __future__ import annotations

# ------------------------------------------------------------------------------------ a run folder

#: the run's settings, budget, targets, options and references as `refine` started it (api/runs.py writes it
#: once, before anything else; resume, review and Studio read it back)
SETTINGS = "settings.json"
#: the HMAC of settings.json under this user's key (api/run_seal.py): resume trusts settings.json only with it
SEAL = "settings.seal"
#: the run store: items, edits, diagnostics, meta (tools/store.RunStore, opened by api/context.py)
STORE = "store.sqlite"
#: every model call and its tokens, the budget's account (tools/ledger.Ledger, opened by api/context.py)
LEDGER = "ledger.sqlite"
#: LangGraph's checkpoints of the run's graph, what a resume continues from (api/runs.checkpointer)
CHECKPOINTS = "checkpoints.sqlite"
#: the run tree, one span a line (tools/trace_jsonl.JsonlTracer, opened by api/context.py)
TRACE = "trace.jsonl"
#: the refined set: kept, edited and new items (graph/outputs.finalize)
REFINED = "refined.jsonl"
#: every edit attempt with its before, after, verdict and evidence (graph/outputs.finalize)
CHANGES = "changes.jsonl"
#: the run's headline figures, written when it finishes (graph/outputs.finalize; api/run_files reads it)
REPORT_JSON = "report.json"
#: the page `refinelab report` draws from the files above (api/report_html.build_report)
REPORT_HTML = "report.html"
#: the per-folder lock, holding the pid of the process working on it (api/run_lock.RunLock)
LOCK = ".lock"

# ------------------------------------------------------------------------------- working folders
# A profile's, a plan's and a screen's folder hold a store, a ledger, a trace and a lock too (api/context.py),
# and their own outputs below; never the files in `RUN_MARKERS`.

#: per-item labels, difficulty and screening of a profile (api/profiling.py; api/planning.py reuses it)
PROFILE_JSON = "profile.json"
#: a dry run's plan of edits and its cost (api/planning.py)
PLAN_JSON = "plan.json"
#: one line of evidence per screened item (api/screening.py)
SCREENING_JSONL = "screening.jsonl"
#: a screen's totals: items, flagged, threshold, tokens (api/screening.py)
SCREEN_SUMMARY = "summary.json"
#: the combiner a screen fitted on this data with `--calibrate` (api/screening.py)
SCREEN_CALIBRATION = "calibration.json"

# --------------------------------------------------------------------------------- derived lists

#: the SQLite databases of a run folder
DATABASES = (STORE, LEDGER, CHECKPOINTS)
#: the files SQLite keeps beside an open database (write-ahead log, its shared memory, the rollback journal)
SQLITE_SIDE_FILES = tuple(f"{db}-{suffix}" for db in DATABASES for suffix in ("wal", "shm", "journal"))
#: every file of a run folder that RefineLab opens: each must be absent or a regular file, never a link
#: (api/run_checks.check_run_files, check_run_folder)
RUN_FILES = (SEAL, SETTINGS, STORE, LEDGER, CHECKPOINTS, TRACE, REFINED, CHANGES, REPORT_JSON, REPORT_HTML, LOCK,
             *SQLITE_SIDE_FILES)
#: the files only a run writes, so any one of them makes a folder a run's (api/run_list.is_run_folder): a working
#: folder holds a store, a ledger, a trace and a lock too, and report.html is drawn only from report.json
RUN_MARKERS = (SETTINGS, SEAL, CHECKPOINTS, REFINED, CHANGES, REPORT_JSON)
