"""``verify_audit_log``: every kind of tampering is found, told apart from the others and named by line."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tradeloop.security.audit import AuditLog, AuditProblem, verify_audit_log

N = 8


@pytest.fixture
def lines(tmp_path: Path) -> list[str]:
    """An intact log of N entries (seq i on line i), returned as its text lines."""
    path = tmp_path / "orig.log"
    ts = iter(range(1_000, 100_000, 1_000))
    log = AuditLog(path, clock=lambda: next(ts))
    for i in range(1, N + 1):
        log.append("ops" if i % 2 else "admin-api", f"action{i}", {"order": f"c{i}", "qty": f"0.{i}"})
    assert verify_audit_log(path) == []
    return path.read_text().splitlines()


def check(tmp_path: Path, new_lines: list[str], head: tuple[int, str] | None = None) -> list[tuple[int, str]]:
    path = tmp_path / "tampered.log"
    path.write_text("".join(line + "\n" for line in new_lines))
    problems = verify_audit_log(path, expected_head=head)
    for p in problems:
        assert isinstance(p, AuditProblem)
        assert f"line {p.position}" in p.message or p.kind == "removed"  # a truncated end has no line
    return [(p.position, p.kind) for p in problems]


def rehash(obj: dict[str, object]) -> dict[str, object]:
    """What a careful forger does: recompute the entry's own hash after changing it."""
    detail = obj["detail"]
    assert isinstance(detail, dict)
    payload = [
        obj["seq"],
        obj["ts_ns"],
        obj["actor"],
        obj["action"],
        [[k, detail[k]] for k in sorted(detail)],
        obj["prev_hash"],
    ]
    obj["hash"] = hashlib.sha256(json.dumps(payload, separators=(",", ":")).encode()).hexdigest()
    return obj


def edit(line: str, **changes: object) -> dict[str, object]:
    obj: dict[str, object] = json.loads(line)
    obj.update(changes)
    return obj


@pytest.mark.parametrize(
    ("field", "value"),
    [("actor", "mallory"), ("action", "other"), ("ts_ns", 5), ("detail", {"order": "c4", "qty": "9"}), ("seq", 40)],
)
def test_edit_in_place_names_the_entry(tmp_path: Path, lines: list[str], field: str, value: object) -> None:
    tampered = list(lines)
    tampered[3] = json.dumps(edit(lines[3], **{field: value}))
    assert check(tmp_path, tampered) == [(4, "edited")]


def test_edit_of_the_recorded_hash_or_link(tmp_path: Path, lines: list[str]) -> None:
    tampered = list(lines)
    tampered[3] = json.dumps(edit(lines[3], hash="ab" * 32))
    assert check(tmp_path, tampered) == [(4, "edited")]
    tampered = list(lines)
    tampered[3] = json.dumps(edit(lines[3], prev_hash="cd" * 32))
    assert check(tmp_path, tampered) == [(4, "edited")]


def test_edit_with_recomputed_hash_is_caught_by_the_next_link(tmp_path: Path, lines: list[str]) -> None:
    tampered = list(lines)
    tampered[3] = json.dumps(rehash(edit(lines[3], actor="mallory")))
    problems = check(tmp_path, tampered)
    assert problems == [(4, "edited")]


def test_removed_entries_are_named_where_the_chain_resumes(tmp_path: Path, lines: list[str]) -> None:
    assert check(tmp_path, lines[:3] + lines[4:]) == [(4, "removed")]
    assert check(tmp_path, lines[:2] + lines[5:]) == [(3, "removed")]
    assert check(tmp_path, lines[1:]) == [(1, "removed")]
    path = tmp_path / "msg.log"
    path.write_text("".join(x + "\n" for x in lines[:2] + lines[5:]))
    (problem,) = verify_audit_log(path)
    assert "seq 3-5" in problem.message and "line 2" in problem.message


def test_truncation_is_found_against_a_recorded_head(tmp_path: Path, lines: list[str]) -> None:
    last = json.loads(lines[-1])
    head = (last["seq"], last["hash"])
    assert check(tmp_path, lines[:-2]) == []  # undetectable from the file alone
    assert check(tmp_path, lines[:-2], head=head) == [(N - 1, "removed")]
    assert check(tmp_path, lines, head=head) == []
    assert check(tmp_path, [*lines, *[]], head=(3, json.loads(lines[2])["hash"])) == []  # later appends are fine
    forged_last = json.dumps(rehash(edit(lines[-1], actor="mallory")))
    assert check(tmp_path, [*lines[:-1], forged_last], head=head) == [(N, "edited")]


