"""signaling/recordings.py (names, index lines, retention, pure) and signaling/recorder.py
(the writer thread, the index, the sweep) on a temporary directory."""

from __future__ import annotations

import asyncio
import json
import os
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sfu.capture import CapturedPacket, Transmission
from signaling import recorder as recorder_module
from signaling.recorder import Recorder
from signaling.recordings import (INDEX, PART_CHARS, expired, file_name, index_line, safe_part,
                                  started_at)
from signaling.rooms import Member

from ..name_cases import ACCEPTED, REFUSED
from ..oggopus import decode, frequency

START = 1_764_556_200.25  # 2025-12-01T02:30:00.250Z
DAY = 86400.0


def assert_safe(part: str) -> None:
    assert part and len(part) <= PART_CHARS
    assert not part.startswith((".", "-")) and ".." not in part.split("-") and "/" not in part and "\\" not in part and "\0" not in part
    assert all(c.isprintable() and unicodedata.category(c)[0] not in "CZ" for c in part), part


@pytest.mark.parametrize("text", [t for t, _ in ACCEPTED + REFUSED] + [
    "../../etc/passwd", "/", "..", ".hidden", "a\nb", "\x00", "CON", "a" * 1000, "rm -rf ~",
    "\u202egnp.exe", "x/../../y", "   ", "-", "...."])
def test_any_name_becomes_a_safe_part_of_a_file_name(text: str) -> None:
    assert_safe(safe_part(text))


@given(st.text(max_size=200))
def test_any_text_becomes_a_safe_part(text: str) -> None:
    assert_safe(safe_part(text))


def test_readable_names_stay_readable() -> None:
    assert safe_part("ops-north") == "ops-north"
    assert safe_part("Zoe\u0308 Smith") == "Zoë-Smith"
    assert safe_part("無線 📻") == "無線"
    assert safe_part("../../etc/passwd") == "etc-passwd"
    assert safe_part("..") == "x"


def test_file_names_sort_by_time_and_say_room_and_talker() -> None:
    name = file_name("ops-north", "Ann", START)
    assert name == "20251201T023000.250Z_ops-north_Ann.opus"
    assert file_name("ops-north", "Ann", START, attempt=1) == "20251201T023000.250Z_ops-north_Ann-2.opus"
    assert started_at(name) == pytest.approx(START, abs=0.001)
    assert started_at("notes.txt") is None and started_at(INDEX) is None
    assert started_at("20251399T999999.000Z_a_b.opus") is None  # not a date
    later = file_name("a", "b", START + 1)
    assert sorted([later, name]) == [name, later]
    assert os.path.basename(file_name("../..", "/etc/passwd", START)) == file_name(
        "../..", "/etc/passwd", START)


def test_expired_takes_only_old_recordings_of_ours() -> None:
    old = file_name("r", "a", START - 8 * DAY)
    young = file_name("r", "a", START - 6 * DAY)
    names = [old, young, INDEX, "notes.txt", "2020-01-01_backup.opus"]
    assert expired(names, START, keep_days=7) == [old]
    assert expired(names, START, keep_days=0) == []  # 0: forever


def test_index_lines_are_json_with_the_names_as_they_were() -> None:
    line = index_line("f.opus", "ops", "Zoë \"Z\"\n", "m1", START, 1.23456, 999, True)
    assert line.endswith("\n") and line.count("\n") == 1
    assert json.loads(line) == {
        "file": "f.opus", "room": "ops", "talker": "Zoë \"Z\"\n", "talker_id": "m1",
        "start": "2025-12-01T02:30:00.250Z", "duration_s": 1.235, "bytes": 999,
        "truncated": True}


# ---------------------------------------------------------------------- the recorder


@pytest.fixture(scope="module")
def tone() -> list[bytes]:
    return pytest.importorskip("bench.audio").encode_loop("tone", 1.0)


def transmission(frames: list[bytes], talker: str = "m1", room: str = "ops",
                 start: float = START) -> Transmission:
    packets = [CapturedPacket(k, 960 * k, f, k * 0.02) for k, f in enumerate(frames)]
    return Transmission(room, talker, start, packets)


async def settle(recorder: Recorder) -> None:
    for _ in range(500):
        if not recorder.stats.pending:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the writer did not finish")


