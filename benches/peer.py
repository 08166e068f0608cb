#!/usr/bin/env python3
"""Peer benchmark: sagak replay against a nightly batch job in DuckDB.

    python3 benches/peer.py                      # 1M and 10M generated signals
    python3 benches/peer.py --signals 1000000    # one size

For each size it generates a clean synthetic city (no malformed, late or
re-sent signals) as NDJSON with `sagak generate --clean`, then times

* `sagak replay --final-list` of the whole history (every alert and
  escalation, the final day's list), from the release binary, and
* DuckDB computing only the final day's list from the same files, with the
  same per-household rules written as one SQL query (below),

prints both, their ratio, and whether the two final lists are identical
(same households, lists, priorities, scores to 0.01). `--check-dates` also
compares the lists of other days, from an untimed replay. DuckDB's Python
package is installed from the package registry into target/peer-python
when it is missing. One JSON line per figure, as benches/pipeline.rs.
"""

import argparse
import csv
import importlib
import json
import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "target"


def duckdb_module():
    """DuckDB, installed beside the build if this Python lacks it."""
    site = TARGET / "peer-python"
    sys.path.insert(0, str(site))
    try:
        import duckdb  # noqa: F401
    except ImportError:
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(site), "duckdb"],
            check=True,
        )
        # the finder cached the folder's listing before the install
        importlib.invalidate_caches()
    import duckdb

    return duckdb


def sagak_binary():
    """The release binary, built when missing or stale."""
    # the bench profile: release settings, and the artifacts `cargo bench` builds
    subprocess.run(["cargo", "build", "--profile", "bench", "--locked", "--bin", "sagak"], cwd=ROOT, check=True)
    return TARGET / "release" / "sagak"


# The rules of pipelines/default (score.sql and lists.sql) for the list of one
# cut-off, as a batch job would write them: every signal up to the cut-off,
# the newest per household, feed and subject (supersession), those of the 90
# days before the cut-off (the window), the qualifying ones, then categories,
# priority and score per household, and the dong of its newest live signal.
LIST_SQL = """
WITH signals AS (
    SELECT household_id, dong_code, event_id, CAST(observed_at AS TIMESTAMPTZ) AS observed_at,
           'utility-arrears' AS feed, 'utility' AS category, utility AS subject,
           months_overdue, amount_krw, disconnected
    FROM read_json('{dir}/utility-arrears.ndjson', format = 'newline_delimited',
         columns = {{household_id: 'VARCHAR', dong_code: 'VARCHAR', event_id: 'VARCHAR', observed_at: 'VARCHAR',
                    utility: 'VARCHAR', months_overdue: 'BIGINT', amount_krw: 'BIGINT', disconnected: 'BOOLEAN'}})
    UNION ALL
    SELECT household_id, dong_code, event_id, CAST(observed_at AS TIMESTAMPTZ),
           'job-loss', 'employment', person_id, NULL, NULL, NULL
    FROM read_json('{dir}/job-loss.ndjson', format = 'newline_delimited',
         columns = {{household_id: 'VARCHAR', dong_code: 'VARCHAR', event_id: 'VARCHAR', observed_at: 'VARCHAR',
                    person_id: 'VARCHAR'}})
    UNION ALL
    SELECT household_id, dong_code, event_id, CAST(observed_at AS TIMESTAMPTZ),
           'health-insurance', 'health', 'nhis', months_overdue, amount_krw, NULL
    FROM read_json('{dir}/health-insurance.ndjson', format = 'newline_delimited',
         columns = {{household_id: 'VARCHAR', dong_code: 'VARCHAR', event_id: 'VARCHAR', observed_at: 'VARCHAR',
                    months_overdue: 'BIGINT', amount_krw: 'BIGINT'}})
),
latest AS (
    SELECT * FROM signals
    WHERE observed_at <= TIMESTAMPTZ '{cutoff}'
    QUALIFY ROW_NUMBER() OVER (PARTITION BY household_id, feed, subject ORDER BY observed_at DESC) = 1
),
live AS (
    SELECT *,
           (category = 'utility' AND (COALESCE(months_overdue, 0) >= {utility_min_months}
                                      OR COALESCE(disconnected, false)))
           OR category = 'employment'
           OR (category = 'health' AND COALESCE(months_overdue, 0) >= {health_min_months}) AS qualifies
    FROM latest
    WHERE observed_at >= TIMESTAMPTZ '{cutoff}' - INTERVAL {window_days} DAY
),
household AS (
    SELECT household_id,
           arg_max(dong_code, observed_at) AS dong_code,
             MAX(CASE WHEN qualifies AND category = 'utility' THEN 1 ELSE 0 END)
           + MAX(CASE WHEN qualifies AND category = 'employment' THEN 1 ELSE 0 END)
           + MAX(CASE WHEN qualifies AND category = 'health' THEN 1 ELSE 0 END) AS categories,
           SUM(CASE WHEN qualifies AND COALESCE(disconnected, false) THEN 1 ELSE 0 END) AS disconnections,
           SUM(CASE WHEN qualifies THEN LEAST(COALESCE(months_overdue, 0), {months_cap}) ELSE 0 END) AS months,
           SUM(CASE WHEN qualifies THEN COALESCE(amount_krw, 0) ELSE 0 END) AS amount_krw,
           SUM(CASE WHEN qualifies AND category = 'employment' THEN 1 ELSE 0 END) AS employment_signals
    FROM live
    GROUP BY household_id
)
SELECT h.household_id,
       COALESCE(d.dong_code, 'unassigned') AS list_dong,
       CASE
           WHEN categories >= 3 OR (disconnections > 0 AND categories >= 2) THEN 'P1'
           WHEN categories = 2 OR disconnections > 0 THEN 'P2'
           ELSE 'P3'
       END AS priority,
       ROUND({category_weight} * categories + {disconnected_weight} * disconnections
             + {months_weight} * months + {amount_weight} * LOG10(1 + amount_krw / 10000.0)
             + {employment_weight} * employment_signals, 2) AS score
FROM household h
LEFT JOIN dongs d ON d.dong_code = h.dong_code
WHERE categories > 0
"""


