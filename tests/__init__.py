"""The test suite mirrors the package: where a test goes.

- `tests/e2e/`: a test that starts a gateway (`sidestep.testing.running_gateway`, `sidestep serve` in a process)
  and talks to it over real HTTP, whatever feature it is about (a file whose tests mostly do, whole).
- `tests/<package>/` (`cli`, `config`, `drill`, `formats`, `observers`, `plugins`, `routing`, `server`, `sim`,
  `transport`…): the unit tests of `src/sidestep/<package>/`, without a gateway — pure functions, state
  machines, a server or client against raw sockets, the simulator alone. A new package gets a new folder
  (with an `__init__.py`); a top-level module's tests go with the package that uses it (`demo` under `cli`).
- `tests/tooling/`: the repository's own machinery — the import contracts, the compiled build's list, `bench/`.
- Here, at the top: what every test shares — `conftest.py` (fixtures, `Sdk`, `AttemptLog`), `sim_helpers.py`,
  `mcp_server.py`. Import them as `tests.conftest` / `tests.sim_helpers`.

Every folder is a package, so two folders may each hold a `test_x.py`; the file's name drops what its folder
says (`server/test_protocol.py`, not `server/test_server_protocol.py`).
"""
