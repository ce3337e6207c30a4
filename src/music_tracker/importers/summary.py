"""What an import did: printed for people, and as JSON for machines."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from music_tracker import dedupe

# why a music row is set aside rather than counted (``ImportSummary.set_aside``)
NOT_A_PLAY = "0 ms played (not counted as a play)"


@dataclass
class ImportSummary:
    """What a run did; printed for people and as JSON for machines."""

    run_id: str
    files_imported: int = 0
    files_already_imported: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)
    rows_read: int = 0
    new_plays: int = 0
    duplicates_in_input: int = 0
    already_stored: int = 0
    linked_to_other_source: int = 0
    written_twice: int = 0
    plays_merged: int = 0
    set_aside: Counter[str] = field(default_factory=Counter)
    other_content: Counter[str] = field(default_factory=Counter)
    per_source: Counter[str] = field(default_factory=Counter)
    # files read as old account data (before 2023): podcasts told apart by the evidence
    old_account_files: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "files_imported": self.files_imported,
            "files_already_imported": self.files_already_imported,
            "files_skipped": self.skipped,
            "rows_read": self.rows_read,
            "new_plays": self.new_plays,
            # in the documented source order, richest first (the same on every run)
            "new_plays_per_source": {
                source: self.per_source[source]
                for source in sorted(
                    self.per_source, key=lambda s: (-dedupe.SOURCE_RANK.get(s, 0), s)
                )
            },
            "duplicates": {
                "repeated_in_input": self.duplicates_in_input,
                "already_stored": self.already_stored,
                "same_play_from_other_source": self.linked_to_other_source,
                "same_play_written_twice": self.written_twice,
                "stored_plays_merged": self.plays_merged,
            },
            "set_aside": dict(self.set_aside),
            "new_other_content": dict(self.other_content),
            "old_account_data_files": self.old_account_files,
        }
