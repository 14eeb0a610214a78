"""Unit tests of `sidestep.server`: the HTTP/1.1 server over raw sockets."""
