"""The state-backend contract suite, shipped for backend authors (ours and third parties').

A backend package tests itself against the contract with a subclass and two fixtures::

    # tests/test_state_contract.py
    import pytest
    from dataloader.testing.state import StateBackendContractSuite

    class TestStateContract(StateBackendContractSuite):
        backend_name = "dynamodb"
        xfail = {"test_expired_lease_is_taken_over": "..."}   # only with a reason

        @pytest.fixture
        def state_options(self, ...):        # the recipe's ``state:`` keys (without ``backend``)
            return {"table": ..., "endpoint_url": ..., "key": ..., "secret": ...}

        @pytest.fixture
        def raw_store(self, ...):            # everything the backend stored, as text
            return lambda: dump_the_table()

``state_options`` must name a fresh, empty place per test. The suite builds every backend it
uses through the plugin registry from those options, exactly as a recipe's ``state:`` section
does, so the registration and its config model are tested too; two instances built from the same
options are two "machines" sharing one store.

What every backend must do: an unknown recipe loads as ``{}``; what is saved loads back equal; a
save killed by SIGKILL in a real child process leaves the old or the new state, never a mix or
garbage; a save based on a stale load (another instance saved in between) is refused with a
:class:`~dataloader.errors.StateError`; a lease is taken, refused to a second holder with
:class:`~dataloader.errors.LeaseHeldError` naming the first, taken over once it expired or its
holder died, and its renewal after a takeover raises :class:`~dataloader.errors.LeaseLostError`;
the backend's secrets are never written into what it stores, nor into its error messages.

A backend calls ``dataloader.faults.point("state_write")`` once in the middle of ``save`` (after
the new state is on its way, before it is published): the SIGKILL test kills the child there.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import pytest

from dataloader.cli_state import build_state_backend
from dataloader.errors import LeaseHeldError, LeaseLostError, StateError
from dataloader.run.ledger import LeaseHolder, utc_now
from dataloader.testing.suite import SealedSuite

#: A state as the engine saves it, with values at their types' edges and some Unicode.
SAMPLE_STATE: dict[str, Any] = {
    "version": 1,
    "cursor_values": {"updated_at": "2026-12-01T21:30:00.123456+00:00", "id": 9223372036854775807},
    "watermarks": {
        "updated_at": {"kind": "datetime", "boundary_keys": ["a", "b\u00e9", "\u6f22\u5b57"]},
        "id": {"kind": "int", "boundary_keys": []},
    },
    "checkpoints": {},
    "metadata": {"last_run_id": "20261201T213000-aaaaaaaa", "note": "line\nbreak \"quoted\" \U0001f600"},
}


def build_backend(backend_name: str, options: dict[str, Any]) -> Any:
    """A backend built the way a recipe's ``state:`` section builds it (config model, factory)."""
    return build_state_backend(backend_name, options)


def other_holder(run_id: str = "other-run") -> LeaseHolder:
    """A holder on another machine: never presumed dead, so only its expiry frees its lease."""
    return LeaseHolder(run_id=f"{run_id}-{uuid.uuid4().hex[:6]}", host="another-machine.invalid", pid=424242, since=utc_now())


