"""The deterministic ``bench.events`` data set.

Rows are generated in chunks with numpy (seeded, so the same ``rows`` always gives the same bytes)
and turned into Arrow arrays without Python objects per row. The CSV file is the source of truth:
the Postgres table is loaded from it with ``COPY``, so both hold exactly the same rows.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

SEED = 20260701
CHUNK_ROWS = 250_000
EVENT_TYPES = ["view", "click", "add_to_cart", "remove_from_cart", "checkout",
               "purchase", "refund", "signup", "login", "logout"]
#: 2026-01-01T00:00:00Z in microseconds; created_at falls in the year after it.
EPOCH_US = 1_767_225_600 * 1_000_000
YEAR_US = 365 * 24 * 3600 * 1_000_000
ALPHABET = np.frombuffer(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ,.-_'", dtype="S1")
POOL_SIZE = 4096

#: The Postgres definition of ``bench.events`` (the issue's column list).
EVENTS_DDL = """
CREATE TABLE bench.events (
    id bigint NOT NULL,
    user_id integer,
    event_type text,
    amount numeric(12,2),
    ratio double precision,
    is_active boolean,
    created_at timestamptz,
    updated_at timestamptz,
    payload text,
    note text
)
"""

SCHEMA = pa.schema([
    ("id", pa.int64()),
    ("user_id", pa.int32()),
    ("event_type", pa.string()),
    ("amount", pa.decimal128(12, 2)),
    ("ratio", pa.float64()),
    ("is_active", pa.bool_()),
    ("created_at", pa.timestamp("us", tz="UTC")),
    ("updated_at", pa.timestamp("us", tz="UTC")),
    ("payload", pa.string()),
    ("note", pa.string()),
])


@dataclass(frozen=True)
class Expected:
    """What every target must hold after a correct load: the verification facts."""

    rows: int
    distinct_ids: int
    sum_id: int
    null_notes: int

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def _string_pool(rng: np.random.Generator, min_len: int, max_len: int) -> pa.Array:
    """A pool of random strings (including commas, quotes and spaces, so CSV quoting is exercised)."""
    lengths = rng.integers(min_len, max_len + 1, POOL_SIZE)
    chars = rng.choice(ALPHABET, int(lengths.sum()))
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    return pa.StringArray.from_buffers(POOL_SIZE, pa.py_buffer(offsets.tobytes()), pa.py_buffer(chars.tobytes()))


def _decimal_from_cents(cents: np.ndarray) -> pa.Array:
    """decimal128(12, 2) straight from int64 cents: little-endian 128-bit words, sign-extended."""
    words = np.empty((len(cents), 2), dtype=np.int64)
    words[:, 0] = cents
    words[:, 1] = cents >> 63
    return pa.Array.from_buffers(pa.decimal128(12, 2), len(cents), [None, pa.py_buffer(words.tobytes())])


def generate_chunks(rows: int, seed: int = SEED):
    """Yield ``pyarrow.RecordBatch`` chunks of the data set, in id order (ids 1..rows)."""
    pool_rng = np.random.default_rng(seed)
    payloads = _string_pool(pool_rng, 50, 70)
    notes = _string_pool(pool_rng, 8, 40)
    event_types = pa.array(EVENT_TYPES)
    start = 0
    while start < rows:
        n = min(CHUNK_ROWS, rows - start)
        # One generator per chunk, seeded by its position: chunk k is the same whatever the chunk size before it.
        rng = np.random.default_rng([seed, start])
        ids = np.arange(start + 1, start + n + 1, dtype=np.int64)
        created = EPOCH_US + rng.integers(0, YEAR_US, n) // 1000 * 1000
        updated = created + rng.integers(0, 30 * 24 * 3600, n) * 1_000_000
        note_missing = rng.random(n) < 0.3
        columns = [
            pa.array(ids),
            pa.array(rng.integers(1, 100_000, n, dtype=np.int32)),
            event_types.take(pa.array(rng.integers(0, len(EVENT_TYPES), n))),
            _decimal_from_cents(rng.integers(-100_000, 10_000_000, n)),
            pa.array(rng.random(n)),
            pa.array(rng.random(n) < 0.5),
            pa.array(created, pa.timestamp("us", tz="UTC")),
            pa.array(updated, pa.timestamp("us", tz="UTC")),
            payloads.take(pa.array(rng.integers(0, POOL_SIZE, n))),
            notes.take(pa.array(rng.integers(0, POOL_SIZE, n), mask=note_missing)),
        ]
        yield pa.RecordBatch.from_arrays(columns, schema=SCHEMA)
        start += n


def write_csv(path: Path, rows: int, seed: int = SEED) -> Expected:
    """Write the data set as one CSV file (header, RFC 4180 quoting, empty field = NULL)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    null_notes = 0
    with pacsv.CSVWriter(str(tmp), SCHEMA) as writer:
        for chunk in generate_chunks(rows, seed):
            null_notes += chunk.column("note").null_count
            writer.write_batch(chunk)
    tmp.replace(path)
    expected = Expected(rows=rows, distinct_ids=rows, sum_id=rows * (rows + 1) // 2, null_notes=null_notes)
    meta_path(path).write_text(json.dumps({"rows": rows, "seed": seed, "expected": expected.to_dict()}))
    return expected


def meta_path(csv_path: Path) -> Path:
    return csv_path.with_name(csv_path.name + ".json")


def ensure_csv(data_dir: Path, rows: int, seed: int = SEED) -> tuple[Path, Expected]:
    """The CSV for ``rows`` rows, generated once and reused while its metadata matches."""
    path = data_dir / f"events-{rows}.csv"
    meta = meta_path(path)
    if path.exists() and meta.exists():
        saved = json.loads(meta.read_text())
        if saved.get("rows") == rows and saved.get("seed") == seed:
            return path, Expected(**saved["expected"])
    return path, write_csv(path, rows, seed)


def load_postgres(conn, csv_path: Path, rows: int, seed: int = SEED) -> bool:
    """(Re)create ``bench.events`` from the CSV with COPY unless it already holds this data set.

    Returns True when it loaded. The table comment records rows and seed so a kept database
    (``--keep``) is reused by the next run.
    """
    marker = f"rows={rows} seed={seed}"
    with conn.cursor() as cur:
        cur.execute("SELECT obj_description(to_regclass('bench.events'))")
        found = cur.fetchone()
        if found and found[0] == marker:
            return False
        cur.execute("CREATE SCHEMA IF NOT EXISTS bench")
        cur.execute("DROP TABLE IF EXISTS bench.events")
        cur.execute(EVENTS_DDL)
        with open(csv_path, "rb") as fh:
            cur.copy_expert("COPY bench.events FROM STDIN WITH (FORMAT csv, HEADER true)", fh, size=1 << 20)
        cur.execute("ALTER TABLE bench.events ADD PRIMARY KEY (id)")
        cur.execute(f"COMMENT ON TABLE bench.events IS '{marker}'")
    conn.commit()
    with conn.cursor() as cur:
        conn.autocommit = True
        cur.execute("VACUUM ANALYZE bench.events")
        conn.autocommit = False
    return True
