"""The file formats this package registers through ``register_formats``: csv, json, jsonl, parquet.

Each format is a class built from its own options model (``CsvOptions`` ...) and implements
``dataloader.formats.Format``: a streaming ``read`` over a binary stream and a streaming
``writer``. The pyarrow submodules they use are imported inside the methods so that loading the
plugin stays cheap.
"""