def emit(figure):
    print(json.dumps(figure, ensure_ascii=False), flush=True)


def served_dongs():
    """The dong codes pipelines/default serves."""
    with open(ROOT / "pipelines/default/dongs.csv", encoding="utf-8") as f:
        return {r["dong_code"] for r in csv.DictReader(f)}


def sagak_list(day_dir):
    """The final day's lists as sagak wrote them: household -> (list, priority, score), for the
    households whose signals are inside the window (rows with in_window false are households
    nobody reached, kept on their office's list after their signals left the window), placed by
    the dong of their newest signal as the peer query places them."""
    import duckdb

    served = served_dongs()
    out = {}
    for f in sorted(day_dir.glob("*.parquet")):
        if f.name.endswith(".cases.parquet") or f.name == "escalations.parquet":
            continue
        rows = duckdb.sql(
            f"SELECT household_id, dong_code, priority, score FROM '{f}' WHERE in_window"
        ).fetchall()
        for hh, dong, priority, score in rows:
            out[hh] = (dong if dong in served else "unassigned", priority, round(score, 2))
    return out


def duckdb_with_dongs(duckdb):
    """A DuckDB connection holding the served dongs of pipelines/default."""
    con = duckdb.connect()
    con.execute("CREATE TABLE dongs (dong_code VARCHAR)")
    con.executemany("INSERT INTO dongs VALUES (?)", [[c] for c in sorted(served_dongs())])
    return con


def duckdb_list(con, data, date):
    """The list of `date`'s cut-off by LIST_SQL: household -> (list, priority, score)."""
    spec = tomllib.loads((ROOT / "pipelines/default/pipeline.toml").read_text())
    params = dict(spec["params"])
    params["window_days"] = spec["window"]["length_days"]
    cutoff = f"{date} {spec['lists']['cutoff_hour']:02d}:00:00+{spec['lists']['utc_offset_hours']:02d}:00"
    rows = con.execute(LIST_SQL.format(dir=data, cutoff=cutoff, **params)).fetchall()
    return {hh: (dong, priority, round(score, 2)) for hh, dong, priority, score in rows}


def differences(ours, peer):
    """Households only in sagak's list, only in DuckDB's, and in both but unequal."""
    only_sagak = sorted(set(ours) - set(peer))
    only_duckdb = sorted(set(peer) - set(ours))
    differ = sorted(hh for hh in set(ours) & set(peer)
                    if ours[hh][:2] != peer[hh][:2] or abs(ours[hh][2] - peer[hh][2]) > 0.01)
    return only_sagak, only_duckdb, differ


