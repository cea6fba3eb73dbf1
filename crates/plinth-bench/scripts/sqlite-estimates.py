"""Estimates in Python's sqlite3 on the rows of a store that
`plinth-bench ingest --db STORE` wrote (see docs/BENCHMARKS.md, thirteenth
session). Each run starts from an empty database at SCRATCH.

  python3 sqlite-estimates.py rows values|json|many STORE SCRATCH
      the store's search rows into an empty table, bound three ways
  python3 sqlite-estimates.py journal wal|delete STORE SCRATCH
      the store's four index-carrying tables copied row by row, then the
      bulk indexes and the commit, in the given journal mode
"""
import json
import os
import sqlite3
import sys
import time

BULK = {"search_key_value", "relations_source", "relations_target"}
TABLES = ["entities", "relations", "search", "search_tokens"]


def fresh(path, journal_mode):
    for suffix in ["", "-wal", "-shm", "-journal"]:
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    c = sqlite3.connect(path, isolation_level=None)
    c.execute(f"PRAGMA journal_mode = {journal_mode}")
    c.execute("PRAGMA synchronous = NORMAL")
    c.execute("PRAGMA cache_size = -65536")
    c.execute("PRAGMA threads = 2")
    return c


def rows(how, store, scratch):
    src = sqlite3.connect(store)
    found = src.execute("SELECT entity_id, key, value, original_value FROM search").fetchall()
    src.close()
    c = fresh(scratch, "wal")
    c.execute("CREATE TABLE search (entity_id INTEGER NOT NULL, key TEXT NOT NULL, value TEXT, original_value TEXT)")
    c.execute("CREATE INDEX search_entity ON search (entity_id)")
    c.execute("BEGIN IMMEDIATE")
    if how == "values":
        per = 8000  # 32,000 parameters, as the store's statements
        sql = "INSERT OR FAIL INTO search VALUES " + ",".join(["(?,?,?,?)"] * per)
        flat = [x for r in found for x in r]
        params = [flat[i * per * 4:(i + 1) * per * 4] for i in range(len(found) // per)]
        count = len(params) * per
        start = time.time()
        for p in params:
            c.execute(sql, p)
    elif how == "json":
        texts = [json.dumps(found[i:i + 4096]) for i in range(0, len(found), 4096)]
        count = len(found)
        start = time.time()
        for t in texts:
            c.execute("INSERT OR FAIL INTO search SELECT value->>0, value->>1, value->>2, value->>3 FROM json_each(?)", (t,))
    else:
        count = len(found)
        start = time.time()
        c.executemany("INSERT OR FAIL INTO search VALUES (?,?,?,?)", found)
    print(how, count, "rows", round(time.time() - start, 2), "s")
    c.execute("COMMIT")


def journal(mode, store, scratch):
    src = sqlite3.connect(store)
    names = ",".join(f"'{t}'" for t in TABLES)
    tables = [r[0] for r in src.execute(f"SELECT sql FROM sqlite_master WHERE type = 'table' AND name IN ({names})")]
    indexes = src.execute(f"SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name IN ({names})").fetchall()
    src.close()
    c = fresh(scratch, mode)
    for sql in tables:
        c.execute(sql)
    for name, sql in indexes:
        if name not in BULK:
            c.execute(sql)
    c.execute("ATTACH ? AS src", (store,))
    start = time.time()
    c.execute("BEGIN IMMEDIATE")
    for t in TABLES:
        lap = time.time()
        # WHERE keeps SQLite from copying the table's pages whole.
        c.execute(f"INSERT INTO main.{t} SELECT * FROM src.{t} WHERE 1")
        print(t, round(time.time() - lap, 2), end="; ")
    lap = time.time()
    c.execute("PRAGMA cache_size = -8192")
    for name, sql in indexes:
        if name in BULK:
            c.execute(sql)
    print("indexes", round(time.time() - lap, 2), end="; ")
    lap = time.time()
    c.execute("COMMIT")
    print("commit", round(time.time() - lap, 2), end="; ")
    print(mode, "total", round(time.time() - start, 2), "s")


if __name__ == "__main__":
    what, how, store, scratch = sys.argv[1:5]
    {"rows": rows, "journal": journal}[what](how, store, scratch)
