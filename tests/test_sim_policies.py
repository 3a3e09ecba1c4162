"""Replacement policies on hand-made reference strings with known answers."""

import pytest

from simhelp import plain_pages, run, write

BELADY = [1, 2, 3, 4, 1, 2, 5, 1, 2, 3, 4, 5]
# Silberschatz, Operating System Concepts, the OPT/LRU/FIFO example (3 frames: 9/12/15 faults)
TEXTBOOK = [7, 0, 1, 2, 0, 3, 0, 4, 2, 3, 0, 3, 2, 1, 2, 0, 1, 7, 0, 1]


def faults(tmp_path, pages, policy, frames, writes=()):
    p = write(tmp_path, "t.txt", plain_pages(pages, writes))
    return run(p, policy, frames).total


@pytest.mark.parametrize("policy,frames,expected", [
    ("fifo", 3, 9), ("fifo", 4, 10),          # Belady's anomaly: more frames, more faults
    ("lru", 3, 10), ("lru", 4, 8),
    ("opt", 3, 7), ("opt", 4, 6),
    ("clock", 3, 9), ("clock", 4, 10),        # every bit set when the hand sweeps: like FIFO
])
def test_belady_string(tmp_path, policy, frames, expected):
    assert faults(tmp_path, BELADY, policy, frames).page_faults == expected


@pytest.mark.parametrize("policy,expected", [("opt", 9), ("lru", 12), ("fifo", 15)])
def test_textbook_string(tmp_path, policy, expected):
    t = faults(tmp_path, TEXTBOOK, policy, 3)
    assert t.page_faults == expected
    assert t.faults_by_kind["first-touch"] == 6          # pages 7, 0, 1, 2, 3, 4
    assert t.faults_by_kind["swap-in"] == expected - 6
    assert t.evictions == expected - 3


def test_opt_victims_by_hand(tmp_path):
    """OPT on the textbook string: the victim at each fault is the page used farthest ahead."""
    p = write(tmp_path, "t.txt", plain_pages(TEXTBOOK))
    res = run(p, "opt", 3, events=20)
    victims = [e.victim_page for e in res.events if e.victim_page is not None]
    assert victims == [7, 1, 0, 4, 3, 2]


def test_opt_ties_go_to_the_earliest_loaded(tmp_path):
    # 1, 2, 3 are never used again when 4 arrives: all tie; 1 became resident first
    p = write(tmp_path, "t.txt", plain_pages([1, 2, 3, 4, 5]))
    res = run(p, "opt", 3, events=10)
    assert [(e.page, e.victim_page) for e in res.events[3:]] == [(4, 1), (5, 2)]
    # 3 is used again, 1 and 2 never: the tie between 1 and 2 goes to 1, then 2
    p = write(tmp_path, "u.txt", plain_pages([1, 2, 3, 4, 5, 3]))
    res = run(p, "opt", 3, events=10)
    assert [e.victim_page for e in res.events[3:]] == [1, 2]


def test_clock_second_chance_by_hand(tmp_path):
    """1,2,3,4,2,5,2,3 with 3 frames.

    4: the hand clears 1,2,3 and takes frame 0 (page 1). 2 hits (bit set again). 5: the hand at
    frame 1 clears page 2's bit, takes frame 2 (page 3, bit clear). 3: frame 0 (4, set), frame 1
    (2, set), frame 2 (5, set) are cleared, then frame 0 goes. FIFO would evict 2 for 5.
    """
    pages = [1, 2, 3, 4, 2, 5, 2, 3]
    p = write(tmp_path, "t.txt", plain_pages(pages))
    res = run(p, "clock", 3, events=10)
    assert res.total.page_faults == 6
    assert [(e.page, e.victim_page) for e in res.events[3:]] == [(4, 1), (5, 3), (3, 4)]
    assert [(f.frame, f.page) for f in res.total.frames] == [(0, 3), (1, 2), (2, 5)]
    assert faults(tmp_path, pages, "fifo", 3).page_faults == 7
    assert faults(tmp_path, pages, "lru", 3).page_faults == 6
    assert faults(tmp_path, pages, "opt", 3).page_faults == 5


def test_lru_recency_is_updated_on_every_reference(tmp_path):
    # 1 is referenced again after 2 and 3, so 2 is the least recently used when 4 comes
    p = write(tmp_path, "t.txt", plain_pages([1, 2, 3, 1, 4]))
    res = run(p, "lru", 3, events=10)
    assert res.events[-1].victim_page == 2
    res = run(p, "fifo", 3, events=10)
    assert res.events[-1].victim_page == 1


def test_dirty_write_back_and_swap_in(tmp_path):
    # W 1, R 2 (evicts dirty 1: written to swap), R 3 (evicts clean 2), R 1 (swap-in)
    p = write(tmp_path, "t.txt", plain_pages([1, 2, 3, 1], writes={0}))
    res = run(p, "fifo", 1, events=10)
    t = res.total
    assert (t.page_faults, t.evictions, t.dirty_evictions, t.swap_ins) == (4, 3, 1, 1)
    assert t.faults_by_kind == {"first-touch": 3, "swap-in": 1}
    assert [e.written_back for e in res.events] == [False, True, False, False]
    assert [e.kind for e in res.events] == ["first-touch"] * 3 + ["swap-in"]
    # the page came back clean from swap; the final page table shows 1 in frame 0, 2 and 3 in swap
    assert [(r.page, r.frame, r.dirty, r.swapped) for r in t.pages] == [
        (1, 0, False, False), (2, None, False, True), (3, None, False, True)]


def test_a_page_written_again_after_swap_in_is_dirty_again(tmp_path):
    p = write(tmp_path, "t.txt", plain_pages([1, 2, 1, 2], writes={0, 2}))
    t = run(p, "lru", 1).total
    # 1 dirty out, 2 clean out, 1 (written again) dirty at the end
    assert (t.evictions, t.dirty_evictions) == (3, 2)


def test_frames_are_taken_lowest_first(tmp_path):
    p = write(tmp_path, "t.txt", plain_pages([9, 8, 7]))
    t = run(p, "lru", 8).total
    assert [(r.page, r.frame) for r in t.pages] == [(7, 2), (8, 1), (9, 0)]
    assert [(f.frame, f.page) for f in t.frames] == [(0, 9), (1, 8), (2, 7)]
    assert all(f.referenced for f in t.frames)


def test_user_frames_come_from_the_phys_allocator():
    from elfvm.sim.engine import user_frames

    assert list(user_frames(4, 4096)) == [0, 1, 2, 3]
