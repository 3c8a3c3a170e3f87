"""The embedded default: tiny Gemma-4-architecture MoEs and corpora built offline."""
