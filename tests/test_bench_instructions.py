"""`bench.instructions` reads callgrind's dumps: the summary of each thread's file, the event
loop's thread (callgrind's thread 1) apart from the others, for the dump asked for."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.instructions import OUT_FILE, dumped, instructions

HEADER = "# callgrind format\nversion: 1\ncreator: callgrind-3.19.0\npart: {part}\n"


def dump(summary: int | None, totals: int, *, part: int = 1, thread: int = 1) -> str:
    text = HEADER.format(part=part) + f"thread: {thread}\n\npositions: line\nevents: Ir\n"
    if summary is not None:
        text += f"summary: {summary}\n"
    return text + f"\nfn=(1) main\n15 {totals}\n\ntotals: {totals}\n"


def test_a_dump_counts_its_summary_line_not_its_totals() -> None:
    assert instructions(dump(179_052_313, 211_032_372)) == 179_052_313


def test_a_dump_without_a_summary_counts_its_totals() -> None:
    assert instructions(dump(None, 5_000)) == 5_000


def test_a_file_that_is_no_dump_is_an_error() -> None:
    with pytest.raises(ValueError, match="no summary"):
        instructions("# callgrind format\nevents: Ir\n")


def test_the_loop_thread_is_counted_apart_from_the_others_of_that_dump(tmp_path: Path) -> None:
    files = {
        f"{OUT_FILE}.1-01": dump(100, 100),
        f"{OUT_FILE}.1-02": dump(40, 40, thread=2),
        f"{OUT_FILE}.1-03": dump(2, 2, thread=3),
        f"{OUT_FILE}.2-01": dump(900, 900, part=2),
        f"{OUT_FILE}.2-02": dump(90, 90, part=2, thread=2),
        f"{OUT_FILE}-01": dump(7, 7),  # the dump at exit
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    assert dumped(tmp_path, 1) == (100, 42)
    assert dumped(tmp_path, 2) == (900, 90)


def test_a_dump_that_was_not_written_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="no dump 3"):
        dumped(tmp_path, 3)
