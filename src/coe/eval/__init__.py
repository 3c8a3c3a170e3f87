"""The evaluate stage: how well a specialist keeps its parent's behaviour, and what it costs."""