class StateBackendContractSuite(SealedSuite):
    """Subclass it, set ``backend_name`` and provide the ``state_options`` and ``raw_store`` fixtures.

    ``xfail = {"test name": "reason"}`` marks expected failures (strict); suite tests are sealed.
    """

    _suite = True
    backend_name: ClassVar[str] = ""

    # fixtures ----------------------------------------------------------------------------------
    @pytest.fixture
    def state_options(self) -> dict[str, Any]:
        pytest.fail(f"{type(self).__name__} must define a state_options fixture (a fresh, empty place per test)")

    @pytest.fixture
    def raw_store(self) -> Callable[[], str]:
        pytest.fail(f"{type(self).__name__} must define a raw_store fixture returning everything stored, as text")

    @pytest.fixture
    def state_secrets(self, state_options: dict[str, Any]) -> list[str]:
        """The secret values in ``state_options`` (override when they hide inside a URL or DSN)."""
        from dataloader.secrets import is_secret_name as is_secret_key

        return [str(v) for k, v in state_options.items() if is_secret_key(k) and isinstance(v, str) and v]

    @pytest.fixture
    def make_backend(self, state_options: dict[str, Any]) -> Callable[[], Any]:
        """A new backend instance on the test's store each call (another machine, same store)."""
        assert self.backend_name, f"{type(self).__name__} must set backend_name"
        return lambda: build_backend(self.backend_name, state_options)

    @pytest.fixture
    def recipe(self) -> str:
        return f"contract_{uuid.uuid4().hex[:8]}"

    # load and save -----------------------------------------------------------------------------
    def test_unknown_recipe_loads_empty(self, make_backend: Callable[[], Any], recipe: str) -> None:
        assert make_backend().load(recipe) == {}

    def test_saved_state_loads_back_equal_from_another_instance(self, make_backend: Callable[[], Any], recipe: str) -> None:
        writer = make_backend()
        writer.load(recipe)
        writer.save(recipe, SAMPLE_STATE)
        assert make_backend().load(recipe) == SAMPLE_STATE

    def test_successive_saves_keep_the_last(self, make_backend: Callable[[], Any], recipe: str) -> None:
        backend = make_backend()
        backend.load(recipe)
        for n in range(4):
            backend.save(recipe, {**SAMPLE_STATE, "cursor_values": {"id": n}})
        assert make_backend().load(recipe)["cursor_values"] == {"id": 3}

    def test_recipes_do_not_share_state(self, make_backend: Callable[[], Any], recipe: str) -> None:
        backend = make_backend()
        backend.load(recipe)
        backend.save(recipe, SAMPLE_STATE)
        assert backend.load(recipe + "_other") == {}

    # atomicity ---------------------------------------------------------------------------------
    def _save_in_child(self, state_options: dict[str, Any], recipe: str, state: dict[str, Any], *, kill: bool) -> int:
        """Save ``state`` from a real child process; with ``kill`` it dies by SIGKILL mid-save."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("DATALOADER_FAULT_")}
        if kill:
            env["DATALOADER_FAULT_KILL_AT"] = "state_write"
        payload = json.dumps({"backend": self.backend_name, "options": state_options, "recipe": recipe, "state": state})
        child = subprocess.run(
            [sys.executable, "-c", "from dataloader.testing.state import _child_save; _child_save()"],
            input=payload, env=env, capture_output=True, text=True, timeout=120,
        )
        if not kill:
            assert child.returncode == 0, child.stderr
        return child.returncode

    def test_save_killed_midway_leaves_the_old_state(
        self, make_backend: Callable[[], Any], state_options: dict[str, Any], recipe: str
    ) -> None:
        first = make_backend()
        first.load(recipe)
        first.save(recipe, SAMPLE_STATE)
        bigger = {**SAMPLE_STATE, "metadata": {"filler": "x" * 300_000}}
        code = self._save_in_child(state_options, recipe, bigger, kill=True)
        assert code == -signal.SIGKILL, "the backend must call faults.point('state_write') in the middle of save()"
        assert make_backend().load(recipe) == SAMPLE_STATE
        # Whatever the dead save left behind does not stop the next one.
        self._save_in_child(state_options, recipe, bigger, kill=False)
        assert make_backend().load(recipe) == bigger

    def test_first_save_killed_midway_leaves_no_state(
        self, make_backend: Callable[[], Any], state_options: dict[str, Any], recipe: str
    ) -> None:
        assert self._save_in_child(state_options, recipe, SAMPLE_STATE, kill=True) == -signal.SIGKILL
        assert make_backend().load(recipe) == {}

    # optimistic concurrency --------------------------------------------------------------------
    def test_save_from_a_stale_load_is_refused(self, make_backend: Callable[[], Any], recipe: str) -> None:
        one, two = make_backend(), make_backend()
        one.load(recipe)
        one.save(recipe, SAMPLE_STATE)
        one.load(recipe)
        two.load(recipe)
        one.save(recipe, {**SAMPLE_STATE, "cursor_values": {"id": 1}})
        with pytest.raises(StateError) as refused:
            two.save(recipe, {**SAMPLE_STATE, "cursor_values": {"id": 2}})
        assert recipe in str(refused.value)
        assert make_backend().load(recipe)["cursor_values"] == {"id": 1}

    def test_two_first_saves_one_is_refused(self, make_backend: Callable[[], Any], recipe: str) -> None:
        one, two = make_backend(), make_backend()
        assert one.load(recipe) == {} and two.load(recipe) == {}
        one.save(recipe, {**SAMPLE_STATE, "cursor_values": {"id": 1}})
        with pytest.raises(StateError):
            two.save(recipe, {**SAMPLE_STATE, "cursor_values": {"id": 2}})
        assert make_backend().load(recipe)["cursor_values"] == {"id": 1}

    # leases ------------------------------------------------------------------------------------
    def test_lease_is_taken_and_refused_to_a_second_holder(self, make_backend: Callable[[], Any], recipe: str) -> None:
        first = LeaseHolder.current(f"run-a-{uuid.uuid4().hex[:6]}")
        lease = make_backend().acquire_lease(recipe, first, 60.0)
        try:
            assert lease.holder == first
            with pytest.raises(LeaseHeldError) as refused:
                make_backend().acquire_lease(recipe, other_holder(), 60.0)
            assert first.run_id in str(refused.value), "the refusal must name the holder"
            lease.renew()
            with pytest.raises(LeaseHeldError):
                make_backend().acquire_lease(recipe, other_holder(), 60.0)
        finally:
            lease.release()

    def test_released_lease_can_be_taken_again(self, make_backend: Callable[[], Any], recipe: str) -> None:
        lease = make_backend().acquire_lease(recipe, LeaseHolder.current("run-a"), 60.0)
        lease.release()
        lease.release()  # idempotent
        again = make_backend().acquire_lease(recipe, other_holder(), 60.0)
        again.release()

    def test_leases_of_two_recipes_are_independent(self, make_backend: Callable[[], Any], recipe: str) -> None:
        one = make_backend().acquire_lease(recipe, LeaseHolder.current("run-a"), 60.0)
        two = make_backend().acquire_lease(recipe + "_other", other_holder(), 60.0)
        one.release()
        two.release()

    def test_expired_lease_is_taken_over_and_the_old_holder_loses_it(
        self, make_backend: Callable[[], Any], recipe: str
    ) -> None:
        # A holder on another machine that stopped renewing: only the expiry frees its lease.
        stale = make_backend().acquire_lease(recipe, other_holder("stale"), 0.001)
        taker = make_backend().acquire_lease(recipe, LeaseHolder.current("run-b"), 60.0)
        try:
            with pytest.raises(LeaseLostError):
                stale.renew()
            with pytest.raises(LeaseHeldError) as refused:
                make_backend().acquire_lease(recipe, other_holder(), 60.0)
            assert "run-b" in str(refused.value)
            stale.release()  # releasing a lost lease frees nothing of the new holder's
            with pytest.raises(LeaseHeldError):
                make_backend().acquire_lease(recipe, other_holder(), 60.0)
        finally:
            taker.release()

    def test_lease_of_a_killed_holder_is_taken_over(
        self, make_backend: Callable[[], Any], state_options: dict[str, Any], recipe: str
    ) -> None:
        payload = json.dumps({"backend": self.backend_name, "options": state_options, "recipe": recipe})
        child = subprocess.run(
            [sys.executable, "-c", "from dataloader.testing.state import _child_lease_and_die; _child_lease_and_die()"],
            input=payload, capture_output=True, text=True, timeout=120,
        )
        assert child.returncode == -signal.SIGKILL, child.stderr
        lease = make_backend().acquire_lease(recipe, LeaseHolder.current("run-after"), 60.0)
        lease.release()

    @pytest.mark.parametrize("lease_before", ["none", "expired"])
    def test_two_processes_starting_at_once_exactly_one_gets_the_lease(
        self, make_backend: Callable[[], Any], state_options: dict[str, Any], recipe: str, lease_before: str
    ) -> None:
        if lease_before == "expired":
            make_backend().acquire_lease(recipe, other_holder("stale"), 0.001)
        job = json.dumps({"backend": self.backend_name, "options": state_options, "recipe": recipe})
        children = [
            subprocess.Popen(
                [sys.executable, "-c", "from dataloader.testing.state import _child_race; _child_race()"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
            for _ in range(2)
        ]
        try:
            for child in children:
                child.stdin.write(job + "\n")
                child.stdin.flush()
            for child in children:  # each has built its backend: now both go at once
                assert child.stdout.readline().strip() == "ready", child.stderr.read()
            for child in children:
                child.stdin.write("go\n")
                child.stdin.flush()
            answers = [child.stdout.readline().strip() for child in children]
        finally:
            for child in children:
                try:
                    child.stdin.write("done\n")
                    child.stdin.close()
                except OSError:
                    pass
                child.wait(60)
        won = [a for a in answers if a.startswith("won ")]
        refused = [a for a in answers if a.startswith("refused ")]
        assert len(won) == 1 and len(refused) == 1, answers
        assert won[0].split()[1] in refused[0], "the refusal must name the run that got the lease"

    # secrets -----------------------------------------------------------------------------------
    def test_secrets_are_never_stored_nor_shown(
        self, make_backend: Callable[[], Any], raw_store: Callable[[], str], state_secrets: list[str], recipe: str
    ) -> None:
        one, two = make_backend(), make_backend()
        one.load(recipe)
        two.load(recipe)
        one.save(recipe, SAMPLE_STATE)
        messages = [repr(one), str(one)]
        try:
            two.save(recipe, SAMPLE_STATE)
        except StateError as exc:
            messages.append(str(exc))
            messages.append(json.dumps(exc.context, default=str))
        lease = one.acquire_lease(recipe, LeaseHolder.current("run-a"), 60.0)
        try:
            with pytest.raises(LeaseHeldError) as refused:
                two.acquire_lease(recipe, other_holder(), 60.0)
            messages.append(str(refused.value))
            stored = raw_store()
            assert stored, "raw_store returned nothing after a save and a lease"
        finally:
            lease.release()
        for secret in state_secrets:
            assert secret not in stored, "a secret of the backend's config was written into the store"
            for message in messages:
                assert secret not in message, f"a secret shows in: {message[:200]}"


# -- the same recipe from two machines ------------------------------------------------------------
#: Rows the ``shared_memory`` destination committed, by table.
SHARED_TABLES: dict[str, Any] = {}
#: The ``blocking_memory`` source signals ``READING`` after its first batch, then waits for ``RELEASE``.
READING = threading.Event()
RELEASE = threading.Event()


class _PlainMemoryDestination:
    """An in-memory destination with no commit record of its own: only the state backend says what
    was loaded, so a lost or unshared state would show as duplicates."""

    capabilities = None  # filled in below (import cost stays with the suite)

    def __init__(self, config: Any) -> None:
        self.config = config

    def begin(self, schema: Any, mode: str, state: Any) -> None:
        self._pending: list[Any] = []

    def write_batch(self, batch: Any, state: Any) -> None:
        self._pending.append(batch.to_arrow())

    def commit(self, state: Any) -> None:
        import pyarrow as pa

        old = SHARED_TABLES.get(self.config.table)
        new = [old] if old is not None else []
        new.extend(pa.Table.from_batches([b]) for b in self._pending)
        if new:
            SHARED_TABLES[self.config.table] = pa.concat_tables(new)
        self._pending = []

    def abort(self) -> None:
        self._pending = []


def _run_plugin() -> Any:
    from dataloader.connector import Capabilities
    from dataloader.hookspecs import hookimpl
    from dataloader.testing import MemoryConfig, MemoryConnector

    class BlockingMemorySource(MemoryConnector):
        def read_batches(self, state: Any) -> Any:
            for number, batch in enumerate(super().read_batches(state)):
                yield batch
                if number == 0:
                    READING.set()
                    assert RELEASE.wait(120), "the test never released the blocking source"

    _PlainMemoryDestination.capabilities = Capabilities(
        write=True, write_modes=frozenset({"append"}), transactional=True, commits_state=False
    )

    class Plugin:
        @hookimpl
        def register_connectors(self, register: Any) -> None:
            register("blocking_memory", BlockingMemorySource, config=MemoryConfig)
            register("shared_memory", _PlainMemoryDestination, config=MemoryConfig)

    return Plugin()


@contextmanager
def shared_run_host() -> Iterator[Any]:
    """A plugin host with the installed plugins plus the suite's memory source and destination."""
    from dataloader.plugins import use_host
    from dataloader.testing import MEMORY_TABLES, plugin_host

    MEMORY_TABLES.clear()
    SHARED_TABLES.clear()
    READING.clear()
    RELEASE.clear()
    try:
        with use_host(plugin_host(_run_plugin())) as host:
            yield host
    finally:
        RELEASE.set()
        MEMORY_TABLES.clear()
        SHARED_TABLES.clear()