async def test_a_transmission_is_written_named_indexed_and_decodes(tmp_path: Path,
                                                                   tone: list[bytes]) -> None:
    recorder = Recorder(tmp_path / "rec", 7, wall=lambda: START)
    await recorder.start()
    recorder.joined(Member("m1", "Zoë/../x", "ops"))
    recorder.submit(transmission(tone))
    await settle(recorder)
    await recorder.close()
    files = sorted(p.name for p in (tmp_path / "rec").iterdir())
    assert files == ["20251201T023000.250Z_ops_Zoë-x.opus", INDEX]
    (entry,) = [json.loads(line) for line in (tmp_path / "rec" / INDEX).read_text().splitlines()]
    data = (tmp_path / "rec" / files[0]).read_bytes()
    assert entry == {"file": files[0], "room": "ops", "talker": "Zoë/../x", "talker_id": "m1",
                     "start": "2025-12-01T02:30:00.250Z", "duration_s": 1.0,
                     "bytes": len(data), "truncated": False}
    info, samples = decode(data)
    assert info.tags == {"ROOM": "ops", "TALKER": "Zoë/../x", "DATE": entry["start"]}
    assert len(samples) == 48000 - info.pre_skip
    assert frequency(samples[4800:]) == pytest.approx(440, abs=5)
    assert recorder.stats.as_dict() == {"written": 1, "dropped": 0, "failed": 0, "swept": 0,
                                        "pending": 0}


async def test_same_names_at_the_same_moment_never_overwrite(tmp_path: Path,
                                                             tone: list[bytes]) -> None:
    recorder = Recorder(tmp_path, 7, wall=lambda: START)
    await recorder.start()
    recorder.submit(transmission(tone[:10], talker="a"))
    recorder.submit(transmission(tone[:20], talker="a"))
    await settle(recorder)
    await recorder.close()
    names = sorted(p.name for p in tmp_path.glob("*.opus"))
    assert names == ["20251201T023000.250Z_ops_a-2.opus", "20251201T023000.250Z_ops_a.opus"]
    assert len((tmp_path / INDEX).read_text().splitlines()) == 2
    assert not list(tmp_path.glob(".*"))  # no partial file left behind


async def test_a_talker_who_left_keeps_its_name_and_an_unknown_one_its_id(tmp_path: Path,
                                                                         tone: list[bytes]) -> None:
    recorder = Recorder(tmp_path, 7)
    recorder.joined(Member("m1", "Ann", "ops"))
    recorder.left("m1")
    assert recorder.name_of("m1") == "Ann" and recorder.name_of("m9") == "m9"


async def test_the_sweep_removes_old_recordings_and_their_index_lines(
        tmp_path: Path, tone: list[bytes]) -> None:
    now = [START]
    recorder = Recorder(tmp_path, 7, wall=lambda: now[0], sweep_interval=0.05)
    await recorder.start()
    recorder.submit(transmission(tone[:5], start=START - 8 * DAY))  # already too old
    recorder.submit(transmission(tone[:5], start=START - 1 * DAY))
    await settle(recorder)
    (tmp_path / "notes.txt").write_text("the operator's")
    for _ in range(200):
        if recorder.stats.swept:
            break
        await asyncio.sleep(0.01)
    await recorder.close()
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == [file_name("ops", "m1", START - DAY), INDEX, "notes.txt"]
    lines = (tmp_path / INDEX).read_text().splitlines()
    assert [json.loads(line)["file"] for line in lines] == [left[0]]


async def test_old_recordings_are_swept_at_start(tmp_path: Path) -> None:
    old = tmp_path / file_name("ops", "a", START - 31 * DAY)
    old.write_bytes(b"OggS")
    (tmp_path / INDEX).write_text(json.dumps({"file": old.name}) + "\nnot json\n")
    recorder = Recorder(tmp_path, 30, wall=lambda: START)
    await recorder.start()
    await recorder.close()
    assert not old.exists() and recorder.stats.swept == 1
    assert (tmp_path / INDEX).read_text() == "not json\n"  # what is not ours stays


async def test_a_disk_that_cannot_keep_up_drops_and_counts(tmp_path: Path, tone: list[bytes],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recorder_module, "MAX_PENDING", 1)
    recorder = Recorder(tmp_path, 7)
    await recorder.start()
    recorder.submit(transmission(tone[:5]))  # submitted on the loop: none has finished yet
    recorder.submit(transmission(tone[:5], talker="b"))
    assert recorder.stats.dropped == 1
    await settle(recorder)
    await recorder.close()
    assert recorder.stats.written == 1


async def test_a_directory_that_cannot_be_written_fails_at_start(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    recorder = Recorder(blocker / "rec", 7)
    with pytest.raises(OSError):
        await recorder.start()
    await recorder.close()


async def test_a_failed_write_is_counted_and_the_next_one_works(tmp_path: Path,
                                                                tone: list[bytes]) -> None:
    recorder = Recorder(tmp_path, 7)
    await recorder.start()
    recorder.submit(Transmission("ops", "a", START, [CapturedPacket(1, 0, b"", 0.0)]))
    recorder.submit(transmission(tone[:5]))
    await settle(recorder)
    await recorder.close()
    assert (recorder.stats.failed, recorder.stats.written) == (1, 1)
