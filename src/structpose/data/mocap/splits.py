"""Train/test split of the pose library: by subject for CMU, by style for Bandai-Namco."""

from __future__ import annotations

from structpose.data.mocap.catalog import Take

#: CMU subjects held out for testing (walk, run, jump/reach, one-leg balance): about 23% of CMU time.
CMU_TEST_SUBJECTS = frozenset({"cmu:8", "cmu:9", "cmu:14", "cmu:49"})

#: Bandai-Namco styles held out for testing, per dataset (about 20% of each dataset's time).
BANDAI_TEST_STYLES = {
    "bandai:dataset-1": frozenset({"active", "old", "sad"}),
    "bandai:dataset-2": frozenset({"elderly"}),
}


def split_of(take: Take) -> str:
    """``"test"`` or ``"train"`` for one take."""
    if take.source == "bandai":
        held_out = take.style in BANDAI_TEST_STYLES.get(take.subject, frozenset())
    else:
        held_out = take.subject in CMU_TEST_SUBJECTS
    return "test" if held_out else "train"


def split_description() -> str:
    """Human-readable description of the split (for the README / the library's metadata)."""
    cmu = ", ".join(sorted(CMU_TEST_SUBJECTS, key=lambda s: int(s.split(":")[1])))
    bandai = "; ".join(f"{d.split(':')[1]}: {', '.join(sorted(s))}" for d, s in BANDAI_TEST_STYLES.items())
    return (
        "CMU: split by subject, a person is never in both splits. Test subjects: "
        f"{cmu} (walking, running, jumping / reaching up on tiptoe, balancing on one leg; about 23% of the "
        "CMU frames); every other subject is train, the salsa couple (cmu:60+61, two people not told "
        "apart) included. Bandai-Namco: no actor names and one proportion-aligned skeleton, so whole "
        f"STYLES are held out (test styles -- {bandai}; about 20% of each dataset); actors may be in both. Contents "
        "captured in several styles (walks, runs, bows, waves, ...) appear in both splits; those captured "
        "only in the normal style (call, respond, punch, kick, slash, dance) are train only."
    )
