"""Verify an audit log's hash chain and name every problem by kind and line.

How each kind is told apart (entries are linked by their *recorded* hashes, so one edit breaks one
thing, not everything after it):

* **malformed** - the line is not a well-formed entry (bad JSON, missing or mistyped field).
* **edited** - the entry's fields no longer hash to its recorded ``hash`` (changed in place); or the
  chain breaks between two entries whose seqs follow on (one was changed and re-hashed: the next
  entry still records the old hash); or the entry differs from an externally recorded head.
* **removed** - the chain resumes at a higher seq than the one expected: the entries in between
  are gone (the problem sits at the line where the chain resumes). Entries cut off the *end* of the
  file can only be found against a head recorded elsewhere (``expected_head``).
* **inserted** - an entry that is not part of the chain: an exact copy of another line, an entry
  whose seq is already taken by the chain, or a branch off the chain that the chain does not follow.
* **reordered** - the chain is complete but an entry sits at the wrong place in the file (the
  fewest entries that must move to restore order are named: those off the longest in-order run).

A problem's ``position`` is the 1-based line number in the file.
"""

from __future__ import annotations

from bisect import bisect_left
from pathlib import Path

import msgspec

from tradeloop.security.audit_chain import GENESIS_HASH, AuditEntry, entry_hash_of, read_lines

PROBLEM_KINDS = ("edited", "removed", "inserted", "reordered", "malformed")


class AuditProblem(msgspec.Struct, frozen=True):
    """One problem found in an audit log; ``kind`` is one of :data:`PROBLEM_KINDS`."""

    position: int
    kind: str
    message: str


class _Node:
    __slots__ = ("children", "entry", "line", "self_ok")

    def __init__(self, line: int, entry: AuditEntry) -> None:
        self.line = line
        self.entry = entry
        self.self_ok = entry_hash_of(entry) == entry.hash
        self.children: list[_Node] = []


class _Problems:
    def __init__(self) -> None:
        self.items: list[AuditProblem] = []
        self._seen: set[tuple[int, str]] = set()

    def add(self, position: int, kind: str, message: str) -> None:
        if (position, kind) not in self._seen:
            self._seen.add((position, kind))
            self.items.append(AuditProblem(position, kind, message))

    def has(self, position: int, kind: str) -> bool:
        return (position, kind) in self._seen


def _describe(node: _Node) -> str:
    return f"line {node.line} (seq {node.entry.seq}, {node.entry.action})"


def _pick_unique(nodes: list[_Node], problems: _Problems) -> dict[str, _Node]:
    """Map recorded hash -> node; exact duplicates of a line are insertions (keep the copy that fits)."""
    groups: dict[str, list[_Node]] = {}
    for node in nodes:
        groups.setdefault(node.entry.hash, []).append(node)
    prev_hash_before: dict[int, str] = {}
    previous = GENESIS_HASH
    for node in nodes:
        prev_hash_before[node.line] = previous
        previous = node.entry.hash
    by_hash: dict[str, _Node] = {}
    for digest, group in groups.items():
        keep = next((n for n in group if prev_hash_before[n.line] == n.entry.prev_hash), group[0])
        by_hash[digest] = keep
        for n in group:
            if n is not keep:
                problems.add(n.line, "inserted", f"{_describe(n)} is a copy of line {keep.line}")
    return by_hash


def _subtree_depths(roots: list[_Node]) -> tuple[dict[int, int], list[_Node]]:
    """Longest chain length below each node reachable from ``roots`` (iterative: logs can be long)."""
    order: list[_Node] = []
    stack = list(roots)
    while stack:
        node = stack.pop()
        order.append(node)
        stack.extend(node.children)
    depth: dict[int, int] = {}
    for node in reversed(order):
        depth[node.line] = 1 + max((depth[c.line] for c in node.children), default=0)
    return depth, order


def _mark_branch_inserted(branch: _Node, chain_parent: str, follower: _Node, problems: _Problems) -> None:
    stack = [branch]
    while stack:
        node = stack.pop()
        problems.add(
            node.line,
            "inserted",
            f"{_describe(node)} is not part of the chain: it branches off after {chain_parent}, "
            f"which the chain continues with {_describe(follower)}",
        )
        stack.extend(node.children)


def _follow(head: _Node, depth: dict[int, int], problems: _Problems) -> list[_Node]:
    """The chain from ``head`` down, taking the longest branch at a fork (others are insertions)."""
    segment = [head]
    node = head
    while node.children:
        best = _best_child(node.children, node.entry.seq + 1, depth)
        for other in node.children:
            if other is not best:
                _mark_branch_inserted(other, _describe(node), best, problems)
        segment.append(best)
        node = best
    return segment


def _best_child(children: list[_Node], next_seq: int, depth: dict[int, int]) -> _Node:
    return min(children, key=lambda c: (-depth[c.line], not c.self_ok, c.entry.seq != next_seq, c.line))


