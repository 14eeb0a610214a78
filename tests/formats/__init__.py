"""Unit tests of `sidestep.formats`: wire formats, translation, SSE framing."""
