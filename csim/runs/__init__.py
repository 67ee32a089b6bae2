"""The run directory's keepers: its identity and path (`identity`), atomic file writes and provenance (`files`), and
what a resumed run needs from its checkpoints (`checkpoints`). A base layer: it imports no other part of csim but
csim.errors, so data and encoders may use its atomic writers."""