class SharedStateRunSuite(SealedSuite):
    """The issue's done-when checks, through the real engine: one recipe, two "machines" (two
    working directories, two backend instances), one shared backend.

    - run on machine A, new rows arrive, run on machine B: every row is loaded exactly once (the
      destination keeps no commit record, so only the shared state prevents a reload);
    - machine B starts while A runs: B is refused at once naming A's run, A finishes, nothing is
      duplicated, and B's next start loads nothing twice.

    Subclass it with ``backend_name`` and a ``state_options`` fixture, like the contract suite.
    """

    _suite = True
    backend_name: ClassVar[str] = ""

    @pytest.fixture
    def state_options(self) -> dict[str, Any]:
        pytest.fail(f"{type(self).__name__} must define a state_options fixture")

    @pytest.fixture
    def run_host(self) -> Any:
        with shared_run_host() as host:
            yield host

    def recipe(self, state_options: dict[str, Any], *, source: str = "contract_memory", name: str = "shared_recipe") -> Any:
        from dataloader.recipe import Recipe

        return Recipe.from_dict({
            "name": name,
            "source": {"type": source, "table": "src", "batch_rows": 2,
                       "incremental": {"strategy": "cursor", "cursor_column": "id", "primary_key": ["id"]}},
            "destination": {"type": "shared_memory", "table": "dst", "write_mode": "append"},
            "runtime": {"batch_size": 2},
            "state": {"backend": self.backend_name, **state_options},
        })

    def on_machine(self, workdir: Any, recipe: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
        """Run ``recipe`` from ``workdir`` with a backend of its own, as the CLI builds it."""
        from dataloader.cli import state_backend_for
        from dataloader.engine import run_recipe

        workdir.mkdir(parents=True, exist_ok=True)
        monkeypatch.chdir(workdir)
        return run_recipe(recipe, state_backend_for(recipe, None), history=False)

    @staticmethod
    def seed(ids: range) -> None:
        import pyarrow as pa

        from dataloader.testing import MEMORY_TABLES

        new = pa.table({"id": pa.array(list(ids), pa.int64()), "name": [f"n{i}" for i in ids]})
        old = MEMORY_TABLES.get("src")
        MEMORY_TABLES["src"] = pa.concat_tables([old, new]) if old is not None else new

    @staticmethod
    def loaded_ids() -> list[int]:
        table = SHARED_TABLES.get("dst")
        return sorted(table.column("id").to_pylist()) if table is not None else []

    def test_two_machines_load_every_row_once(
        self, run_host: Any, state_options: dict[str, Any], tmp_path: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        recipe = self.recipe(state_options, name=f"two_machines_{uuid.uuid4().hex[:6]}")
        self.seed(range(0, 10))
        first = self.on_machine(tmp_path / "machine-a", recipe, monkeypatch)
        self.seed(range(10, 15))
        second = self.on_machine(tmp_path / "machine-b", recipe, monkeypatch)
        again = self.on_machine(tmp_path / "machine-a", recipe, monkeypatch)
        assert (first.status, second.status, again.status) == ("success", "success", "success")
        assert self.loaded_ids() == list(range(15)), "a row was loaded twice or lost"
        assert (first.rows_written, second.rows_written, again.rows_written) == (10, 5, 0)
        for machine in ("machine-a", "machine-b"):
            assert not (tmp_path / machine / ".state").exists(), "the run used a local state folder"

    def test_concurrent_start_is_refused_and_nothing_is_duplicated(
        self, run_host: Any, state_options: dict[str, Any], tmp_path: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from dataloader.cli import state_backend_for
        from dataloader.engine import run_recipe

        name = f"concurrent_{uuid.uuid4().hex[:6]}"
        running = self.recipe(state_options, source="blocking_memory", name=name)
        self.seed(range(0, 6))
        outcome: dict[str, Any] = {}

        def machine_a() -> None:
            try:
                outcome["a"] = run_recipe(running, state_backend_for(running, None), history=False)
            except Exception as exc:  # reported by the assertion below
                outcome["a"] = exc

        (tmp_path / "machine-a").mkdir()
        monkeypatch.chdir(tmp_path / "machine-a")
        thread = threading.Thread(target=machine_a, daemon=True)
        thread.start()
        try:
            assert READING.wait(120), f"machine A never started reading: {outcome.get('a')!r}"
            with pytest.raises(LeaseHeldError) as refused:
                self.on_machine(tmp_path / "machine-b", self.recipe(state_options, name=name), monkeypatch)
        finally:
            RELEASE.set()
            thread.join(120)
        result = outcome["a"]
        assert not isinstance(result, Exception), f"machine A failed: {result}"
        assert result.status == "success"
        message = str(refused.value)
        assert f"'{name}' is already running" in message and result.run_id in message
        assert self.loaded_ids() == list(range(6))
        later = self.on_machine(tmp_path / "machine-b", self.recipe(state_options, name=name), monkeypatch)
        assert later.rows_written == 0 and self.loaded_ids() == list(range(6))


# -- child processes ---------------------------------------------------------------------------
def _child_save() -> None:
    """Child of the SIGKILL test: load, then save the state read from stdin."""
    job = json.loads(sys.stdin.read())
    backend = build_backend(job["backend"], job["options"])
    backend.load(job["recipe"])
    backend.save(job["recipe"], job["state"])


def _child_race() -> None:
    """Child of the race test: build the backend, say ready, then on "go" try to take the lease."""
    job = json.loads(sys.stdin.readline())
    backend = build_backend(job["backend"], job["options"])
    run_id = f"racer-{uuid.uuid4().hex[:8]}"
    print("ready", flush=True)
    sys.stdin.readline()
    try:
        lease = backend.acquire_lease(job["recipe"], LeaseHolder.current(run_id), 60.0)
    except LeaseHeldError as exc:
        print("refused " + " ".join(str(exc).split()), flush=True)
        return
    print(f"won {run_id}", flush=True)
    sys.stdin.readline()  # hold the lease until the test has both answers
    lease.release()


def _child_lease_and_die() -> None:
    """Child of the dead-holder test: take the lease, then die without releasing it."""
    job = json.loads(sys.stdin.read())
    backend = build_backend(job["backend"], job["options"])
    backend.acquire_lease(job["recipe"], LeaseHolder.current(f"doomed-{uuid.uuid4().hex[:6]}"), 60.0)
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


__all__ = ["SAMPLE_STATE", "SharedStateRunSuite", "StateBackendContractSuite", "build_backend", "other_holder"]