def check_dates(size, sagak, duckdb, work, dates):
    """Untimed: the lists of `dates` (mid-history days, where eviction and
    the window's start matter) from one replay, each against DuckDB's."""
    data = work / f"signals-{size}"
    out = work / f"replay-{size}-dates"
    subprocess.run([str(sagak), "replay", "--input", str(data), "--dates", ",".join(dates),
                    "--out", str(out)],
                   check=True, stdout=subprocess.DEVNULL, env={**os.environ, "RUST_LOG": "warn"})
    con = duckdb_with_dongs(duckdb)
    for date in dates:
        ours = sagak_list(out / "lists" / date)
        only_sagak, only_duckdb, differ = differences(ours, duckdb_list(con, data, date))
        emit({
            "bench": "peer_duckdb_list",
            "size": size,
            "date": date,
            "listed_sagak": len(ours),
            "identical": not (only_sagak or only_duckdb or differ),
            "only_in_sagak": only_sagak[:5],
            "only_in_duckdb": only_duckdb[:5],
            "differing": differ[:5],
        })


def run(size, sagak, duckdb, work, batch_minutes=None):
    # about 1.35 signals per household over 180 days (the generator's city)
    households = max(1_000, round(size / 1.35))
    data = work / f"signals-{size}"
    if not (data / "health-insurance.ndjson").exists():
        subprocess.run(
            [str(sagak), "generate", "--to", "ndjson", "--clean", "--households", str(households),
             "--out", str(data)],
            check=True, stdout=subprocess.DEVNULL,
        )
    lines = sum(sum(1 for _ in open(data / f"{feed}.ndjson", "rb"))
                for feed in ("utility-arrears", "job-loss", "health-insurance"))
    nbytes = sum((data / f"{feed}.ndjson").stat().st_size
                 for feed in ("utility-arrears", "job-loss", "health-insurance"))

    out = work / f"replay-{size}"
    started = time.perf_counter()
    batch = ["--batch-minutes", str(batch_minutes)] if batch_minutes else []
    subprocess.run([str(sagak), "replay", "--input", str(data), "--final-list", "--out", str(out),
                    *batch],
                   check=True, stdout=subprocess.DEVNULL, env={**os.environ, "RUST_LOG": "warn"})
    sagak_s = time.perf_counter() - started
    summary = json.loads((out / "summary.json").read_text())
    date, _ = summary["last_list"]

    con = duckdb_with_dongs(duckdb)
    started = time.perf_counter()
    peer = duckdb_list(con, data, date)
    duckdb_s = time.perf_counter() - started

    ours = sagak_list(out / "lists" / date)
    only_sagak, only_duckdb, differ = differences(ours, peer)
    emit({
        "bench": "peer_duckdb",
        "signals": lines,
        "ndjson_bytes": nbytes,
        "households": households,
        "final_list_date": date,
        "replay_batch_minutes": batch_minutes or 60,
        "sagak_replay_seconds": round(sagak_s, 2),
        "sagak_alerts": sum(summary["alerts_by_priority"].values()),
        "sagak_list_days": summary["list_days"],
        "duckdb_final_list_seconds": round(duckdb_s, 2),
        "ratio_sagak_to_duckdb": round(sagak_s / duckdb_s, 2),
        "listed_sagak": len(ours),
        "listed_duckdb": len(peer),
        "identical": not (only_sagak or only_duckdb or differ),
        "only_in_sagak": only_sagak[:5],
        "only_in_duckdb": only_duckdb[:5],
        "differing": [(hh, ours[hh], peer[hh]) for hh in differ[:5]],
    })


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signals", default="1000000,10000000",
                        help="sizes, comma-separated (default 1M and 10M)")
    parser.add_argument("--batch-minutes", type=int, default=None,
                        help="the replay's input time per micro-batch (default: sagak's, 60)")
    parser.add_argument("--check-dates", default=None,
                        help="also compare the lists of these days (YYYY-MM-DD, comma-separated; "
                             "untimed, after the timed run)")
    args = parser.parse_args()
    duckdb = duckdb_module()
    sagak = sagak_binary()
    work = TARGET / "peer"
    work.mkdir(parents=True, exist_ok=True)
    emit({"bench": "machine", "cores": os.cpu_count(), "duckdb": duckdb.__version__})
    for size in (int(s) for s in args.signals.split(",")):
        run(size, sagak, duckdb, work, args.batch_minutes)
        if args.check_dates:
            check_dates(size, sagak, duckdb, work, args.check_dates.split(","))


if __name__ == "__main__":
    main()
