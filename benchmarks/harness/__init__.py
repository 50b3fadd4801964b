"""The benchmark harness behind ``benchmarks/run.py``.

Modules: ``datagen`` (the deterministic ``bench.events`` rows, as CSV and in Postgres), ``postgres``
(connection strings, the bench database, a throwaway server), ``tools`` (how each tool runs each
workload), ``measure`` (a subprocess's wall time and peak RSS), ``verify`` (what landed in the target),
``peers`` (the separate venv for dlt and Sling), ``report`` (tables, machine facts, docs page).
"""