def test_inserted_copy_of_a_line(tmp_path: Path, lines: list[str]) -> None:
    assert check(tmp_path, [*lines[:5], lines[2], *lines[5:]]) == [(6, "inserted")]
    assert check(tmp_path, [*lines, lines[0]]) == [(N + 1, "inserted")]


def test_inserted_forgery_that_fits_the_chain_before_it(tmp_path: Path, lines: list[str]) -> None:
    prev = json.loads(lines[2])
    forged = rehash(
        {
            "seq": 4,
            "ts_ns": prev["ts_ns"] + 1,
            "actor": "mallory",
            "action": "withdraw",
            "detail": {},
            "prev_hash": prev["hash"],
            "hash": "",
        }
    )
    assert check(tmp_path, [*lines[:3], json.dumps(forged), *lines[3:]]) == [(4, "inserted")]


def test_inserted_entry_with_made_up_links(tmp_path: Path, lines: list[str]) -> None:
    forged = {
        "seq": 5,
        "ts_ns": 1,
        "actor": "mallory",
        "action": "x",
        "detail": {},
        "prev_hash": "1" * 64,
        "hash": "2" * 64,
    }
    assert check(tmp_path, [*lines[:5], json.dumps(forged), *lines[5:]]) == [(6, "inserted")]
    assert check(tmp_path, [json.dumps(forged), *lines]) == [(1, "inserted")]


def test_swapped_entries_are_reordered(tmp_path: Path, lines: list[str]) -> None:
    swapped = [*lines[:3], lines[4], lines[3], *lines[5:]]
    problems = check(tmp_path, swapped)
    assert len(problems) == 1 and problems[0][1] == "reordered" and problems[0][0] in (4, 5)


def test_an_entry_moved_far_is_the_one_named(tmp_path: Path, lines: list[str]) -> None:
    moved = [lines[0], *lines[2:], lines[1]]  # seq 2 now last
    assert check(tmp_path, moved) == [(N, "reordered")]
    moved = [lines[5], *lines[:5], *lines[6:]]  # seq 6 now first
    assert check(tmp_path, moved) == [(1, "reordered")]


def test_malformed_lines(tmp_path: Path, lines: list[str]) -> None:
    assert check(tmp_path, [*lines[:2], "not json", *lines[2:]]) == [(3, "malformed")]
    wrong_type = json.dumps(edit(lines[4], seq="5"))
    assert check(tmp_path, [*lines[:4], wrong_type, *lines[5:]]) == [(5, "malformed"), (6, "removed")]
    missing_field = json.loads(lines[4])
    del missing_field["actor"]
    assert (5, "malformed") in check(tmp_path, [*lines[:4], json.dumps(missing_field), *lines[5:]])


def test_several_kinds_at_once_are_each_named(tmp_path: Path, lines: list[str]) -> None:
    tampered = list(lines)
    tampered[1] = json.dumps(edit(lines[1], actor="mallory"))  # edited seq 2 (line 2)
    del tampered[4]  # removed seq 5
    tampered = [*tampered[:5], tampered[6], tampered[5]]  # seq 7 and 8 swapped at the end
    problems = check(tmp_path, tampered)
    assert (2, "edited") in problems and (5, "removed") in problems
    assert [k for _, k in problems].count("reordered") == 1 and len(problems) == 3


def test_problem_messages_name_seq_and_action(tmp_path: Path, lines: list[str]) -> None:
    path = tmp_path / "t.log"
    tampered = list(lines)
    tampered[3] = json.dumps(edit(lines[3], actor="mallory"))
    path.write_text("".join(x + "\n" for x in tampered))
    (problem,) = verify_audit_log(path)
    assert problem.position == 4 and "seq 4" in problem.message and "action4" in problem.message


def test_empty_log_is_intact(tmp_path: Path) -> None:
    path = tmp_path / "empty.log"
    path.write_text("")
    assert verify_audit_log(path) == []