def _check_segments(segments: list[list[_Node]], problems: _Problems) -> list[_Node]:
    """Lay the chain segments end to end by seq and name what lies between them."""
    segments.sort(key=lambda s: (s[0].entry.seq, -len(s), s[0].line))
    chain: list[_Node] = []
    expected = 1
    tail: _Node | None = None
    for segment in segments:
        head = segment[0]
        if head.entry.seq < expected:
            for node in segment:
                problems.add(
                    node.line, "inserted", f"{_describe(node)} is not part of the chain: seq {node.entry.seq} is taken"
                )
            continue
        if head.entry.seq > expected:
            missing = (
                f"entry seq {expected} is"
                if head.entry.seq == expected + 1
                else f"entries seq {expected}-{head.entry.seq - 1} are"
            )
            where = f"after {_describe(tail)}" if tail is not None else "at the start of the log"
            problems.add(head.line, "removed", f"{missing} missing {where}; the chain resumes at line {head.line}")
        elif head.entry.prev_hash != (GENESIS_HASH if tail is None else tail.entry.hash):
            if tail is None or not head.self_ok:
                problems.add(head.line, "edited", f"{_describe(head)} does not link to the entry before it")
            else:
                problems.add(
                    tail.line,
                    "edited",
                    f"{_describe(tail)} was changed and re-hashed: {_describe(head)} records a different hash for it",
                )
        running = head.entry.seq
        for node in segment[1:]:
            running += 1
            if node.entry.seq != running and node.self_ok:
                problems.add(node.line, "edited", f"{_describe(node)} should have seq {running}")
        chain.extend(segment)
        expected = running + 1
        tail = segment[-1]
    return chain


def _out_of_order(chain: list[_Node]) -> set[int]:
    """Lines of the chain entries off one longest run that is in file order (they must move)."""
    tails: list[int] = []  # tails[k] = smallest line ending an increasing run of length k+1
    tail_idx: list[int] = []
    back: list[int] = [-1] * len(chain)
    for i, node in enumerate(chain):
        k = bisect_left(tails, node.line)
        if k == len(tails):
            tails.append(node.line)
            tail_idx.append(i)
        else:
            tails[k] = node.line
            tail_idx[k] = i
        back[i] = tail_idx[k - 1] if k > 0 else -1
    keep: set[int] = set()
    i = tail_idx[-1] if tail_idx else -1
    while i >= 0:
        keep.add(chain[i].line)
        i = back[i]
    return {n.line for n in chain} - keep


def verify_audit_log(path: str | Path, expected_head: tuple[int, str] | None = None) -> list[AuditProblem]:
    """Every problem in the audit log at ``path``, in line order (``[]`` when the chain is intact).

    ``expected_head`` is a ``(seq, hash)`` recorded elsewhere earlier (``AuditLog.head()``); with it,
    entries removed from the end of the file and a re-hashed last entry are found too.
    """
    problems = _Problems()
    nodes: list[_Node] = []
    lines = read_lines(path)
    for parsed in lines:
        if parsed.entry is None:
            problems.add(parsed.line_no, "malformed", f"line {parsed.line_no}: {parsed.error}")
        else:
            nodes.append(_Node(parsed.line_no, parsed.entry))

    by_hash = _pick_unique(nodes, problems)
    unique = [n for n in nodes if by_hash.get(n.entry.hash) is n]
    roots: list[_Node] = []
    genesis_children: list[_Node] = []
    for node in unique:
        parent = by_hash.get(node.entry.prev_hash)
        if node.entry.prev_hash == GENESIS_HASH:
            genesis_children.append(node)
        elif parent is not None and parent is not node:
            parent.children.append(node)
        else:
            roots.append(node)
    depth, reached = _subtree_depths(genesis_children + roots)
    reached_lines = {n.line for n in reached}
    for node in unique:
        if node.line not in reached_lines:
            problems.add(node.line, "inserted", f"{_describe(node)} links into a loop of forged hashes")

    segments: list[list[_Node]] = []
    if genesis_children:
        first = _best_child(genesis_children, 1, depth)
        for other in genesis_children:
            if other is not first:
                _mark_branch_inserted(other, "the start of the log", first, problems)
        segments.append(_follow(first, depth, problems))
    segments.extend(_follow(root, depth, problems) for root in roots)
    chain = _check_segments(segments, problems)

    for node in chain:
        if not node.self_ok:
            problems.add(node.line, "edited", f"{_describe(node)} was changed: its fields no longer match its hash")
    by_line = {n.line: n for n in chain}
    moved = _out_of_order(chain)
    for i, node in enumerate(chain):
        if node.line in moved:
            before = f"after {_describe(chain[i - 1])}" if i > 0 else "first"
            problems.add(node.line, "reordered", f"{_describe(node)} is out of place: it belongs {before}")
    if expected_head is not None:
        _check_head(expected_head, chain, by_line, len(lines), problems)
    return sorted(problems.items, key=lambda p: (p.position, PROBLEM_KINDS.index(p.kind)))


def _check_head(
    head: tuple[int, str], chain: list[_Node], by_line: dict[int, _Node], n_lines: int, problems: _Problems
) -> None:
    head_seq, head_hash = head
    match = next((n for n in chain if n.entry.seq == head_seq), None)
    if match is None:
        last_seq = chain[-1].entry.seq if chain else 0
        if last_seq < head_seq:
            problems.add(
                n_lines + 1,
                "removed",
                f"entries seq {last_seq + 1}-{head_seq} are missing at the end of the log "
                f"(recorded head is seq {head_seq})",
            )
    elif match.entry.hash != head_hash:
        problems.add(match.line, "edited", f"{_describe(by_line[match.line])} differs from the recorded head")
