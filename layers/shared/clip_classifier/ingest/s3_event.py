"""The S3 notification record as the upload classifier needs it (the function's input boundary)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

#: S3 sequencers are hex strings of varying length; left-padded to this width they compare as numbers.
SEQUENCER_WIDTH = 40


def normalize_sequencer(sequencer: str) -> str:
    """Left-pad a hex sequencer so plain string comparison (as in a DynamoDB condition) orders them."""
    value = sequencer.strip().upper()
    int(value, 16)  # a non-hex sequencer is a malformed event: fail loudly
    return value.rjust(SEQUENCER_WIDTH, "0")


class ObjectEvent(BaseModel):
    """One ``ObjectCreated:*`` or ``ObjectRemoved:*`` record, key already URL-decoded."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_name: str = Field(pattern=r"^Object(Created|Removed):")
    bucket: str = Field(min_length=3)
    key: str = Field(min_length=1)
    size: int | None = Field(default=None, ge=0)
    etag: str | None = None
    version_id: str | None = None
    sequencer: str = Field(pattern=r"^[0-9A-Fa-f]{1,40}$")
    event_time: str | None = None

    @property
    def kind(self) -> Literal["created", "removed"]:
        return "created" if self.event_name.startswith("ObjectCreated:") else "removed"

    @property
    def normalized_sequencer(self) -> str:
        return normalize_sequencer(self.sequencer)
