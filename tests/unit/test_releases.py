"""Release states, rollback targets and cleanup: the rules that keep rollback possible."""

from __future__ import annotations

import pytest

from ayna_fab.errors import UsageError
from ayna_fab.ops.releasestates import Release, after_activation, parse_name, rollback_target, to_remove


def rels(*spec: str) -> list[Release]:
    """'1:good', '2:failed', ... ; a trailing '!' marks an incomplete release."""
    out = []
    for item in spec:
        number, state = item.split(":")
        out.append(Release(int(number), state.rstrip("!"), complete=not state.endswith("!")))
    return out


def test_default_rollback_target_is_the_previous_good_release():
    assert rollback_target(rels("1:good", "2:previous", "3:failed", "4:active"), 4, None).number == 2


def test_without_a_marked_previous_the_newest_good_release_below_is_chosen():
    assert rollback_target(rels("1:good", "2:good", "3:rolled-back", "4:active"), 4, None).number == 2


def test_failed_incomplete_missing_and_active_targets_are_refused_with_candidates():
    r = rels("1:good", "2:failed", "3:good!", "4:active")
    with pytest.raises(UsageError, match=r"v2 is failed: not a rollback target; candidates: v1"):
        rollback_target(r, 4, 2)
    with pytest.raises(UsageError, match="v3 is good, incomplete"):
        rollback_target(r, 4, 3)
    with pytest.raises(UsageError, match="there is no release v9; releases: v4 \\(active\\)"):
        rollback_target(r, 4, 9)
    with pytest.raises(UsageError, match="already the active release"):
        rollback_target(r, 4, 4)


def test_a_release_rolled_away_from_may_be_chosen_again_but_never_by_default():
    r = rels("1:good", "2:rolled-back", "3:active")
    assert rollback_target(r, 3, 2).number == 2
    assert rollback_target(r, 3, None).number == 1


def test_no_good_release_means_no_rollback():
    with pytest.raises(UsageError, match="no good release to roll back to"):
        rollback_target(rels("1:failed", "2:active"), 2, None)


def test_activation_moves_active_to_previous_and_older_previous_to_good():
    changes = after_activation(rels("1:previous", "2:active"), 3, 2)
    assert changes == {3: "active", 2: "previous", 1: "good"}


def test_rolling_back_marks_the_abandoned_release_and_finds_a_new_previous():
    changes = after_activation(rels("1:good", "2:good", "3:previous", "4:active"), 3, 4, rolled_back=True)
    assert changes[4] == "rolled-back" and changes[3] == "active" and changes[2] == "previous"


def test_cleanup_keeps_keep_good_releases_and_never_counts_failures():
    r = rels("1:good", "2:good", "3:good", "4:failed", "5:previous", "6:failed", "7:failed", "8:active")
    assert to_remove(r, 8, 3) == [1, 2, 4, 6]  # keeps 3, 5, 8 (good) and 7 (newest failure)


def test_cleanup_never_removes_the_active_or_previous_release_even_when_old():
    r = rels("1:previous", "2:good", "3:good", "4:good", "5:active")
    removed = to_remove(r, 5, 2)
    # The newest two good ones (v5, v4) plus the previous one, however old.
    assert 1 not in removed and 5 not in removed and removed == [2, 3]


def test_cleanup_treats_abandoned_building_releases_as_failed():
    assert to_remove(rels("1:building", "2:building", "3:active"), 3, 5) == [1]


@pytest.mark.parametrize("bad", ["3", "v0", "v-1", "v1;reboot", "v 1", "V1", "v1\n", "../v1"])
def test_release_names_are_strict(bad):
    with pytest.raises(UsageError):
        parse_name(bad)
    assert parse_name("v12") == 12
