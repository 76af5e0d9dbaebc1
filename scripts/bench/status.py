"""The targets of performance.md, and docs/benchmarks.md generated from the run records.

`scripts/bench.py status` rewrites the page; `scripts/bench.py status --check` fails when it is
stale (a test runs it). A target is "met" only where the latest recorded run at the target's
size (non-smoke, committed tree) meets it; a target with no such run says so.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import PROJECT_ROOT, RECORDS_DIR, markdown_table

STATUS_DOC = PROJECT_ROOT / "docs" / "benchmarks.md"
HISTORY_DOC = "benchmarks/history-to-session-11.md"


@dataclass(frozen=True)
class Target:
    benchmark: str
    figure: str  # key of the record's "figures"
    says: str  # what the figure measures, in words
    compare: str  # "<", "<=", ">=", "==" or "reported"
    threshold: float | None = None
    size: dict[str, int] = field(default_factory=dict)  # settings a run needs at least
    unit: str = ""
    # Why the target is missed, where the miss is understood and stays (printed under the
    # table while the latest run misses it).
    why_missed: str = ""

    def judge(self, value: float) -> str:
        if self.compare == "reported" or self.threshold is None:
            return "reported"
        check: Callable[[float, float], bool] = {
            "<": operator.lt,
            "<=": operator.le,
            ">=": operator.ge,
            "==": operator.eq,
        }[self.compare]
        return "met" if check(value, self.threshold) else "**not met**"

    def wanted(self) -> str:
        if self.compare == "reported":
            return "reported"
        return f"{self.compare} {self.threshold:g}{self.unit}"

    def sized(self, record: dict) -> bool:
        settings = record.get("settings", {})
        return all(isinstance(settings.get(k), int) and settings[k] >= v for k, v in self.size.items())


REQUESTS_SIZE = {"tenants": 1000}
TARGETS = (
    Target(
        "requests",
        "cpu_app_over_minimal",
        "gunicorn CPU per request, app / minimal app",
        "<=",
        2,
        REQUESTS_SIZE,
    ),
    Target(
        "requests",
        "cpu_ms_app",
        "gunicorn CPU per request of the app",
        "reported",
        None,
        REQUESTS_SIZE,
        " ms",
    ),
    Target(
        "requests",
        "cpu_multi_over_single",
        "app CPU per request, 1,000 tenants / 1",
        "<=",
        1.05,
        REQUESTS_SIZE,
    ),
    Target(
        "requests",
        "throughput_ratio_over_minimal_ratio",
        "throughput multi / single, app's ratio over the minimal app's",
        ">=",
        0.97,
        REQUESTS_SIZE,
    ),
    Target("requests", "p99_multi_over_single", "p99 latency multi / single", "<=", 1.2, REQUESTS_SIZE),
    Target("requests", "errors", "errors in all passes", "==", 0, REQUESTS_SIZE),
    Target(
        "provision",
        "creation_p50_ms",
        "full creation (schema + role + grants) p50",
        "<",
        25,
        {"tenants": 2000},
        " ms",
    ),
    Target(
        "provision",
        "creation_vs_chain",
        "full creation, Alembic chain p50 / ours",
        ">=",
        5,
        {"tenants": 2000},
        why_missed=(
            "The miss stays. Both paths create the same objects (the schema, 3 tables with their "
            "keys, constraints and TOAST tables, 11 indexes, the version table, the tenant role "
            "and its grants) and write the same registry rows; PostgreSQL's own work for that "
            "DDL is most of either. Creation already sends the tenant tree's DDL in one message "
            "(sql/schemas.py, the head script of step_scripts.py): its round trip took 18-19 ms "
            "(median of 40, machine shared, load 3-4), the role 1 ms, the registry rows about "
            "2 ms; the chain sends the same statements one by one (about 26 ms of round trips) "
            "plus Alembic's environment and version-table work per tenant (about 12 ms of CPU). "
            "5x would need a creation under about 9 ms, less than the DDL round trip alone. "
            "Against the peer (django-tenants, same machine, issue 18) creation is 4.6-7x faster."
        ),
    ),
    Target(
        "provision",
        "creation_p95_end_over_start",
        "full creation p95 at N / at N ~ 10",
        "<=",
        1.5,
        {"tenants": 2000},
    ),
    Target(
        "provision",
        "creation_per_second",
        "sustained tenants created per second",
        "reported",
        None,
        {"tenants": 2000},
    ),
    Target("provision", "signup_p95_ms_warm", "signup p95, warm pool", "<", 300, {"tenants": 1}, " ms"),
    Target("provision", "signup_p95_ms_empty", "signup p95, empty pool", "<", 300, {"tenants": 1}, " ms"),
    Target(
        "migrate",
        "seconds_best",
        "one revision over 1,000 tenants, best --jobs",
        "<",
        15,
        {"tenants": 1000},
        " s",
    ),
    Target("migrate", "nothing_pending_s", "nothing pending, 1,000 tenants", "<", 1, {"tenants": 1000}, " s"),
    Target(
        "migrate",
        "nothing_pending_registry_s",
        "nothing pending, 10,000 registry rows",
        "<",
        5,
        {"registry_rows": 10000},
        " s",
    ),
    Target(
        "migrate",
        "rss_growth_mib",
        "memory of the migrating process, growth",
        "reported",
        None,
        {"tenants": 1000},
        " MiB",
    ),
    Target(
        "export",
        "throughput_over_copy",
        "export throughput / plain COPY",
        ">=",
        0.5,
        {"rows": 1000000},
        why_missed=(
            "Instants are written as the API writes them (ISO 8601, issue 16) inside the COPY, by"
            " `to_jsonb` (exports.instant_as_api_text; about 13% less PostgreSQL time than `to_json`"
            " on PostgreSQL 18, and the same text, test_export_instants.py): PostgreSQL's CPU per"
            " export is still about twice the plain COPY's (1.65 s / 0.90 s at 1,000,000 rows), and"
            " the ratio sits at the target (0.4949 with `to_json`, 0.5038 with `to_jsonb`: within"
            " noise). Left: PostgreSQL's own text form with the format stated in the README, which"
            " issue 16 ruled out."
        ),
    ),
    Target("export", "rss_growth_mib", "peak RSS growth of the server", "<", 64, {"rows": 1000000}, " MiB"),
    Target(
        "delete",
        "purge_seconds",
        "purge of a tenant of 100,000 rows and 1,000 files",
        "reported",
        None,
        {"rows": 100000, "files": 1000},
        " s",
    ),
    Target(
        "delete",
        "p99_during_over_before",
        "others' p99 during / before the purges",
        "<=",
        1.5,
        {"rows": 100000, "files": 1000},
    ),
    Target("fleet", "p99_ratio", "p99 latency 10,000 / 10 schemas", "<=", 1.3, {"tenants": 10000}),
    Target(
        "retention",
        "nothing_due_s",
        "periodic run, nothing due over 1,000 tenants",
        "<",
        1,
        {"tenants": 1000},
        " s",
    ),
    Target(
        "retention",
        "ten_due_over_one_due",
        "periodic run, 10 due / 1 due",
        "reported",
        None,
        {"tenants": 1000},
    ),
    Target(
        "retention",
        "ten_due_marginal_over_one",
        "periodic run, work above nothing-due: 10 due / 1 due (about 10 tenants' work)",
        "<=",
        12,
        {"tenants": 1000},
        why_missed=(
            "A run's work per due tenant is a few milliseconds (about 5 ms for 20 media rows and "
            "files), so a millisecond of jitter moves this ratio by 2; four full runs on this "
            "machine gave 11.4, 9.2, 12.7 and 7.3. The counts are the structural check: a run opens "
            "exactly the due tenants (0 with nothing due, 10 with 10 due)."
        ),
    ),
    Target(
        "retention",
        "opened_nothing_due",
        "tenant schemas opened by a run with nothing due",
        "==",
        0,
        {"tenants": 1000},
    ),
    Target(
        "retention",
        "opened_ten_due",
        "tenant schemas opened by a run with 10 due",
        "==",
        10,
        {"tenants": 1000},
    ),
    Target(
        "citus",
        "throughput_cluster_over_single",
        "throughput, 3-node cluster / one server",
        ">=",
        0.8,
        {"tenants": 1},
        why_missed=(
            "Measured on the recorded run (CPU per request by process over the read passes, "
            "scripts/bench/citus.py): one server 3.45 ms (API 2.41, load generator 0.37, PostgreSQL "
            "0.67), cluster 5.33 ms (API 2.58, load generator 0.40, coordinator 1.25, workers 0.27 + "
            "0.28, PgBouncers 0.27 + 0.27). Every process of both setups shares the same 2 cores, so "
            "throughput follows total CPU per request: cluster / one server 1.54, which allows 0.65; "
            "0.58 measured. The 1.88 ms more are the database side (2.34 ms against 0.67): the "
            "coordinator, the hop, 1.25 ms per request where one server spends 0.67 on all of it; the "
            "PgBouncers relaying its statements, 0.54 ms (their TLS with the coordinator included, "
            "not separated); the workers running the queries, 0.54 ms; the API and the load "
            "generator add 0.2 ms. 0.8 needs the cluster under 4.31 ms (0.86 ms above one server): "
            "the coordinator and the workers alone add 1.12 ms, so on one machine no pooler setting "
            "meets it; on separate machines the workers' and PgBouncers' CPU is not on the "
            "coordinator's cores. The rest (0.65 allowed, 0.58 measured) is not these processes' "
            "CPU: the hop's latency (p50 at 1 client 5.3 ms on the cluster, 3.1 ms on one server) "
            "with 8 connections, and the other engineers' load varying between passes (not "
            "separated). An unrecorded run of the same commit under heavier load (another Citus "
            "benchmark running): 4.40 against 6.11 ms (coordinator 1.42, workers 0.72, PgBouncers "
            "0.59), 1.39x, throughput 0.55. Before the PgBouncers, a worker backend started per "
            "request: 0.15 to 0.29 (docs/scale-out.md, Worker connections)."
        ),
    ),
    Target(
        "citus",
        "p99_cluster_over_single",
        "p99 latency, 3-node cluster / one server",
        "reported",
        None,
        {"tenants": 1},
    ),
    Target(
        "citus",
        "cpu_ms_single",
        "CPU per request, one server (API, load generator, PostgreSQL)",
        "reported",
        None,
        {"tenants": 1},
        " ms",
    ),
    Target(
        "citus",
        "cpu_ms_cluster",
        "CPU per request, cluster (API, load generator, 3 nodes, 2 PgBouncers)",
        "reported",
        None,
        {"tenants": 1},
        " ms",
    ),
    Target(
        "citus",
        "cpu_ms_coordinator",
        "CPU per request of the coordinator (the hop)",
        "reported",
        None,
        {"tenants": 1},
        " ms",
    ),
    Target(
        "citus",
        "cpu_cluster_over_single",
        "CPU per request, cluster / one server",
        "reported",
        None,
        {"tenants": 1},
    ),
    Target(
        "citus",
        "p50_one_client_ms_single",
        "p50 latency at 1 client, one server",
        "reported",
        None,
        {"tenants": 1},
        " ms",
    ),
    Target(
        "citus",
        "p50_one_client_ms_cluster",
        "p50 latency at 1 client, cluster",
        "reported",
        None,
        {"tenants": 1},
        " ms",
    ),
    Target(
        "citus",
        "placement_spread",
        "tenants per node, largest deviation from even",
        "<=",
        0.1,
        {"tenants": 1},
    ),
    Target(
        "citus",
        "worker_connections",
        "client backends on the busiest worker after the read passes",
        "reported",
        None,
        {"tenants": 1},
    ),
    Target("citus", "lost_writes", "writes lost while a tenant moved", "==", 0, {"tenants": 1}),
    Target(
        "citus", "write_blocked_s", "write-blocked window of a move", "reported", None, {"tenants": 1}, " s"
    ),
    Target(
        "citus",
        "move_seconds",
        "move of a tenant (--move-rows, 10,000 by default) under writes",
        "reported",
        None,
        {"tenants": 1, "move_rows": 10000},
        " s",
    ),
)


def load_records(folder: Path = RECORDS_DIR) -> list[dict]:
    """Every record, oldest first (file names start with the UTC start time)."""
    return [json.loads(path.read_text()) | {"file": path.name} for path in sorted(folder.glob("*.json"))]


def latest_for(target: Target, records: list[dict]) -> dict | None:
    fitting = [
        r
        for r in records
        if r["benchmark"] == target.benchmark and target.figure in r["figures"] and target.sized(r)
    ]
    return fitting[-1] if fitting else None


def render(records: list[dict]) -> str:
    rows = []
    for target in TARGETS:
        record = latest_for(target, records)
        if record is None:
            rows.append(
                [
                    target.benchmark,
                    target.says,
                    target.wanted(),
                    "no recorded run at this size",
                    "",
                    "**not measured**",
                ]
            )
            continue
        value = record["figures"][target.figure]
        size = ", ".join(f"{k}={record['settings'][k]}" for k in target.size) or "any"
        when = record["started"][:16].replace("T", " ")
        where = f"{when}, {record['commit'][:9]}, load {record['load_average']['before']}"
        rows.append(
            [
                target.benchmark,
                target.says,
                target.wanted(),
                f"{value:g}{target.unit} ({size})",
                where,
                target.judge(value),
            ]
        )
    reasons = [
        f"- **{target.benchmark}: {target.says}** ({target.wanted()}): {target.why_missed}"
        for target, row in zip(TARGETS, rows, strict=True)
        if target.why_missed and row[-1] == "**not met**"
    ]
    latest = {}
    for record in records:
        latest[record["benchmark"]] = record
    runs = [
        [
            name,
            r["started"][:16].replace("T", " "),
            r["commit"][:9],
            r["machine"].split(" (")[0],
            f"{r['load_average']['before']} -> {r['load_average']['after']}",
            r["server"],
            f"records/{r['file']}",
        ]
        for name, r in sorted(latest.items())
    ]
    return "\n".join(
        [
            "# Benchmarks: current status",
            "",
            "Generated by `scripts/bench.py status` from the run records in",
            "[benchmarks/records/](benchmarks/records/) (one JSON file per run: commit of a clean tree,",
            "machine, load average, settings, every figure). Do not edit by hand: run a benchmark on a",
            "committed tree (`scripts/bench.py NAME`), commit its record, then `scripts/bench.py status`.",
            "Targets: `../shared/design/performance.md`. A target is **met** only where the latest recorded",
            "run at the target's size meets it; smoke runs (`--quick`) and runs of uncommitted trees are",
            "never recorded. The machines are shared 2-core machines: the load generator, the servers and",
            "PostgreSQL share them; ratios measured side by side in one run are the figures that count.",
            "",
            "## Targets",
            "",
            markdown_table(
                ["benchmark", "figure", "target", "value (size)", "run (UTC, commit, load)", "status"], rows
            ),
            "",
            *(["## Targets not met, and why", "", *reasons, ""] if reasons else []),
            "## Latest run of each benchmark",
            "",
            markdown_table(
                ["benchmark", "started (UTC)", "commit", "machine", "load average", "server", "record"], runs
            )
            if runs
            else "No run recorded yet.",
            "",
            "## How to run",
            "",
            "`scripts/bench.py NAME [--quick] [--no-record] [options]`, `scripts/bench.py NAME --help`",
            "for the options of each; `make bench` runs them all at the sizes of their `ALL_ARGS`",
            "(under 15 minutes).",
            "Figures of the runs before the records existed (to session 11, some on uncommitted trees):",
            f"[{HISTORY_DOC}]({HISTORY_DOC}).",
            "",
        ]
    )


def write(check: bool) -> int:
    text = render(load_records())
    if check:
        if STATUS_DOC.read_text() != text:
            print(f"{STATUS_DOC.relative_to(PROJECT_ROOT)} is stale: run scripts/bench.py status")
            return 1
        return 0
    STATUS_DOC.write_text(text)
    print(f"wrote {STATUS_DOC.relative_to(PROJECT_ROOT)}")
    return 0
