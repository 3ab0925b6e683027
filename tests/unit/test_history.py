"""`fab history`: the hosts' deploy logs read from their end, turned into rows and merged across a fleet."""

from __future__ import annotations

import json

from ayna_fab.hostprog import calls, deploylog as host_history
from ayna_fab.ops import history


def log(tmp_path, lines: list[str]) -> str:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "deploys.jsonl").write_text("".join(line + "\n" for line in lines))
    return str(tmp_path)


def entry(n: int, **more) -> str:
    return json.dumps({"event": "deploy", "result": "ok", "release": f"v{n}", "at": f"2026-01-01T00:00:{n % 60:02d}",
                       "steps": {"upload": 1.25, "prepare": 2.0}, **more})


def test_the_host_reads_the_newest_entries_of_a_long_log(tmp_path):
    root = log(tmp_path, [entry(n, reason="x" * 200) for n in range(1, 2001)])   # several chunks
    res = host_history.read(calls.History(root=root, limit=3))
    assert [e["release"] for e in res["entries"]] == ["v1998", "v1999", "v2000"]
    assert res["unreadable"] == 0
    res = host_history.read(calls.History(root=root, limit=5000))
    assert len(res["entries"]) == 2000 and res["entries"][0]["release"] == "v1"


def test_a_line_that_is_no_json_object_is_counted_not_shown(tmp_path):
    root = log(tmp_path, [entry(1), "{broken", "[1, 2]", entry(2)])
    res = host_history.read(calls.History(root=root, limit=10))
    assert [e["release"] for e in res["entries"]] == ["v1", "v2"] and res["unreadable"] == 2


def test_a_host_with_no_log_yet_has_no_history(tmp_path):
    assert host_history.read(calls.History(root=str(tmp_path), limit=10)) == \
        {"entries": [], "unreadable": 0, "exists": True}


def test_a_row_says_when_who_what_outcome_duration_and_failed_step():
    r = history.row("h1", "shop", "staging", {"event": "deploy", "result": "failed", "release": "v7",
                                               "revision": "a" * 40, "by": "ana@pc", "at": "2026-01-02T03:04:05+00:00",
                                               "failed_step": "migrate", "steps": {"upload": 1.0, "prepare": 2.5},
                                               "restored": None})
    assert (r["at"], r["by"], r["release"], r["result"], r["seconds"], r["failed_step"], r["stage"]) == \
        ("2026-01-02T03:04:05+00:00", "ana@pc", "v7", "failed", 3.5, "migrate", "staging")
    assert history.cells(r) == ["2026-01-02T03:04:05+00:00", "h1", "shop", "staging", "deploy", "v7", "a" * 12,
                                "ana@pc", "failed at migrate", "3.5s"]


def test_a_log_field_of_the_wrong_type_is_left_empty():
    r = history.row("h1", "shop", "production", {"at": 5, "by": ["x"], "steps": {"a": "1", "b": True, "c": 2}})
    assert (r["at"], r["by"], r["seconds"]) == ("", "", 2)
    assert history.row("h1", "shop", "production", {"steps": "no"})["seconds"] is None


def test_a_fleet_is_merged_newest_first_with_its_hosts_in_order():
    h1 = [history.row("h1", "p", "production", {"at": at, "release": v}) for at, v in (("t1", "v1"), ("t3", "v2"))]
    h2 = [history.row("h2", "p", "production", {"at": at, "release": v}) for at, v in (("t1", "v1"), ("t3", "v2"))]
    h3 = [history.row("h3", "p", "staging", {"at": "t2", "release": "v5"})]
    rows = history.merged([h1, h2, h3], limit=10)
    assert [(r["at"], r["host"]) for r in rows] == [("t3", "h1"), ("t3", "h2"), ("t2", "h3"), ("t1", "h1"),
                                                   ("t1", "h2")]
    assert len(history.merged([h1, h2, h3], limit=2)) == 2
